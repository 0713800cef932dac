package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gatehouse/tests/certtest"
)

// testCA is a throwaway certificate authority made at run time.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64

// newTestCA makes a CA signed by parent, or a root when parent is nil.
// Its key usage is certSign and cRLSign unless usage says otherwise.
func newTestCA(t testing.TB, name string, notBefore, notAfter time.Time, parent *testCA, usage ...x509.KeyUsage) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	if len(usage) > 0 {
		tmpl.KeyUsage = usage[0]
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) issue(t testing.TB, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func clientTemplate(cn string, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:   pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

func TestCertVerifier_Verify(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	root := newTestCA(t, "root", now.Add(-year), now.Add(5*year), nil)
	other := newTestCA(t, "other", now.Add(-year), now.Add(5*year), nil)
	intermediate := newTestCA(t, "intermediate", now.Add(-year), now.Add(4*year), root)
	expiredCA := newTestCA(t, "expired root", now.Add(-3*year), now.Add(-year/2), nil)

	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	pool.AddCert(expiredCA.cert)

	good := root.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(year)))
	expiredLeaf := root.issue(t, clientTemplate("alice", now.Add(-year), time.Date(2026, 5, 3, 0, 0, 0, 0, time.UTC)))
	future := root.issue(t, clientTemplate("alice", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), now.Add(year)))
	noEKUTmpl := clientTemplate("alice", now.Add(-time.Hour), now.Add(year))
	noEKUTmpl.ExtKeyUsage = nil
	noEKU := root.issue(t, noEKUTmpl)
	serverTmpl := clientTemplate("alice", now.Add(-time.Hour), now.Add(year))
	serverTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	serverOnly := root.issue(t, serverTmpl)
	fromOther := other.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(year)))
	viaIntermediate := intermediate.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(year)))
	underExpiredCA := expiredCA.issue(t, clientTemplate("alice", now.Add(-2*year), now.Add(year)))

	tests := []struct {
		name    string
		chain   []*x509.Certificate
		revoked bool
		want    CertStatus
		notice  string
		hasInfo bool
	}{
		{"no certificate", nil, false, CertAbsent, "", false},
		{"valid leaf from a client CA", []*x509.Certificate{good}, false, CertValid, "", true},
		{"valid leaf through a presented intermediate", []*x509.Certificate{viaIntermediate, intermediate.cert}, false, CertValid, "", true},
		{"intermediate missing from the chain", []*x509.Certificate{viaIntermediate}, false, CertUnknownIssuer, "not issued by a certificate authority this portal trusts", false},
		{"leaf from another CA", []*x509.Certificate{fromOther}, false, CertUnknownIssuer, "not issued by a certificate authority this portal trusts", false},
		{"expired leaf says when", []*x509.Certificate{expiredLeaf}, false, CertExpired, "your certificate expired on 3 May 2026", true},
		{"not yet valid leaf says when", []*x509.Certificate{future}, false, CertNotYetValid, "not valid until 1 June 2026", true},
		{"leaf without any extended key usage", []*x509.Certificate{noEKU}, false, CertNoClientAuth, "not made for signing in", true},
		{"leaf for servers only", []*x509.Certificate{serverOnly}, false, CertNoClientAuth, "not made for signing in", false},
		{"revoked leaf", []*x509.Certificate{good}, true, CertRevoked, "revoked", true},
		{"leaf under an expired CA", []*x509.Certificate{underExpiredCA}, false, CertInvalid, "issuing authority", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := &CertVerifier{Roots: pool}
			if tc.revoked {
				v.Revoked = func(_ context.Context, issuer, serial string) (bool, error) {
					return issuer == IssuerID(good.RawIssuer) && serial == good.SerialNumber.Text(16), nil
				}
			}
			got := v.Verify(t.Context(), tc.chain, now)
			if got.Status != tc.want {
				t.Fatalf("status = %v, want %v (notice %q)", got.Status, tc.want, got.Notice)
			}
			if !strings.Contains(got.Notice, tc.notice) {
				t.Errorf("notice = %q, want it to contain %q", got.Notice, tc.notice)
			}
			if (got.Info != nil) != tc.hasInfo {
				t.Errorf("info = %v, want present=%v", got.Info, tc.hasInfo)
			}
			if got.Info != nil && !strings.HasPrefix(got.Info.Fingerprint, "sha256:") {
				t.Errorf("fingerprint %q lacks sha256: prefix", got.Info.Fingerprint)
			}
		})
	}
}

