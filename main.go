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
//	gatehouse app set|list|delete …
//	gatehouse session list|end …
//	gatehouse audit
//	gatehouse help [COMMAND]             the command list, or one command's arguments and flags
//
// Each command is a value in the table in command.go, with its own
// flags, defined in the file of its group (cmd_user.go, cmd_cert.go…).
// Every command has --data and --store; serve's settings belong to serve.
// These flags can also be given as environment variables GATEHOUSE_<FLAG>
// (for example GATEHOUSE_DATA, GATEHOUSE_STORE, GATEHOUSE_SESSION_IDLE).
package main

import (
	"context"
	"errors"
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
	switch {
	case errors.Is(err, errUsage):
		// What was wrong has been printed, with the usage.
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "gatehouse: %v\n", err)
		os.Exit(1)
	}
}

// run is the whole program: main only supplies the process's arguments,
// environment and standard streams, so tests can call run directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{ctx: ctx, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		return dispatch(e, nil)
	}
	return dispatch(e, args[1:])
}

// env is what a command may use of the outside world.
type env struct {
	ctx    context.Context
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}
