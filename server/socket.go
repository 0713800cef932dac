package server

import (
	"context"
	"net"
	"net/http"
)

// The verify socket: forward auth for a proxy on the same host.
//
// When nginx runs on the portal's machine, TLS and TCP on the hop from
// nginx to the portal cost CPU and protect nothing. gatehouse serve
// --verify-socket PATH then also listens on a Unix socket at PATH,
// speaking plain HTTP/1.1, with ProxyHandler's routes only (forward auth
// and liveness; addProxyRoutes). The socket file's permissions (0660,
// the portal's user and group) are its access control: whoever can
// connect to it is the proxy, and is trusted as a --trusted-proxy is (its
// forwarded client certificate and X-Forwarded-For are read).
//
// Trust is tied to the connection, never to the request: ProxyHTTPServer
// marks each connection it accepts on a Unix socket (ConnContext), and
// fromTrustedProxy reads the mark. A Unix socket's peer has no address
// ("@" or "") to match against --trusted-proxy.

// proxySocketKey marks the context of a connection accepted on the
// verify socket.
type proxySocketKey struct{}

// proxySocketPeer stands for the connection's peer in clientAddr when a
// request on the verify socket names no client in X-Forwarded-For.
const proxySocketPeer = "verify-socket"

// ProxyHTTPServer wraps handler (the verify socket's, ProxyHandler) in an
// http.Server for a Unix socket listener: the portal's timeouts, plain
// HTTP/1.1, and every connection accepted on a Unix socket marked as the
// proxy's. Connections on any other kind of listener are not marked, so
// serving this server on TCP by mistake trusts nobody.
func ProxyHTTPServer(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnContext:       markProxySocket,
	}
}

// markProxySocket is ProxyHTTPServer's ConnContext.
func markProxySocket(ctx context.Context, c net.Conn) context.Context {
	if c.LocalAddr().Network() != "unix" {
		return ctx
	}
	return context.WithValue(ctx, proxySocketKey{}, true)
}

// fromProxySocket reports whether r came over the verify socket.
func fromProxySocket(r *http.Request) bool {
	on, _ := r.Context().Value(proxySocketKey{}).(bool)
	return on
}