// TestCertVerifier_NoRootsVerifiesNothing checks that a verifier without
// a pool never falls back to the system roots.
func TestCertVerifier_NoRootsVerifiesNothing(t *testing.T) {
	now := time.Now()
	root := newTestCA(t, "root", now.Add(-time.Hour), now.Add(time.Hour*24), nil)
	leaf := root.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour)))
	for _, v := range []*CertVerifier{nil, {}, {Roots: x509.NewCertPool()}} {
		if got := v.Verify(t.Context(), []*x509.Certificate{leaf}, now); got.Valid() {
			t.Errorf("verifier %+v accepted a certificate without roots", v)
		}
	}
}

func TestCertMatchesAccount(t *testing.T) {
	tests := []struct {
		name    string
		cn      string
		emails  []string
		account string
		email   string
		want    bool
	}{
		{"common name equals account", "alice", nil, "alice", "", true},
		{"common name differs in case", "Alice", nil, "alice", "", false},
		{"SAN email matches ignoring case", "Alice L", []string{"ALICE@example.com"}, "alice", "alice@example.com", true},
		{"SAN email of someone else", "x", []string{"bob@example.com"}, "alice", "alice@example.com", false},
		{"empty account email never matches empty SAN", "", []string{""}, "alice", "", false},
		{"empty common name never matches empty account", "", nil, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CertMatchesAccount(tc.cn, tc.emails, tc.account, tc.email); got != tc.want {
				t.Errorf("CertMatchesAccount = %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzCertMatchesAccount checks the rule that binds a certificate to an
// account: the common name equals the account name exactly, or a SAN
// email equals the account's email up to the case of ASCII letters.
// Nothing else matches: not prefixes, not empty values, not Unicode case
// folding (under which the Kelvin sign U+212A equals "k").
func FuzzCertMatchesAccount(f *testing.F) {
	f.Add("alice", "alice@example.com", "", "alice", "alice@example.com")
	f.Add("", "", "", "", "")
	f.Add("admin", "", "", "admin", "")
	f.Add("Admin", "", "", "admin", "")
	f.Add("", "Alice@Example.COM", "", "alice", "alice@example.com")
	f.Add("", "alice@example.com.evil", "", "alice", "alice@example.com")
	f.Add("", "Kate@example.com", "", "kate", "kate@example.com")
	f.Add("admin ", "x@y", "ALICE@example.com", "admin", "alice@example.com")
	f.Fuzz(func(t *testing.T, cn, e1, e2, name, email string) {
		got := CertMatchesAccount(cn, []string{e1, e2}, name, email)
		want := (name != "" && cn == name) ||
			(email != "" && (lowerASCII(e1) == lowerASCII(email) || lowerASCII(e2) == lowerASCII(email)))
		if got != want {
			t.Fatalf("CertMatchesAccount(cn %q, emails %q %q, account %q <%q>) = %v, want %v", cn, e1, e2, name, email, got, want)
		}
	})
}

// lowerASCII lowers ASCII letters only.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// A chain that verified is remembered, but every request still gets the
// per-request checks: the leaf's dates, revocation, and a chain that
// differs in any certificate is verified afresh.
func TestCertVerifier_CachedChainStillChecked(t *testing.T) {
	now := time.Now()
	root := newTestCA(t, "root", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	other := newTestCA(t, "root", now.Add(-time.Hour), now.Add(24*time.Hour), nil) // same name, other key
	leaf := root.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour)))
	forged := other.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour)))
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	revoked := false
	v := &CertVerifier{Roots: pool, Revoked: func(context.Context, string, string) (bool, error) { return revoked, nil }}
	chain := []*x509.Certificate{leaf}
	if r := v.Verify(t.Context(), chain, now); !r.Valid() {
		t.Fatalf("first verification: %+v", r)
	}
	revoked = true
	if r := v.Verify(t.Context(), chain, now); r.Status != CertRevoked {
		t.Errorf("cached chain, certificate revoked since: %v, want revoked", r.Status)
	}
	revoked = false
	if r := v.Verify(t.Context(), chain, now.Add(2*time.Hour)); r.Status != CertExpired {
		t.Errorf("cached chain, leaf expired since: %v, want expired", r.Status)
	}
	if r := v.Verify(t.Context(), []*x509.Certificate{forged}, now); r.Status != CertUnknownIssuer {
		t.Errorf("a look-alike from another CA after a cached chain: %v, want unknown issuer", r.Status)
	}
	if r := v.Verify(t.Context(), []*x509.Certificate{leaf, other.cert}, now); !r.Valid() {
		t.Errorf("the same leaf with an extra certificate (verified afresh): %v, want valid", r.Status)
	}

	// What a cache hit says of the leaf is what a fresh check says, and
	// each caller gets its own copy.
	first := v.Verify(t.Context(), chain, now)
	fresh := (&CertVerifier{Roots: pool}).Verify(t.Context(), chain, now).Info
	if diff := cmp.Diff(fresh, first.Info); diff != "" {
		t.Errorf("leaf info from the cache (-fresh +cached):\n%s", diff)
	}
	first.Info.Fingerprint, first.Info.Emails = "changed", append(first.Info.Emails, "mallory@example.com")
	if diff := cmp.Diff(fresh, v.Verify(t.Context(), chain, now).Info); diff != "" {
		t.Errorf("a caller's change reached the cache (-fresh +cached):\n%s", diff)
	}
}

