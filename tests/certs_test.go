package tests

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gatehouse/auth/ca"
)

// The certificates the tests present are made here, at run time.

// adminCert is the first admin's certificate and key from
// DATA/initial-admin.crt and .key.
func (p *portal) adminCert(t *testing.T) tls.Certificate {
	t.Helper()
	return loadCert(t, filepath.Join(p.Data, "initial-admin"))
}

// loadCert loads PREFIX.crt and PREFIX.key, as "gatehouse cert issue
// --out PREFIX" writes them.
func loadCert(t *testing.T, prefix string) tls.Certificate {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(prefix+".crt", prefix+".key")
	if err != nil {
		t.Fatalf("load client certificate %s: %v", prefix, err)
	}
	return cert
}

// foreignCert returns a client certificate with common name cn and the
// clientAuth usage, issued by a new CA that the portal has never seen:
// it looks exactly like a real one, but must not count.
func foreignCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	now := time.Now()
	other, err := ca.New("Some other CA", now)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := other.IssueClient(ca.ClientRequest{Name: cn}, now)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ca.KeyPEM(issued.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(ca.CertPEM(issued.Cert), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// fingerprintOfFile is "sha256:<hex>" of the DER certificate in a PEM
// file, computed here independently of the portal's code.
func fingerprintOfFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", path)
	}
	sum := sha256.Sum256(block.Bytes)
	return "sha256:" + hex.EncodeToString(sum[:])
}
