// Command gatehouse is a login portal for internal web apps: it combines
// an optional TLS client certificate, a password and an optional TOTP
// code into one login decision, and answers internal apps' forward-auth
// requests.
//
// Usage:
//
//	gatehouse serve                      run the portal (initialises DATA on first start)
//	gatehouse init [--store-only]        create the data directory (or set up a store afresh)
//	gatehouse health [--ready]           is the portal on this machine alive (ready)? (exit status)
//	gatehouse user add|list|passwd|roles|disable|enable|unlock|pin|unpin …
//	gatehouse role set|list|delete …
//	gatehouse cert issue|revoke|list …
//	gatehouse audit
//
// Every common flag can also be given as an environment variable
// GATEHOUSE_<FLAG> (for example GATEHOUSE_DATA, GATEHOUSE_STORE).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gatehouse: %v\n", err)
		os.Exit(1)
	}
}

const usage = `usage: gatehouse COMMAND [flags]

commands:
  serve                                   run the portal over HTTPS
  init [--store-only]                     create the data directory and the first admin
                                          (--store-only: set up afresh a store that lost its data)
  health [--ready]                        exit 0 if the portal on this machine is alive (ready: its store answers too)
  user add NAME --role R [--role R]… [--email E] [--password-stdin]
  user list
  user passwd NAME --password-stdin
  user roles NAME --role R [--role R]…
  user disable NAME | user enable NAME
  user unlock NAME                        clear failed password and TOTP counters and locks
  role set NAME [--require-certificate[=false]] [--require-totp[=false]]
  user pin NAME (--cert FILE | --fingerprint sha256:HEX | --key-pin sha256:HEX)
  user unpin NAME PIN
  role list
  role delete NAME
  cert issue NAME --out PREFIX [--p12-password-stdin] [--days N]
  cert revoke SERIAL_OR_FINGERPRINT [--reason TEXT]
  cert list [NAME]
  audit [--limit N]                       the newest audit events, as JSON lines

Run "gatehouse COMMAND -h" for the flags of a command.
`

// run is the whole program: main only supplies the process's arguments,
// environment and standard streams, so tests can call run directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	e := &env{ctx: ctx, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "serve":
		return cmdServe(e, rest)
	case "init":
		return cmdInit(e, rest)
	case "health":
		return cmdHealth(e, rest)
	case "audit":
		return cmdAdmin(e, "audit", rest)
	case "user", "role", "cert":
		if len(rest) == 0 {
			fmt.Fprint(stderr, usage)
			return errUsage
		}
		return cmdAdmin(e, cmd+" "+rest[0], rest[1:])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// env is what a command may use of the outside world.
type env struct {
	ctx    context.Context
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}
