package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/server"
)

func testEnv(vars map[string]string) *env {
	return &env{ctx: context.Background(), getenv: func(k string) string { return vars[k] },
		stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
}

func TestParse_FlagsAfterArgumentsAndEnvironment(t *testing.T) {
	var roles stringList
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o := addServeOptions(fs)
	fs.Var(&roles, "role", "")
	e := testEnv(map[string]string{
		"GATEHOUSE_STORE":               "redis://env:6379/1",
		"GATEHOUSE_DATA":                "/from/env",
		"GATEHOUSE_CLIENT_CA":           "a.pem, b.pem",
		"GATEHOUSE_CLIENT_INTERMEDIATE": "issuing.pem",
		"GATEHOUSE_SESSION_IDLE":        "5m",
		"GATEHOUSE_ROLE":                "admin", // not a common flag: must be ignored
	})
	pos, err := parse(e, fs, []string{"alice", "--role", "employee", "--data", "/from/flag"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pos, []string{"alice"}) {
		t.Errorf("positional = %q", pos)
	}
	if o.data != "/from/flag" {
		t.Errorf("flag must win over environment: data = %q", o.data)
	}
	if o.store != "redis://env:6379/1" {
		t.Errorf("store from environment = %q", o.store)
	}
	if !slices.Equal(o.clientCAs, stringList{"a.pem", "b.pem"}) {
		t.Errorf("client CAs from environment = %q", o.clientCAs)
	}
	if !slices.Equal(o.intermediates, stringList{"issuing.pem"}) {
		t.Errorf("client intermediates from environment = %q", o.intermediates)
	}
	if o.sessionIdle != 5*time.Minute {
		t.Errorf("session idle = %v", o.sessionIdle)
	}
	if !slices.Equal(roles, stringList{"employee"}) {
		t.Errorf("roles = %q (GATEHOUSE_ROLE must not apply)", roles)
	}
}

// Each command has the settings (--data, --store) and its own flags:
// serve's flags belong to serve (and the two that say where the portal
// is, to health as well), and nothing is taken from the environment but
// those.
func TestCommands_EachHasItsOwnFlags(t *testing.T) {
	serveFlags := map[string]bool{}
	fs, _ := serveCmd.flagSet()
	fs.VisitAll(func(f *flag.Flag) { serveFlags[f.Name] = !isSetting(f.Name) })
	for _, name := range envFlags {
		if _, ok := serveFlags[name]; !ok {
			t.Errorf("GATEHOUSE_%s is read from the environment, but serve has no --%s", strings.ToUpper(name), name)
		}
	}
	seen := map[string]bool{}
	for _, c := range commands {
		if seen[c.name] {
			t.Errorf("%s is twice in the command table", c.name)
		}
		seen[c.name] = true
		if c.short == "" || c.minArgs > c.maxArgs {
			t.Errorf("%s: short %q, arguments %d to %d", c.name, c.short, c.minArgs, c.maxArgs)
		}
		fs, _ := c.flagSet()
		for _, s := range []string{"data", "store"} {
			if fs.Lookup(s) == nil {
				t.Errorf("%s has no --%s", c.name, s)
			}
		}
		if c == serveCmd {
			continue
		}
		fs.VisitAll(func(f *flag.Flag) {
			if serveFlags[f.Name] && !(c == healthCmd && (f.Name == "addr" || f.Name == "tls-cert")) {
				t.Errorf("%s has serve's flag --%s", c.name, f.Name)
			}
		})
	}
}

// A serve setting given in the environment reaches serve, and a command
// without that flag pays it no attention.
func TestRun_ServeSettingFromTheEnvironment(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	getenv := func(k string) string {
		return map[string]string{"GATEHOUSE_DATA": data, "GATEHOUSE_SESSION_IDLE": "30s", "GATEHOUSE_ADDR": "127.0.0.1:0"}[k]
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := run(ctx, []string{"gatehouse", "serve"}, getenv, strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--session-idle 30s") {
		t.Errorf("serve with GATEHOUSE_SESSION_IDLE=30s: %v, want it refused", err)
	}
	if err := run(ctx, []string{"gatehouse", "init"}, getenv, strings.NewReader(""), io.Discard, io.Discard); err != nil {
		t.Fatalf("init with serve settings in the environment: %v", err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"gatehouse", "role", "list"}, getenv, strings.NewReader(""), &out, io.Discard); err != nil {
		t.Fatalf("role list with serve settings in the environment: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, EmbeddedStoreFile)); err != nil {
		t.Errorf("role list did not use GATEHOUSE_DATA: %v", err)
	}
}

// -h, --help and "help COMMAND" print the command's help and succeed; a
// flag the command does not have, or a wrong number of arguments, is a
// usage error (exit status 2) that says what is wrong.
func TestRun_HelpAndUsageErrors(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		usage     bool
		stdout    []string
		stderr    []string
		notStdout []string
	}{
		{"-h", []string{"cert", "issue", "-h"}, false, []string{"usage: gatehouse cert issue", "--out PREFIX", "--data DIRECTORY"}, nil, []string{"--addr", "--cookie-domain"}},
		{"--help after arguments", []string{"user", "add", "alice", "--help"}, false, []string{"--role ROLE"}, nil, []string{"--addr"}},
		{"help COMMAND", []string{"help", "serve"}, false, []string{"--session-idle DURATION", "GATEHOUSE_SESSION_IDLE"}, nil, []string{"--role", "--out"}},
		{"help GROUP", []string{"help", "session"}, false, []string{"session list", "session end"}, nil, []string{"cert issue"}},
		{"help", []string{"help"}, false, []string{"app set", "session end"}, nil, nil},
		{"a flag of another command", []string{"user", "list", "--addr", ":1"}, true, nil, []string{"gatehouse user list: unknown flag --addr (only serve and health take it)"}, nil},
		{"a flag of no command", []string{"user", "list", "--frob"}, true, nil, []string{"unknown flag --frob\n"}, nil},
		{"too many arguments", []string{"role", "list", "x"}, true, nil, []string{"too many arguments (x)", "usage: gatehouse role list"}, nil},
		{"too few arguments", []string{"user", "unpin", "alice"}, true, nil, []string{"too few arguments", "usage: gatehouse user unpin NAME PIN"}, nil},
		{"no command", nil, true, nil, []string{"usage: gatehouse COMMAND"}, nil},
		{"a group alone", []string{"app"}, true, nil, []string{"usage: gatehouse app COMMAND", "app set"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"gatehouse"}, tc.args...)
			err := run(t.Context(), args, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr)
			if tc.usage != errors.Is(err, errUsage) || (!tc.usage && err != nil) {
				t.Errorf("err = %v, want a usage error: %v", err, tc.usage)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout does not have %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not have %q:\n%s", w, stderr.String())
				}
			}
			for _, w := range tc.notStdout {
				if strings.Contains(stdout.String(), w) {
					t.Errorf("stdout has %q:\n%s", w, stdout.String())
				}
			}
		})
	}
}