// A chain remembered at one reading of the clock is not taken as
// verified at an earlier one (a clock stepped back), when its CA was not
// valid yet.
func TestCertVerifier_CachedChainNotReusedBackInTime(t *testing.T) {
	now := time.Now()
	root := newTestCA(t, "root", now.Add(10*time.Second), now.Add(24*time.Hour), nil)
	leaf := root.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour)))
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	v := &CertVerifier{Roots: pool}
	chain := []*x509.Certificate{leaf}
	if r := v.Verify(t.Context(), chain, now.Add(30*time.Second)); !r.Valid() {
		t.Fatalf("once the CA is valid: %+v", r)
	}
	if r := v.Verify(t.Context(), chain, now); r.Valid() {
		t.Error("the chain remembered 30 s later was taken as verified before its CA was valid")
	}
}

// BenchmarkCertVerifier_Verify is the check of a certificate presented
// again (the chain remembered); BenchmarkCertVerifier_VerifyNew one seen
// for the first time.
func BenchmarkCertVerifier_Verify(b *testing.B) {
	now := time.Now()
	root := newTestCA(b, "root", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	leaf := root.issue(b, clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour)))
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	v := &CertVerifier{Roots: pool}
	chain := []*x509.Certificate{leaf}
	for b.Loop() {
		if !v.Verify(b.Context(), chain, now).Valid() {
			b.Fatal("not valid")
		}
	}
}

func BenchmarkCertVerifier_VerifyNew(b *testing.B) {
	now := time.Now()
	root := newTestCA(b, "root", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	leaf := root.issue(b, clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour)))
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	chain := []*x509.Certificate{leaf}
	for b.Loop() {
		v := &CertVerifier{Roots: pool}
		if !v.Verify(b.Context(), chain, now).Valid() {
			b.Fatal("not valid")
		}
	}
}

// TestCertVerifier_ReencodedRevokedCertificateStaysRevoked re-encodes a
// revoked certificate's ECDSA signature (s -> n-s): another DER, another
// fingerprint, still a valid signature. It must stay revoked, and it must
// still be the same certificate for a session bound to it.
func TestCertVerifier_ReencodedRevokedCertificateStaysRevoked(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	root := newTestCA(t, "client CA", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	leaf := root.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour)))
	der, err := certtest.ReencodeSignature(leaf, root.cert)
	if err != nil {
		t.Fatal(err)
	}
	twin, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}

	revoked := map[[2]string]bool{}
	v := &CertVerifier{Roots: pool, Revoked: func(_ context.Context, issuer, serial string) (bool, error) {
		return revoked[[2]string{issuer, serial}], nil
	}}
	before := v.Verify(t.Context(), []*x509.Certificate{leaf}, now)
	again := v.Verify(t.Context(), []*x509.Certificate{twin}, now)
	if !before.Valid() || !again.Valid() {
		t.Fatalf("before revocation: original %v, re-encoded %v; want both valid", before.Status, again.Status)
	}
	if before.Info.Fingerprint == again.Info.Fingerprint {
		t.Fatal("re-encoding did not change the fingerprint; the test proves nothing")
	}
	if before.Info.ID != again.Info.ID || before.Info.Issuer != again.Info.Issuer || before.Info.Serial != again.Info.Serial {
		t.Errorf("identity changed with the encoding: %+v vs %+v", before.Info, again.Info)
	}
	if got := again.ForSession(before.Info.ID); !got.Valid() {
		t.Errorf("re-encoded certificate on a session bound to the original: %v, want valid", got.Status)
	}

	revoked[[2]string{before.Info.Issuer, before.Info.Serial}] = true
	for name, c := range map[string]*x509.Certificate{"original": leaf, "re-encoded": twin} {
		if got := v.Verify(t.Context(), []*x509.Certificate{c}, now); got.Status != CertRevoked || got.Notice != noticeRevoked {
			t.Errorf("%s after revocation: %v %q, want revoked", name, got.Status, got.Notice)
		}
	}
}

