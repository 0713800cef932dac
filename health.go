package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"gatehouse/auth/ca"
	"gatehouse/server"
)

// healthTimeout bounds one health check: a container runtime runs it
// every few seconds.
const healthTimeout = 5 * time.Second

// healthCmd asks the portal on this machine whether it is alive
// (GET /healthz), or with --ready whether it can serve sign-ins
// (GET /readyz: the store answers), for a container's health check: exit
// status 0 when it is, 1 with the reason otherwise. It connects to the
// port of --addr on the loopback interface (or to the host --addr names)
// and accepts only the server certificate the portal is configured with
// (--tls-cert, or DATA/pki/server.crt), whatever names it carries: the
// check needs no CA, and a program without the portal's key cannot answer
// it.
//
// The image's health check is the liveness one: during a store outage the
// portal is alive and answers every request with a clear 503, and it
// recovers by itself when the store is back; an orchestrator that
// replaced it would only turn that 503 into a refused connection.
var healthCmd = &command{
	name:  "health",
	args:  "[--ready] [--addr ADDR] [--tls-cert FILE]",
	short: "exit 0 if the portal on this machine is alive (--ready: its store answers too)",
	setup: func(fs *flag.FlagSet) runFunc {
		o := &healthOptions{settings: addSettings(fs)}
		fs.StringVar(&o.addr, "addr", defaultAddr, "the `address` the portal listens on (serve's --addr)")
		fs.StringVar(&o.tlsCert, "tls-cert", "", "the server certificate `file` the portal presents (serve's --tls-cert; default DATA/pki/server.crt)")
		fs.BoolVar(&o.ready, "ready", false, "ask GET /readyz (the store answers too) instead of GET /healthz")
		return func(e *env, _ []string) error { return health(e, o) }
	},
}

// healthOptions are the flags of health.
type healthOptions struct {
	*settings
	addr, tlsCert string
	ready         bool
}

func health(e *env, o *healthOptions) error {
	path, what := "/healthz", "alive"
	if o.ready {
		path, what = "/readyz", "ready"
	}
	certFile := o.tlsCert
	if certFile == "" {
		certFile = layout{o.data}.serverCert()
	}
	want, err := leafDER(certFile)
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(o.addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", o.addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	target := net.JoinHostPort(host, port)

	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, target)
		},
		TLSClientConfig:   healthTLSConfig(want, target, certFile),
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(e.ctx, healthTimeout)
	defer cancel()
	// The Host matches the server name sent in the handshake, as the
	// portal requires.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://localhost:"+port+path, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("not healthy: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not %s: %s %s", what, resp.Status, bytes.TrimSpace(body))
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", what, bytes.TrimSpace(body))
	return nil
}

// healthTLSConfig is the health check's TLS client configuration: the
// portal's own versions and TLS 1.2 suites, and, instead of the usual
// name and chain checks, a stricter one: the leaf must be want (the
// configured certificate certFile), byte for byte.
func healthTLSConfig(want []byte, target, certFile string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		CipherSuites:       server.TLS12CipherSuites(),
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return fmt.Errorf("the server on %s does not present %s", target, certFile)
			}
			return nil
		},
		// A client certificate is optional; the check presents none.
	}
}

// leafDER reads the first certificate of a PEM file.
func leafDER(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read the server certificate: %w", err)
	}
	c, err := ca.ParseCertPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c.Raw, nil
}