func TestRedactURL_HidesPassword(t *testing.T) {
	tests := map[string]string{
		"redis://user:secret@host:6379/0":     "redis://user:xxxxx@host:6379/0",
		"redis://:secret@host:6379":           "redis://:xxxxx@host:6379",
		"redis://host:6379/0":                 "redis://host:6379/0",
		"unix://:secret@/run/redis.sock?db=0": "unix://:xxxxx@/run/redis.sock?db=0",
		// Sentinel: the user part is the Sentinels', password= the master's.
		"redis+sentinel://:secret@s1:26379/0?master_name=main&password=secret&addr=s2:26379": "redis+sentinel://:xxxxx@s1:26379/0?addr=s2%3A26379&master_name=main&password=xxxxx",
		"rediss+sentinel://s1:26379/0?Password=secret&master_name=main":                      "rediss+sentinel://s1:26379/0?Password=xxxxx&master_name=main",
		// An "@" in a password, typed raw: the last one ends the user part.
		"redis://user:se@cret@host:6379/0": "redis://user:xxxxx@host:6379/0",
		// Not a URL one can take apart: nothing after the scheme.
		"redis://user:se?cret@host:6379/0": "redis://…",
		"redis://user:secret@[::1/0":       "redis://…",
		// A URL without its scheme, and a file.
		"user:secret@host:6379":           "xxxxx@host:6379",
		"/var/lib/gatehouse/gatehouse.db": "/var/lib/gatehouse/gatehouse.db",
	}
	for in, want := range tests {
		got := redactURL(in)
		if got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, "cret") {
			t.Errorf("redactURL(%q) = %q: shows a password", in, got)
		}
	}
}

