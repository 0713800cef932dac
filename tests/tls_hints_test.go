package tests

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestTLS_CertificateRequestNamesTheClientCAs checks the names the
// handshake's certificate request gives as acceptable authorities: the
// configured client CAs and intermediates, so that a browser's picker
// offers only certificates that can count here. Nothing else.
func TestTLS_CertificateRequestNamesTheClientCAs(t *testing.T) {
	t.Parallel()
	e := newEnterprisePKI(t)
	intermediateFile := filepath.Join(t.TempDir(), "issuing.crt")
	writeCertPEM(t, intermediateFile, e.issuing.Cert)
	p := startEnterprisePortal(t, e, "--client-intermediate", intermediateFile)
	builtin := p.builtinCA(t)
	unrelated := newRootCA(t, "Unrelated Root CA", nil)

	roots, err := p.caPool()
	if err != nil {
		t.Fatal(err)
	}
	var acceptable [][]byte
	asked := false
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(info *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked, acceptable = true, info.AcceptableCAs
			return &tls.Certificate{}, nil
		}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}).DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	conn.Close()
	if !asked {
		t.Fatal("the server did not ask for a client certificate")
	}
	has := func(raw []byte) bool {
		return slices.ContainsFunc(acceptable, func(a []byte) bool { return string(a) == string(raw) })
	}
	for name, raw := range map[string][]byte{
		"the built-in CA":    builtin.Cert.RawSubject,
		"the company's root": e.root.Cert.RawSubject,
		"its issuing CA":     e.issuing.Cert.RawSubject,
	} {
		if !has(raw) {
			t.Errorf("the certificate request does not name %s", name)
		}
	}
	if has(unrelated.Cert.RawSubject) || len(acceptable) != 3 {
		t.Errorf("the certificate request names %d authorities, want exactly the 3 configured", len(acceptable))
	}
}
