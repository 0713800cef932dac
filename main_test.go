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
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/server"
)

func testEnv(vars map[string]string) *env {
	return &env{ctx: context.Background(), getenv: func(k string) string { return vars[k] },
		stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
}

func TestParse_FlagsAfterArgumentsAndEnvironment(t *testing.T) {
	var o options
	var roles stringList
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.register(fs)
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

func TestRedactURL_HidesPassword(t *testing.T) {
	tests := map[string]string{
		"redis://user:secret@host:6379/0": "redis://user:xxxxx@host:6379/0",
		"redis://:secret@host:6379":       "redis://:xxxxx@host:6379",
		"redis://host:6379/0":             "redis://host:6379/0",
	}
	for in, want := range tests {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
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
		if _, err := openStore(e, &options{store: bad, data: t.TempDir()}); err == nil {
			t.Errorf("openStore(%q) succeeded, want an error", bad)
		}
	}
	dir := t.TempDir()
	for _, good := range []string{"", "file:" + filepath.Join(dir, "x"), filepath.Join(dir, "y.db")} {
		st, err := openStore(e, &options{store: good, data: filepath.Join(dir, "data")})
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
