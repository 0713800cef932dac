package server

import (
	"crypto/tls"
	"crypto/x509"
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

// TLS12CipherSuites returns the only cipher suites the portal offers on
// TLS 1.2: ECDHE key exchange, for forward secrecy, with an AEAD cipher
// (AES-GCM or ChaCha20-Poly1305), for ECDSA and for RSA server keys. No
// CBC mode, no SHA-1 MAC, no RSA key exchange. TLS 1.3's suites are all
// of that kind, and Go does not let them be configured. Each call returns
// a new slice.
func TLS12CipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// TLSConfig is the portal's TLS configuration: TLS 1.2 at least, with
// TLS12CipherSuites only, and a client certificate requested but not
// required and not verified during the handshake. Verification happens
// in package auth on every request, so that a bad certificate gives the
// user a page that says why instead of a bare browser TLS error, and so
// that a resumed TLS session (for which Go skips handshake verification
// callbacks) is checked too.
//
// The request names clientCAs (the client CAs and their intermediates)
// as the authorities it accepts, so a browser offers only certificates
// that can count here instead of every certificate the person holds. The
// names are a hint to the browser, never a check.
func TLSConfig(cert tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: TLS12CipherSuites(),
		ClientAuth:   tls.RequestClientCert,
		ClientCAs:    clientCAs,
	}
}

// HTTPServer wraps handler in an http.Server with the portal's timeouts
// and TLS configuration.
func HTTPServer(addr string, handler http.Handler, cert tls.Certificate, clientCAs *x509.CertPool) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           handler,
		TLSConfig:         TLSConfig(cert, clientCAs),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}
