package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"slices"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

func TestCA_IssuesVerifiableCertificates(t *testing.T) {
	now := time.Now()
	authority, err := New("test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := authority.Key.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Fatalf("CA key is %T, want ECDSA P-256", authority.Key)
	}
	pool := x509.NewCertPool()
	pool.AddCert(authority.Cert)

	client, err := authority.IssueClient(ClientRequest{Name: "alice", Email: "alice@example.com"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if client.Cert.Subject.CommonName != "alice" || !slices.Equal(client.Cert.EmailAddresses, []string{"alice@example.com"}) {
		t.Errorf("client subject %v emails %v", client.Cert.Subject, client.Cert.EmailAddresses)
	}
	if _, err := client.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify for client auth: %v", err)
	}
	if _, err := client.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client certificate verifies for server auth")
	}

	srv, err := authority.IssueServer([]string{"localhost", "127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if client.Cert.SerialNumber.Cmp(srv.Cert.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
}

func TestCA_PEMAndPKCS12RoundTrip(t *testing.T) {
	now := time.Now()
	authority, err := New("test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := KeyPEM(authority.Key)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(CertPEM(authority.Cert), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(authority.Cert) {
		t.Error("loaded CA certificate differs")
	}
	if _, err := Load(CertPEM(authority.Cert), []byte("not a key")); err == nil {
		t.Error("Load accepted a garbage key")
	}

	issued, err := loaded.IssueClient(ClientRequest{Name: "bob"}, now)
	if err != nil {
		t.Fatal(err)
	}
	p12, err := PKCS12(issued, authority.Cert, "import password")
	if err != nil {
		t.Fatal(err)
	}
	_, cert, cas, err := pkcs12.DecodeChain(p12, "import password")
	if err != nil {
		t.Fatalf("decode .p12: %v", err)
	}
	if !cert.Equal(issued.Cert) || len(cas) != 1 || !cas[0].Equal(authority.Cert) {
		t.Error(".p12 does not hold the certificate and its CA")
	}
	if _, _, _, err := pkcs12.DecodeChain(p12, "wrong"); err == nil {
		t.Error(".p12 opened with the wrong password")
	}
}
