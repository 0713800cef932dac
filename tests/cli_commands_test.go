package tests

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// gatehouse runs the gatehouse binary with args and extra environment
// variables (KEY=VALUE), in an empty working directory so that the
// default ./data is never anyone's, and returns its output and exit
// status.
func gatehouse(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatehouseBinary(t), args...)
	cmd.Env = append(childEnv(), env...)
	cmd.Dir = t.TempDir()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run gatehouse %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// Help for one command shows that command's flags and no other's, on
// standard output, with exit status 0, whichever way it is asked for.
func TestCLI_HelpShowsOnlyTheCommandsOwnFlags(t *testing.T) {
	t.Parallel()
	serveOnly := []string{"--addr", "--tls-key", "--client-ca", "--crl", "--session-idle", "--session-max", "--cookie-domain", "--trusted-proxy", "--enroll-with-totp", "--max-device-certificates"}
	tests := []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"cert issue -h", []string{"cert", "issue", "-h"},
			[]string{"usage: gatehouse cert issue NAME --out PREFIX", "--out", "--days", "--p12-password-stdin", "--data", "--store", "GATEHOUSE_DATA"}, serveOnly},
		{"cert issue --help", []string{"cert", "issue", "--help"}, []string{"--out"}, serveOnly},
		{"help cert issue", []string{"help", "cert", "issue"}, []string{"usage: gatehouse cert issue", "--out"}, serveOnly},
		{"user add -h", []string{"user", "add", "-h"}, []string{"--role", "--email", "--password-stdin"}, append([]string{"--out"}, serveOnly...)},
		{"serve --help", []string{"serve", "--help"},
			[]string{"usage: gatehouse serve", "--addr", "--cookie-domain", "--session-idle", "--trusted-proxy", "--data", "GATEHOUSE_SESSION_IDLE"},
			[]string{"flag: help requested", "--out", "--role", "--ready"}},
		{"health -h", []string{"health", "-h"}, []string{"--ready", "--addr", "--tls-cert"}, []string{"--cookie-domain", "--session-idle", "--tls-key"}},
		{"help", []string{"help"}, []string{"usage: gatehouse COMMAND", "serve", "cert issue", "user add", "audit"}, []string{"--cookie-domain"}},
		{"cert -h", []string{"cert", "-h"}, []string{"cert issue", "cert revoke", "cert list"}, []string{"user add", "--addr"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := gatehouse(t, nil, tc.args...)
			if code != 0 {
				t.Errorf("exit status %d, want 0\nstderr:\n%s", code, stderr)
			}
			if strings.TrimSpace(stderr) != "" {
				t.Errorf("help wrote to standard error:\n%s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("help does not show %q:\n%s", w, stdout)
				}
			}
			for _, n := range tc.not {
				if regexp.MustCompile(regexp.QuoteMeta(n) + `\b`).MatchString(stdout + stderr) {
					t.Errorf("help shows %q, which is not this command's:\n%s", n, stdout)
				}
			}
		})
	}
}

// A command line that cannot be understood is refused with exit status 2
// (as the Go tool does), in plain words that say what is wrong and where
// to look.
func TestCLI_RefusesWhatACommandDoesNotTake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		words []string
	}{
		{"a serve flag on cert issue", []string{"cert", "issue", "alice", "--out", "alice", "--addr", ":1"},
			[]string{"cert issue", "unknown flag --addr", "gatehouse help cert issue"}},
		{"a serve flag on user list", []string{"user", "list", "--cookie-domain", "example.com"}, []string{"unknown flag --cookie-domain"}},
		{"a bad value", []string{"cert", "issue", "alice", "--out", "alice", "--days", "many"}, []string{"--days", "many"}},
		{"too many arguments", []string{"user", "list", "extra"}, []string{"user list", "usage: gatehouse user list"}},
		{"too few arguments", []string{"role", "delete"}, []string{"role delete", "usage: gatehouse role delete NAME"}},
		{"unknown command", []string{"frobnicate"}, []string{`unknown command "frobnicate"`, "cert issue", "role set"}},
		{"unknown subcommand", []string{"cert", "frobnicate"}, []string{`unknown command "cert frobnicate"`, "cert issue"}},
		{"a group alone", []string{"cert"}, []string{"cert issue", "cert revoke", "cert list"}},
		{"help for an unknown command", []string{"help", "frobnicate"}, []string{`unknown command "frobnicate"`}},
		{"nothing", nil, []string{"usage: gatehouse COMMAND"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := gatehouse(t, nil, tc.args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2\nstderr:\n%s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("a refused command line wrote to standard output:\n%s", stdout)
			}
			for _, w := range tc.words {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, "flag provided but not defined") {
				t.Errorf("stderr speaks the flag package's words, not plain ones:\n%s", stderr)
			}
		})
	}
}

// The settings that took an environment variable still do, for the
// commands that have them; a serve setting in the environment (as in the
// container image, where GATEHOUSE_ADDR is set for every command) does
// not disturb a command that has no such flag.
func TestCLI_SettingsFromTheEnvironment(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	env := []string{"GATEHOUSE_DATA=" + p.Data, "GATEHOUSE_STORE=" + p.Redis.URL,
		"GATEHOUSE_ADDR=:1", "GATEHOUSE_COOKIE_DOMAIN=example.com", "GATEHOUSE_SESSION_IDLE=5m"}
	stdout, stderr, code := gatehouse(t, env, "user", "list")
	if code != 0 || !regexp.MustCompile(`(?m)^admin\s`).MatchString(stdout) {
		t.Fatalf("user list with GATEHOUSE_DATA and GATEHOUSE_STORE: exit %d, want 0 and the portal's admin\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// cert issue reads the CA from GATEHOUSE_DATA.
	prefix := t.TempDir() + "/admin2"
	if _, stderr, code := gatehouse(t, env, "cert", "issue", "admin", "--out", prefix); code != 0 {
		t.Errorf("cert issue with GATEHOUSE_DATA: exit %d\n%s", code, stderr)
	}

	// A serve flag from the environment reaches serve: an idle time too
	// short is refused before anything starts.
	_, stderr, code = gatehouse(t, []string{"GATEHOUSE_DATA=" + t.TempDir(), "GATEHOUSE_ADDR=127.0.0.1:0", "GATEHOUSE_SESSION_IDLE=30s"}, "serve")
	if code == 0 || !strings.Contains(stderr, "--session-idle 30s") {
		t.Errorf("serve with GATEHOUSE_SESSION_IDLE=30s: exit %d, want it refused for --session-idle 30s\nstderr:\n%s", code, stderr)
	}
}
