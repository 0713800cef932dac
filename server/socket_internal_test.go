package server

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// Only connections accepted on a Unix socket are marked as the proxy's.
func TestMarkProxySocket_UnixConnectionsOnly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := net.Dial("unix", path); err == nil {
			defer c.Close()
		}
	}()
	unix, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close()
	pipe, other := net.Pipe()
	defer pipe.Close()
	defer other.Close()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	go func() {
		if c, err := net.Dial("tcp", tcp.Addr().String()); err == nil {
			defer c.Close()
		}
	}()
	tc, err := tcp.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()

	for name, tt := range map[string]struct {
		conn net.Conn
		want bool
	}{"unix": {unix, true}, "tcp": {tc, false}, "pipe": {pipe, false}} {
		r := httptest.NewRequest(http.MethodGet, "/auth/verify", nil)
		r = r.WithContext(markProxySocket(context.Background(), tt.conn))
		if got := fromProxySocket(r); got != tt.want {
			t.Errorf("%s connection: fromProxySocket = %v, want %v", name, got, tt.want)
		}
	}
}

// On the verify socket, the client's address comes from X-Forwarded-For,
// as behind a trusted proxy; the peer of a Unix socket has no address.
func TestClientAddr_VerifySocketReadsForwardedFor(t *testing.T) {
	t.Parallel()
	s := &Server{} // no --trusted-proxy
	onSocket := func(xff ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/auth/verify", nil)
		r.RemoteAddr = "@"
		if len(xff) > 0 {
			r.Header["X-Forwarded-For"] = xff
		}
		return r.WithContext(context.WithValue(r.Context(), proxySocketKey{}, true))
	}
	for name, tt := range map[string]struct {
		r    *http.Request
		want string
	}{
		"one hop":        {onSocket("203.0.113.7"), "203.0.113.7"},
		"two hops":       {onSocket("198.51.100.1, 203.0.113.7"), "203.0.113.7"},
		"none":           {onSocket(), proxySocketPeer},
		"malformed list": {onSocket("not an address"), proxySocketPeer},
	} {
		if got := s.clientAddr(tt.r); got != tt.want {
			t.Errorf("%s: clientAddr = %q, want %q", name, got, tt.want)
		}
	}
	// The same header on a TCP connection from a client is not read.
	r := httptest.NewRequest(http.MethodGet, "/auth/verify", nil)
	r.RemoteAddr = "192.0.2.9:5555"
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	if got := s.clientAddr(r); got != "192.0.2.9" {
		t.Errorf("a client's X-Forwarded-For: clientAddr = %q, want its own address 192.0.2.9", got)
	}
}
