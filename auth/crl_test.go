package auth

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func (ca *testCA) crl(t *testing.T, number int64, thisUpdate, nextUpdate time.Time, revoked ...*x509.Certificate) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: thisUpdate, NextUpdate: nextUpdate}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: thisUpdate})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func TestCertVerifier_CRLs(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	root := newTestCA(t, "root", now.Add(-year), now.Add(5*year), nil)
	other := newTestCA(t, "other", now.Add(-year), now.Add(5*year), nil)
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	revoked := root.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(year)))
	kept := root.issue(t, clientTemplate("bob", now.Add(-time.Hour), now.Add(year)))

	fresh := root.crl(t, 2, now.Add(-time.Hour), now.Add(24*time.Hour), revoked)
	older := root.crl(t, 1, now.Add(-48*time.Hour), now.Add(24*time.Hour)) // revokes nothing
	stale := root.crl(t, 3, now.Add(-48*time.Hour), now.Add(-24*time.Hour))

	tests := []struct {
		name  string
		files map[string][]byte
		cert  *x509.Certificate
		want  CertStatus
	}{
		{"serial on the list is revoked", map[string][]byte{"a": fresh}, revoked, CertRevoked},
		{"serial not on the list is valid", map[string][]byte{"a": fresh}, kept, CertValid},
		{"the higher CRL number wins over an older list", map[string][]byte{"a": older, "b": fresh}, revoked, CertRevoked},
		{"a stale list fails closed", map[string][]byte{"a": stale}, kept, CertInvalid},
		{"no list for the issuer: not covered", map[string][]byte{}, revoked, CertValid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := ParseCRLs(tc.files, []*x509.Certificate{root.cert})
			if err != nil {
				t.Fatal(err)
			}
			v := &CertVerifier{Roots: pool, CRLs: func() *CRLSet { return set }}
			got := v.Verify(t.Context(), []*x509.Certificate{tc.cert}, now)
			if got.Status != tc.want {
				t.Fatalf("status = %v (%q), want %v", got.Status, got.Notice, tc.want)
			}
		})
	}

	t.Run("a list signed by an untrusted CA is refused", func(t *testing.T) {
		forged := other.crl(t, 9, now.Add(-time.Hour), now.Add(time.Hour), revoked)
		if _, err := ParseCRLs(map[string][]byte{"forged": forged}, []*x509.Certificate{root.cert}); err == nil || !strings.Contains(err.Error(), "not signed by a configured client CA") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("garbage is refused", func(t *testing.T) {
		if _, err := ParseCRLs(map[string][]byte{"junk": []byte("hello")}, []*x509.Certificate{root.cert}); err == nil {
			t.Fatal("garbage accepted")
		}
	})
}

func TestCertVerifier_RevocationCheckErrorFailsClosed(t *testing.T) {
	now := time.Now()
	root := newTestCA(t, "root", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	leaf := root.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour)))
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	v := &CertVerifier{Roots: pool, Revoked: func(context.Context, string, string) (bool, error) { return false, errors.New("store down") }}
	got := v.Verify(t.Context(), []*x509.Certificate{leaf}, now)
	if got.Valid() || !strings.Contains(got.Notice, "could not be checked") {
		t.Fatalf("got %v %q, want a failure that says the check could not be made", got.Status, got.Notice)
	}
}

func TestCertInfo_KeyPinSurvivesRenewal(t *testing.T) {
	now := time.Now()
	root := newTestCA(t, "root", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	first := root.issue(t, clientTemplate("laptop", now.Add(-time.Hour), now.Add(time.Hour)))
	// Renew with the same public key.
	tmpl := clientTemplate("laptop", now.Add(-time.Minute), now.Add(2*time.Hour))
	tmpl.SerialNumber = big.NewInt(999)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.cert, first.PublicKey, root.key)
	if err != nil {
		t.Fatal(err)
	}
	renewed, _ := x509.ParseCertificate(der)
	a, b := infoOf(first), infoOf(renewed)
	if a.Fingerprint == b.Fingerprint {
		t.Fatal("renewed certificate has the same fingerprint")
	}
	if a.KeyPin != b.KeyPin {
		t.Fatalf("key pin changed on renewal: %s vs %s", a.KeyPin, b.KeyPin)
	}
	if !CertBoundTo(b, Account{Name: "bob", PinnedKeys: []string{a.KeyPin}}) {
		t.Fatal("renewed certificate not bound through the key pin")
	}
}
