package tests

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
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
	noteKeyFile(t, prefix+".key")
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

// testCA is a certificate authority a test signs with: the portal's
// built-in CA loaded from DATA/pki, or an enterprise root or intermediate
// made at run time.
type testCA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// builtinCA loads the portal's own CA from DATA/pki/ca.crt and ca.key,
// so that a test can sign certificates (and CRLs) the portal trusts but
// "gatehouse cert issue" would never make.
func (p *portal) builtinCA(t *testing.T) *testCA {
	t.Helper()
	certPEM, err := os.ReadFile(filepath.Join(p.Data, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(p.Data, "pki", "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Load(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("load the built-in CA: %v", err)
	}
	return &testCA{Cert: c.Cert, Key: c.Key}
}

// newRootCA makes a self-signed root that may sign one level of
// intermediates, as an enterprise PKI's offline root does. subject, when
// not nil, is the raw DER subject to use instead of cn (to imitate
// another CA's name).
func newRootCA(t *testing.T, cn string, subject []byte) *testCA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Corp Example"}},
		RawSubject:            subject,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("create root CA %q: %v", cn, err)
	}
	return &testCA{Cert: parseCert(t, der), Key: key}
}

// newIntermediate makes an issuing CA signed by c that may sign only
// end-entity certificates.
func (c *testCA) newIntermediate(t *testing.T, cn string) *testCA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Corp Example"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(2 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return &testCA{Cert: c.sign(t, tmpl, key.Public()), Key: key}
}

// sign signs tmpl for the public key pub, giving it a random serial
// number when it has none.
func (c *testCA) sign(t *testing.T, tmpl *x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = newSerial(t)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, pub, c.Key)
	if err != nil {
		t.Fatalf("sign certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	return parseCert(t, der)
}

// issue signs tmpl for key (a new key when nil) and returns what a TLS
// client presents: the leaf followed by chain, the intermediates.
func (c *testCA) issue(t *testing.T, tmpl *x509.Certificate, key *ecdsa.PrivateKey, chain ...*x509.Certificate) tls.Certificate {
	t.Helper()
	if key == nil {
		key = newKey(t)
	}
	leaf := c.sign(t, tmpl, key.Public())
	cert := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	for _, ic := range chain {
		cert.Certificate = append(cert.Certificate, ic.Raw)
	}
	return cert
}

// clientValidity is how long the client certificates the tests make are
// valid: far from the end, so that no renewal reminder joins the notices.
const clientValidity = 90 * 24 * time.Hour

// clientTemplate is a client certificate for cn (and SAN emails), valid
// from a minute ago for clientValidity, with the clientAuth usage. Tests
// change what they want to check.
func clientTemplate(cn string, emails ...string) *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		Subject:        pkix.Name{CommonName: cn},
		EmailAddresses: emails,
		NotBefore:      now.Add(-time.Minute),
		NotAfter:       now.Add(clientValidity),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// writeCertPEM writes a certificate to path as PEM.
func writeCertPEM(t *testing.T, path string, c *x509.Certificate) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// leafOf returns the parsed leaf of a certificate a client presents.
func leafOf(t *testing.T, cert tls.Certificate) *x509.Certificate {
	t.Helper()
	if cert.Leaf != nil {
		return cert.Leaf
	}
	return parseCert(t, cert.Certificate[0])
}

// fingerprint is "sha256:<hex>" of a DER certificate, computed here
// independently of the portal's code.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func newSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

func parseCert(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
