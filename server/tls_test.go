package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// The http.Server has every timeout set (a slow client cannot hold a
// connection open for ever), none shorter than a person needs to pick a
// certificate mid-handshake, TLS 1.2 at least, and a client certificate
// requested but not required.
func TestHTTPServer_TimeoutsAndTLS(t *testing.T) {
	srv := HTTPServer(":0", nil, tls.Certificate{}, nil)
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout,
	} {
		if d < time.Minute || d > 5*time.Minute {
			t.Errorf("%s = %v, want between 1 and 5 minutes", name, d)
		}
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Errorf("MaxHeaderBytes = %d, want a limit of at most 64 KiB", srv.MaxHeaderBytes)
	}
	if c := srv.TLSConfig; c.MinVersion != tls.VersionTLS12 || c.ClientAuth != tls.RequestClientCert {
		t.Errorf("TLS config: min version %x, client auth %v; want TLS 1.2 and RequestClientCert", c.MinVersion, c.ClientAuth)
	}
}

// tls12Allowed are the TLS 1.2 cipher suites the portal may agree to,
// written out here independently of the code: ECDHE key exchange
// (forward secrecy) with AES-GCM or ChaCha20-Poly1305 (AEAD), for ECDSA
// and RSA server keys.
var tls12Allowed = map[uint16]bool{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:       true,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:       true,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: true,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:         true,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:         true,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   true,
}

// A TLS 1.2 client gets a connection only with an ECDHE suite with an
// AEAD cipher that suits the server's key; CBC suites, SHA-1 MACs, RSA
// key exchange, 3DES and RC4 are refused, with an ECDSA server key and
// with an RSA one. TLS 1.3 is still what a current client gets.
func TestTLSConfig_TLS12OnlyForwardSecretAEADSuites(t *testing.T) {
	t.Parallel()
	keys := []struct {
		name string
		cert tls.Certificate
		// kx is how the suites for this key type are named.
		kx string
	}{
		{"ECDSA key", selfSigned(t, mustECDSAKey(t)), "_ECDSA_"},
		{"RSA key", selfSigned(t, mustRSAKey(t)), "_RSA_"},
	}
	var suites []*tls.CipherSuite
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			suites = append(suites, cs)
		}
	}
	for _, k := range keys {
		cfg := TLSConfig(k.cert, nil)
		for _, cs := range suites {
			want := tls12Allowed[cs.ID] && strings.Contains(cs.Name, "ECDHE"+k.kx)
			t.Run(k.name+"/"+cs.Name, func(t *testing.T) {
				t.Parallel()
				state, err := handshake(cfg, &tls.Config{InsecureSkipVerify: true,
					MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{cs.ID}})
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
		t.Run(k.name+"/TLS 1.3", func(t *testing.T) {
			t.Parallel()
			state, err := handshake(cfg, &tls.Config{InsecureSkipVerify: true})
			if err != nil || state.Version != tls.VersionTLS13 {
				t.Errorf("a current client: version %x, %v; want TLS 1.3", state.Version, err)
			}
		})
	}
}

// handshake runs a TLS handshake between a server with srv and a client
// with cli over an in-memory connection and returns what the client got.
func handshake(srv, cli *tls.Config) (tls.ConnectionState, error) {
	c, s := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tls.Server(s, srv).Handshake()
		s.Close() // not the TLS close: nobody reads its alert
	}()
	conn := tls.Client(c, cli)
	err := conn.Handshake()
	state := conn.ConnectionState()
	c.Close()
	<-done
	return state, err
}

func mustECDSAKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRSAKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// selfSigned is a server certificate for key, good for a handshake with a
// client that does not verify it.
func selfSigned(t *testing.T, key crypto.Signer) tls.Certificate {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