// TestCertVerifier_RevocationIsPerIssuer checks that a revoked serial of
// one CA does not revoke the same serial from another client CA.
func TestCertVerifier_RevocationIsPerIssuer(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	a := newTestCA(t, "CA one", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	b := newTestCA(t, "CA two", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	pool := x509.NewCertPool()
	pool.AddCert(a.cert)
	pool.AddCert(b.cert)
	fromA := a.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour)))
	tmpl := clientTemplate("bob", now.Add(-time.Hour), now.Add(time.Hour))
	fromB := b.issue(t, tmpl)
	// Give B's certificate A's serial.
	tmpl.SerialNumber = fromA.SerialNumber
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	derB, err := x509.CreateCertificate(rand.Reader, tmpl, b.cert, &key.PublicKey, b.key)
	if err != nil {
		t.Fatal(err)
	}
	if fromB, err = x509.ParseCertificate(derB); err != nil {
		t.Fatal(err)
	}
	v := &CertVerifier{Roots: pool, Revoked: func(_ context.Context, issuer, serial string) (bool, error) {
		return issuer == IssuerID(fromA.RawIssuer) && serial == SerialText(fromA), nil
	}}
	if got := v.Verify(t.Context(), []*x509.Certificate{fromA}, now); got.Status != CertRevoked {
		t.Errorf("revoked certificate: %v, want revoked", got.Status)
	}
	if got := v.Verify(t.Context(), []*x509.Certificate{fromB}, now); !got.Valid() {
		t.Errorf("same serial from another CA: %v %q, want valid", got.Status, got.Notice)
	}
}

// The status names are what the audit trail keeps: every status has one,
// and none changes.
func TestCertStatus_StableNames(t *testing.T) {
	want := map[CertStatus]string{
		CertAbsent: "absent", CertValid: "valid", CertUnknownIssuer: "unknown_issuer",
		CertNotYetValid: "not_yet_valid", CertExpired: "expired", CertNoClientAuth: "no_client_auth",
		CertRevoked: "revoked", CertInvalid: "invalid", CertOtherUser: "other_user",
		CertUnbound: "unbound", CertSessionMismatch: "session_mismatch", CertAmbiguous: "ambiguous",
	}
	if len(want) != len(certStatusNames) {
		t.Errorf("%d statuses have names, this test knows %d: name the new one here", len(certStatusNames), len(want))
	}
	for s, name := range want {
		if got := s.String(); got != name {
			t.Errorf("CertStatus(%d).String() = %q, want %q", int(s), got, name)
		}
	}
}

// TestCertResult_BoundTo checks whom a verified certificate counts for,
// given the accounts the caller found it bound to.
func TestCertResult_BoundTo(t *testing.T) {
	alice := Account{Name: "alice", Email: "alice@example.com"}
	for _, tc := range []struct {
		name   string
		info   CertInfo
		owners []string
		want   CertStatus
	}{
		{"bound by name, no other owner", CertInfo{CommonName: "alice"}, nil, CertValid},
		{"bound by name, the caller found only this account", CertInfo{CommonName: "alice"}, []string{"alice"}, CertValid},
		{"bound by email, another account named in the common name", CertInfo{CommonName: "dupe", Emails: []string{"ALICE@example.com"}}, []string{"alice", "dupe"}, CertAmbiguous},
		{"bound by name, another account's email", CertInfo{CommonName: "alice", Emails: []string{"admin@example.com"}}, []string{"admin", "alice"}, CertAmbiguous},
		{"not bound, one other owner", CertInfo{CommonName: "bob"}, []string{"bob"}, CertOtherUser},
		{"not bound, two other owners", CertInfo{CommonName: "bob", Emails: []string{"carol@example.com"}}, []string{"bob", "carol"}, CertAmbiguous},
		{"not bound, no owner", CertInfo{CommonName: "LAPTOP-0042"}, nil, CertUnbound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := tc.info
			got := CertResult{Status: CertValid, Info: &info}.BoundTo(alice, tc.owners)
			if got.Status != tc.want {
				t.Errorf("status = %v, want %v (notice %q)", got.Status, tc.want, got.Notice)
			}
			if (got.Status == CertValid) != (got.Notice == "") {
				t.Errorf("status %v with notice %q: a certificate that does not count must say why", got.Status, got.Notice)
			}
		})
	}
}
