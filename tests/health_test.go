package tests

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// health runs "gatehouse health --addr ADDR FLAGS…" against p's data
// directory and returns its stdout, stderr and error.
func (p *portal) health(t *testing.T, addr string, flags ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := p.command(ctx, append([]string{"health", "--addr", addr}, flags...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// "gatehouse health" (the image's health check) says alive when the
// portal answers, "--ready" only when its store answers too, and neither
// unless the answer comes from the portal itself.
func TestHealth_AliveReadyAndImpostor(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	if p.Redis.External() {
		t.Skip("GATEHOUSE_TEST_REDIS is a shared Redis that this test cannot stop")
	}

	out, errOut, err := p.health(t, p.Addr)
	if err != nil || !strings.Contains(out, `alive: {"status":"ok"}`) {
		t.Fatalf("health of a running portal: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	out, errOut, err = p.health(t, p.Addr, "--ready")
	if err != nil || !strings.HasPrefix(out, `ready: {"status":"ready"`) {
		t.Fatalf("health --ready of a ready portal: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	// The listen address as serve takes it (":PORT") means this machine.
	_, port, _ := net.SplitHostPort(p.Addr)
	if _, errOut, err := p.health(t, ":"+port, "--ready"); err != nil {
		t.Errorf("health --ready with --addr :%s: %v\n%s", port, err, errOut)
	}

	// The store is down: the portal is alive (it answers 503 pages and
	// recovers by itself) but not ready.
	p.Redis.Stop()
	if _, errOut, err := p.health(t, p.Addr); err != nil {
		t.Errorf("health with the store down: %v, stderr %q; want alive", err, errOut)
	}
	_, errOut, err = p.health(t, p.Addr, "--ready")
	if err == nil || !strings.Contains(errOut, "not ready: 503") {
		t.Errorf("health --ready with the store down: err %v, stderr %q; want exit 1 saying not ready: 503", err, errOut)
	}
	p.Redis.Start()

	// Another TLS server on another port, answering 200 to everything
	// with a certificate for the same names: not the portal.
	c := newRootCA(t, "Impostor CA", nil)
	dir := t.TempDir()
	certFile, keyFile := writeServerCertFiles(t, c, dir, "impostor", "localhost", "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Bool
	srv := &http.Server{ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Store(true)
		w.Write([]byte(`{"status":"ready"}`))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, errOut, err = p.health(t, ln.Addr().String())
	if err == nil || !strings.Contains(errOut, "does not present "+filepath.Join(p.Data, "pki", "server.crt")) {
		t.Errorf("health against another server: err %v, stderr %q; want a refusal of its certificate", err, errOut)
	}
	if served.Load() {
		t.Error("health sent its request to a server that is not the portal")
	}

	// Nothing listening at all.
	_, errOut, err = p.health(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))))
	if err == nil || !strings.Contains(errOut, "not healthy") {
		t.Errorf("health with nothing listening: err %v, stderr %q", err, errOut)
	}
}
