package tests

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/store/storetest"
)

// Redis over TLS (rediss://), as managed services and most production
// Redis servers run it: a server certificate from a private CA, which
// the portal trusts through SSL_CERT_FILE (README, "Redis over TLS").
// init, serve, a sign-in with the admin's certificate, forward auth, and
// a change made by the command line counted on the portal's next request
// (the store cache's feed runs over TLS too). Without the CA, the
// command line and the portal refuse the server and say why.
func TestRedisOverTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, url := startTLSRedis(t, dir)

	p := &portal{Data: filepath.Join(dir, "data"), StoreURL: url, bin: gatehouseBinary(t), logDir: dir,
		Env: []string{"SSL_CERT_FILE=" + caFile}}
	p.cli(t, "", "init")
	p.start(t)

	cert := p.adminCert(t)
	admin := p.client(t, &cert)
	wantRedirect(t, admin.login(t, "admin", p.AdminPassword), "/")
	wantEffective(t, "the admin over a store on TLS", admin.session(t), "admin", "employee")

	p.cli(t, bobPassword+"\n", "user", "add", "bob", "--role", "employee", "--password-stdin")
	bob := p.client(t, nil)
	wantRedirect(t, bob.login(t, "bob", bobPassword), "/")
	for range 3 {
		wantEffective(t, "bob", bob.session(t), "employee")
	}
	p.cli(t, "", "user", "disable", "bob")
	wantUnauthenticated(t, bob.get(t, "/api/session"))
	for _, off := range []string{"store cache off", "store cache not in use"} {
		if strings.Contains(p.server.output(), off) {
			t.Errorf("the portal on a store over TLS says %q:\n%s", off, p.server.output())
		}
	}

	untrusting := &portal{Data: p.Data, StoreURL: url, bin: p.bin, logDir: t.TempDir()}
	if stderr := untrusting.cliFails(t, "user", "list"); !strings.Contains(stderr, "SSL_CERT_FILE") {
		t.Errorf("gatehouse user list without the Redis server's CA: %q, want it to say how to trust it", stderr)
	}
}

// startTLSRedis starts a redis-server that speaks only TLS on a free port
// of 127.0.0.1, with a certificate for localhost from a CA made here, and
// returns the CA's file and a rediss:// URL for it.
func startTLSRedis(t *testing.T, dir string) (caFile, url string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		storetest.NeedService(t, "redis-server is not installed (apt-get install redis-server): this test starts one that speaks TLS")
	}
	root := newRootCA(t, "Gatehouse test Redis CA", nil)
	key := newKey(t)
	now := time.Now()
	leaf := root.sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   now.Add(-time.Minute),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, key.Public())
	caFile, certFile, keyFile := filepath.Join(dir, "redis-ca.crt"), filepath.Join(dir, "redis.crt"), filepath.Join(dir, "redis.key")
	writeCertPEM(t, caFile, root.Cert)
	writeCertPEM(t, certFile, leaf)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}

	port := strconv.Itoa(freePort(t))
	cmd := exec.Command(bin, "--port", "0", "--tls-port", port, "--bind", "127.0.0.1",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "no",
		"--dir", dir, "--save", "", "--appendonly", "yes", "--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server with TLS: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	roots := x509.NewCertPool()
	roots.AddCert(root.Cert)
	addr := net.JoinHostPort("127.0.0.1", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
		if err == nil {
			c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return caFile, "rediss://localhost:" + port + "/0"
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redis-server with TLS does not answer on %s: %v\n%s", addr, err, log)
		}
	}
}