func TestRun_UnknownCommandAndUsage(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"gatehouse", "frobnicate"}, func(string) string { return "" }, nil, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Errorf("unknown command: err = %v", err)
	}
	if !strings.Contains(stderr.String(), "usage: gatehouse") {
		t.Errorf("usage not printed: %q", stderr.String())
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := parsePrefixes([]string{"10.0.0.7", "192.168.1.0/24", "::ffff:10.0.0.9", "::ffff:172.16.0.0/108", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.7/32", "192.168.1.0/24", "10.0.0.9/32", "172.16.0.0/12", "2001:db8::/32"}
	for i, p := range got {
		if p.String() != want[i] {
			t.Errorf("prefix %d = %s, want %s", i, p, want[i])
		}
	}
	if _, err := parsePrefixes([]string{"not-an-address"}); err == nil {
		t.Error("parsePrefixes accepted a name")
	}
}

func TestOpenStore_RefusesAHostPortWithoutScheme(t *testing.T) {
	e := &env{ctx: t.Context()}
	for _, bad := range []string{"localhost:6379", "127.0.0.1:6379/0", "memcached://x"} {
		if _, err := openStore(e, &settings{store: bad, data: t.TempDir()}, nil); err == nil {
			t.Errorf("openStore(%q) succeeded, want an error", bad)
		}
	}
	dir := t.TempDir()
	for _, good := range []string{"", "file:" + filepath.Join(dir, "x"), filepath.Join(dir, "y.db")} {
		st, err := openStore(e, &settings{store: good, data: filepath.Join(dir, "data")}, nil)
		if err != nil {
			t.Errorf("openStore(%q): %v", good, err)
			continue
		}
		st.Close()
	}
}

// The health check speaks to the portal with the portal's own TLS
// versions and TLS 1.2 suites.
func TestHealthTLS_SameVersionsAndSuitesAsThePortal(t *testing.T) {
	health, portal := healthTLSConfig(nil, "", ""), server.TLSConfig(tls.Certificate{}, nil)
	if health.MinVersion != portal.MinVersion || !slices.Equal(health.CipherSuites, portal.CipherSuites) {
		t.Errorf("health check: min version %x, suites %x; portal: %x, %x; want the same",
			health.MinVersion, health.CipherSuites, portal.MinVersion, portal.CipherSuites)
	}
}

// A --session-idle too short to be of use stops "gatehouse serve" before
// it does anything (no data directory is made), with plain words that
// give the least accepted value and why.
func TestServe_ShortSessionIdleRefusedAtStart(t *testing.T) {
	tests := []struct {
		name  string
		flags []string
		words []string
	}{
		{"30 seconds idle", []string{"--session-idle", "30s"}, []string{"--session-idle", "30s", "at least 1 minute", "signed out while they read"}},
		{"lifetime shorter than the idle time", []string{"--session-idle", "2h", "--session-max", "1h"}, []string{"--session-max", "shorter than the idle time"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := append([]string{"gatehouse", "serve", "--data", data, "--addr", "127.0.0.1:0"}, tc.flags...)
			// Should it start after all, it stops when the time is up.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			err := run(ctx, args, func(string) string { return "" }, strings.NewReader(""), io.Discard, io.Discard)
			if err == nil {
				t.Fatalf("gatehouse serve %q started", tc.flags)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("gatehouse serve %q: %q, want it to say %q", tc.flags, err, w)
				}
			}
			if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("gatehouse serve %q made the data directory before refusing (%v)", tc.flags, err)
			}
		})
	}
}

// user list reports a lock by its marker, which stays until an unlock,
// not by the count of failures, which expires a day after the last one:
// a day after a lockout, sign-in still refuses the account, and so must
// the list say.
func TestRun_UserListShowsALockAfterItsCountExpired(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	getenv := func(k string) string { return map[string]string{"GATEHOUSE_DATA": data}[k] }
	gatehouse := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(t.Context(), append([]string{"gatehouse"}, args...), getenv, strings.NewReader(""), &out, io.Discard); err != nil {
			t.Fatalf("gatehouse %s: %v", strings.Join(args, " "), err)
		}
		return out.String()
	}
	gatehouse("init")
	gatehouse("user", "add", "carol", "--role", "employee")
	st, err := openStore(&env{ctx: t.Context()}, &settings{data: data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// What a lockout leaves once its count has expired: the marker alone.
	lock := auth.LockCounter(auth.FailureCounter(auth.CounterTOTP, "carol"))
	if _, err := st.AddFailure(t.Context(), lock, auth.LockForever); err != nil {
		t.Fatal(err)
	}
	st.Close()
	carol := regexp.MustCompile(`(?m)^carol\s.*$`)
	if line := carol.FindString(gatehouse("user", "list")); !strings.Contains(line, "TOTP locked (gatehouse user unlock carol)") {
		t.Errorf("user list after a lockout: %q, want it to say the TOTP factor is locked", line)
	}
	gatehouse("user", "unlock", "carol")
	if line := carol.FindString(gatehouse("user", "list")); strings.Contains(line, "locked") {
		t.Errorf("user list after unlock: %q, want no lock", line)
	}
}
