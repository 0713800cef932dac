package server

import (
	"crypto/tls"
	"net/http"
	"time"
)

// HTTP server timeouts. The TLS handshake runs under the smallest of
// them, and a person may need a while to pick a certificate in the
// browser's dialog mid-handshake, so none is below a minute. Bodies are
// small (maxBodyBytes), so the limits still cut off slow clients.
const (
	ReadHeaderTimeout = 60 * time.Second
	ReadTimeout       = 90 * time.Second
	WriteTimeout      = 120 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 32 << 10
)

// TLSConfig is the portal's TLS configuration: TLS 1.2 at least, and a
// client certificate requested but not required and not verified during
// the handshake. Verification happens in package auth on every request,
// so that a bad certificate gives the user a page that says why instead
// of a bare browser TLS error, and so that a resumed TLS session (for
// which Go skips handshake verification callbacks) is checked too.
func TLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.RequestClientCert,
	}
}

// HTTPServer wraps handler in an http.Server with the portal's timeouts
// and TLS configuration.
func HTTPServer(addr string, handler http.Handler, cert tls.Certificate) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           handler,
		TLSConfig:         TLSConfig(cert),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}
