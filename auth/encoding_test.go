package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"gatehouse/tests/certtest"
)

// A fingerprint pin made from either encoding of an ECDSA-signed
// certificate, (r, s) or (r, n-s), binds the certificate whichever of the
// two a client presents: re-encoding the signature, which anyone holding
// the certificate can do, must not shake off a pin (and with it the
// ambiguity that keeps a certificate named for one account and pinned on
// another from counting for either).
func TestCertBoundTo_FingerprintPinMatchesEitherEncoding(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	root := newTestCA(t, "client CA", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	leaf := root.issue(t, clientTemplate("laptop-0042", now.Add(-time.Hour), now.Add(time.Hour)))
	der, err := certtest.ReencodeSignature(leaf, root.cert)
	if err != nil {
		t.Fatal(err)
	}
	twin, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	v := &CertVerifier{Roots: pool}
	verified := map[string]*CertInfo{}
	for name, c := range map[string]*x509.Certificate{"original": leaf, "twin": twin} {
		r := v.Verify(t.Context(), []*x509.Certificate{c}, now)
		if !r.Valid() {
			t.Fatalf("%s: %v %q, want valid", name, r.Status, r.Notice)
		}
		verified[name] = r.Info
	}
	if verified["original"].Fingerprint == verified["twin"].Fingerprint {
		t.Fatal("re-encoding did not change the fingerprint; the test proves nothing")
	}
	// Each encoding knows the other's fingerprint: the twin the portal
	// computes is the one an attacker makes.
	if got, want := verified["original"].TwinFingerprint, verified["twin"].Fingerprint; got != want {
		t.Errorf("original's TwinFingerprint = %s, want the re-encoded certificate's fingerprint %s", got, want)
	}
	if got, want := verified["twin"].TwinFingerprint, verified["original"].Fingerprint; got != want {
		t.Errorf("twin's TwinFingerprint = %s, want the original's fingerprint %s", got, want)
	}
	for _, pinned := range []string{"original", "twin"} {
		acct := Account{Name: "dupe", PinnedFingerprints: []string{Fingerprint(map[string][]byte{"original": leaf.Raw, "twin": der}[pinned])}}
		for presented, info := range verified {
			if !CertBoundTo(info, acct) {
				t.Errorf("pin of the %s encoding, %s presented: not bound, want bound", pinned, presented)
			}
		}
	}
	if CertBoundTo(verified["twin"], Account{Name: "dupe", PinnedFingerprints: []string{""}}) {
		t.Error("an empty pin binds the certificate")
	}
}

// Go's parser takes encodings of a certificate that are not DER: bytes
// after the signature inside the outer SEQUENCE, and a signature BIT
// STRING with unused bits. Each gives the same certificate, with a valid
// signature, another fingerprint, without limit. Only the DER encoding
// counts, so that a certificate has at most the two encodings a
// fingerprint pin knows of.
func TestCertVerifier_OnlyTheDEREncodingCounts(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	root := newTestCA(t, "client CA", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	leaf := root.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour)))
	for _, tc := range []struct {
		name string
		make func() ([]byte, error)
	}{
		{"bytes after the signature", func() ([]byte, error) { return certtest.AppendInsideCertificate(leaf, []byte{0x05, 0x00}) }},
		{"signature with one unused bit", func() ([]byte, error) { return certtest.PadSignatureBits(leaf, 1) }},
		{"signature with two unused bits", func() ([]byte, error) { return certtest.PadSignatureBits(leaf, 2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, err := tc.make()
			if err != nil {
				t.Fatal(err)
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatalf("Go's parser refuses it, so the test proves nothing: %v", err)
			}
			if err := c.CheckSignatureFrom(root.cert); err != nil {
				t.Fatalf("its signature does not verify, so the test proves nothing: %v", err)
			}
			if Fingerprint(c.Raw) == Fingerprint(leaf.Raw) || CertID(c) != CertID(leaf) {
				t.Fatal("not another encoding of the same certificate")
			}
			got := (&CertVerifier{Roots: pool}).Verify(t.Context(), []*x509.Certificate{c}, now)
			if got.Status != CertInvalid || got.Info != nil || got.Notice == "" {
				t.Errorf("Verify = %v, info %v, notice %q; want invalid, no info, a notice", got.Status, got.Info, got.Notice)
			}
		})
	}
	if got := (&CertVerifier{Roots: pool}).Verify(t.Context(), []*x509.Certificate{leaf}, now); !got.Valid() {
		t.Errorf("the DER encoding: %v %q, want valid", got.Status, got.Notice)
	}
}

// A certificate signed with Ed25519 has one encoding: no twin.
func TestCertVerifier_NoTwinForEd25519(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Ed25519 CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	tmpl := clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour))
	tmpl.SerialNumber = big.NewInt(2)
	leafPub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, leafPub, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	got := (&CertVerifier{Roots: pool}).Verify(t.Context(), []*x509.Certificate{leaf}, now)
	if !got.Valid() || got.Info.TwinFingerprint != "" {
		t.Errorf("Verify = %v, twin %q; want valid with no twin", got.Status, got.Info.TwinFingerprint)
	}
}

// FuzzStrictDER feeds strictDER and twinFingerprint whatever Go's parser
// takes as a certificate: they must not panic, and a certificate they
// call DER must be its own re-encoding.
func FuzzStrictDER(f *testing.F) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	root := newTestCA(f, "client CA", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	leaf := root.issue(f, clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour)))
	f.Add(leaf.Raw)
	if der, err := certtest.AppendInsideCertificate(leaf, []byte{0x05, 0x00}); err == nil {
		f.Add(der)
	}
	if der, err := certtest.PadSignatureBits(leaf, 2); err == nil {
		f.Add(der)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		if strictDER(c) {
			tbs, alg, _ := certParts(c.Raw)
			again, err := encodeCertificate(tbs, alg, c.Signature)
			if err != nil || string(again) != string(der) {
				t.Errorf("strictDER took an encoding that is not its own re-encoding")
			}
		}
		TwinFingerprint(c, root.cert)
		TwinFingerprint(c, c)
	})
}
