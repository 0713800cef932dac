package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// "gatehouse serve --verify-socket PATH" where PATH is a file or a
// directory stops before it does anything (no data directory is made),
// says what is wrong, and leaves the file alone.
func TestServe_VerifySocketThatIsNotASocketRefused(t *testing.T) {
	for _, tc := range []struct {
		name, kind string
		make       func(path string) error
	}{
		{"regular file", "a regular file", func(p string) error { return os.WriteFile(p, []byte("keep me"), 0o600) }},
		{"directory", "a directory", func(p string) error { return os.Mkdir(p, 0o700) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "verify.sock")
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			data := filepath.Join(dir, "data")
			args := []string{"gatehouse", "serve", "--data", data, "--addr", "127.0.0.1:0", "--verify-socket", path}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			err := run(ctx, args, func(string) string { return "" }, strings.NewReader(""), io.Discard, io.Discard)
			if err == nil {
				t.Fatalf("gatehouse serve --verify-socket %s (%s) started", path, tc.kind)
			}
			for _, w := range []string{"--verify-socket", path, "is not a socket", tc.kind} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("gatehouse serve --verify-socket on %s: %q, want it to say %q", tc.kind, err, w)
				}
			}
			if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("gatehouse serve made the data directory before refusing (%v)", err)
			}
			if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() == fs.ModeSocket {
				t.Errorf("the %s at the path was touched: %v, %v", tc.kind, fi, err)
			}
		})
	}
}

// The socket is mode 0660 whatever the umask, replaces one left by an
// earlier run, refuses one that a live process listens on, and is gone
// once the listener is closed.
func TestListenVerifySocket_ModeStaleLiveAndRemoval(t *testing.T) {
	old := syscall.Umask(0) // the most permissive umask; not parallel
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "v.sock")

	// A socket left by a process that did not remove it.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	ln, err := listenVerifySocket(path)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket file: %v, %v; want a socket with mode 0660", fi, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want only the socket (the temporary one removed)", len(entries))
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("connect to the socket: %v", err)
	}
	c.Close()

	if _, err := listenVerifySocket(path); err == nil || !strings.Contains(err.Error(), "another process listens") {
		t.Errorf("a second listener on a live socket: %v, want it refused", err)
	}
	if err := ln.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the socket file is still there after Close: %v", err)
	}
}

// Two portals given the same path at the same moment: at most one gets
// the socket (the other is told, never silently cut off), and a portal
// that stops removes only its own socket file, never one another portal
// has put at the path since.
func TestListenVerifySocket_NeverReplacesOrRemovesAnothersSocket(t *testing.T) {
	dir := t.TempDir()
	for i := range 50 {
		path := filepath.Join(dir, fmt.Sprintf("race%d.sock", i))
		lns := make(chan net.Listener, 2)
		for range 2 {
			go func() {
				ln, err := listenVerifySocket(path)
				if err != nil {
					ln = nil
				}
				lns <- ln
			}()
		}
		got := 0
		for range 2 {
			if ln := <-lns; ln != nil {
				got++
				defer ln.Close()
			}
		}
		if got != 1 {
			t.Fatalf("round %d: %d listeners got the socket, want exactly one", i, got)
		}
	}

	path := filepath.Join(dir, "v.sock")
	first, err := listenVerifySocket(path)
	if err != nil {
		t.Fatal(err)
	}
	// Someone removes the first portal's socket and a second portal
	// starts on the path; then the first one stops.
	os.Remove(path)
	second, err := listenVerifySocket(path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	go func() {
		if c, err := second.Accept(); err == nil {
			c.Close()
		}
	}()
	first.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the second portal's socket after the first stopped: %v", err)
	}
	c.Close()
}
