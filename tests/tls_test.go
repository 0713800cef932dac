package tests

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// tls12Allowed are the TLS 1.2 cipher suites the portal may agree to:
// ECDHE key exchange (forward secrecy) with AES-GCM or ChaCha20-Poly1305
// (AEAD), for ECDSA and RSA server keys.
var tls12Allowed = map[uint16]bool{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:       true,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:       true,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: true,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:         true,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:         true,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   true,
}

// A TLS 1.2 client restricted to one cipher suite gets a connection to
// the running portal only when that suite is ECDHE with an AEAD cipher
// and suits the server's key: CBC suites, SHA-1 MACs, RSA key exchange,
// 3DES and RC4 are refused. Checked with the certificate "gatehouse init"
// makes (ECDSA), then with an RSA certificate given with --tls-cert, as
// an operator's certificate from a public CA often is. A current client
// still gets TLS 1.3.
func TestTLS12_OnlyForwardSecretAEADSuites(t *testing.T) {
	t.Parallel()
	p := initPortal(t)
	rsaCert, rsaKey := writeRSAServerCert(t, p)
	pool, err := p.caPool()
	if err != nil {
		t.Fatal(err)
	}
	var suites []*tls.CipherSuite
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			suites = append(suites, cs)
		}
	}
	dial := func(cfg *tls.Config) (tls.ConnectionState, error) {
		cfg.RootCAs, cfg.ServerName = pool, "localhost"
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", p.Addr, cfg)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		return conn.ConnectionState(), nil
	}

	for _, server := range []struct {
		name     string
		certFile string
		flags    []string
	}{
		{"built-in certificate", filepath.Join(p.Data, "pki", "server.crt"), nil},
		{"RSA certificate", rsaCert, []string{"--tls-cert", rsaCert, "--tls-key", rsaKey}},
	} {
		if p.server != nil {
			p.server.stop(t)
		}
		p.serve(t, server.flags...)
		// The suites that can work name the server's key type.
		kx := "ECDHE_" + serverKeyType(t, server.certFile) + "_"
		for _, cs := range suites {
			want := tls12Allowed[cs.ID] && strings.Contains(cs.Name, kx)
			t.Run(server.name+"/"+cs.Name, func(t *testing.T) {
				state, err := dial(&tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{cs.ID}})
				switch {
				case want && err != nil:
					t.Errorf("a TLS 1.2 client with only %s was refused: %v", cs.Name, err)
				case !want && err == nil:
					t.Errorf("a TLS 1.2 client with only %s got a connection", cs.Name)
				case want && state.CipherSuite != cs.ID:
					t.Errorf("agreed on %s, want %s", tls.CipherSuiteName(state.CipherSuite), cs.Name)
				}
			})
		}
		t.Run(server.name+"/TLS 1.3", func(t *testing.T) {
			if state, err := dial(&tls.Config{}); err != nil || state.Version != tls.VersionTLS13 {
				t.Errorf("a current client: version %x, %v; want TLS 1.3", state.Version, err)
			}
		})
	}
}

// serverKeyType is "ECDSA" or "RSA": the key type of the first
// certificate in file.
func serverKeyType(t *testing.T, file string) string {
	t.Helper()
	block, _ := pem.Decode(readFile(t, file))
	if block == nil {
		t.Fatalf("%s holds no PEM certificate", file)
	}
	c := parseCert(t, block.Bytes)
	switch c.PublicKeyAlgorithm {
	case x509.ECDSA:
		return "ECDSA"
	case x509.RSA:
		return "RSA"
	}
	t.Fatalf("%s has a %v key; the test knows ECDSA and RSA", file, c.PublicKeyAlgorithm)
	return ""
}

// writeRSAServerCert writes an RSA server certificate for localhost and
// 127.0.0.1 signed by the portal's built-in CA, and its key, and returns
// the two files.
func writeRSAServerCert(t *testing.T, p *portal) (certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	leaf := p.builtinCA(t).sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, key.Public())
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "rsa.crt"), filepath.Join(dir, "rsa.key")
	writeCertPEM(t, certFile, leaf)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
