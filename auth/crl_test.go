package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/google/go-cmp/cmp"
)

func (ca *testCA) crl(t testing.TB, number int64, thisUpdate, nextUpdate time.Time, revoked ...*x509.Certificate) []byte {
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

// tbsCertList and certificateList are RFC 5280's CRL structures, for
// lists that x509.CreateRevocationList will not make: without a CRL
// number, with a critical one, or with other extensions of our choice.
type tbsCertList struct {
	Version             int
	Signature           pkix.AlgorithmIdentifier
	Issuer              asn1.RawValue
	ThisUpdate          time.Time
	NextUpdate          time.Time                 `asn1:"optional"` // left out when zero
	RevokedCertificates []pkix.RevokedCertificate `asn1:"optional"`
	Extensions          []pkix.Extension          `asn1:"tag:0,optional,explicit"`
}

type certificateList struct {
	TBSCertList        asn1.RawValue
	SignatureAlgorithm pkix.AlgorithmIdentifier
	SignatureValue     asn1.BitString
}

var oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}

// rawCRL builds and signs, field by field, a v2 CRL from ca valid from
// thisUpdate to nextUpdate (none when zero) with exactly the extensions
// exts.
func (ca *testCA) rawCRL(t *testing.T, thisUpdate, nextUpdate time.Time, exts []pkix.Extension, revoked ...pkix.RevokedCertificate) []byte {
	t.Helper()
	alg := pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA256}
	tbs, err := asn1.Marshal(tbsCertList{
		Version:             1, // v2
		Signature:           alg,
		Issuer:              asn1.RawValue{FullBytes: ca.cert.RawSubject},
		ThisUpdate:          thisUpdate.UTC(),
		NextUpdate:          nextUpdate.UTC(),
		RevokedCertificates: revoked,
		Extensions:          exts,
	})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, ca.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(certificateList{
		TBSCertList:        asn1.RawValue{FullBytes: tbs},
		SignatureAlgorithm: alg,
		SignatureValue:     asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func crlNumber(t *testing.T, n *big.Int, critical bool) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 20}, Critical: critical, Value: v}
}

func TestParseCRLs_RFC5280Rules(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	root := newTestCA(t, "root", now.Add(-year), now.Add(5*year), nil)
	noCRLSign := newTestCA(t, "no crl sign", now.Add(-year), now.Add(5*year), nil, x509.KeyUsageCertSign)
	from, until := now.Add(-time.Hour), now.Add(24*time.Hour)
	number := func(n int64) pkix.Extension { return crlNumber(t, big.NewInt(n), false) }
	critical := func(oid asn1.ObjectIdentifier) pkix.Extension {
		return pkix.Extension{Id: oid, Critical: true, Value: []byte{0x30, 0x00}}
	}
	entry := pkix.RevokedCertificate{SerialNumber: big.NewInt(7), RevocationTime: from}
	entryWithIssuer := entry
	entryWithIssuer.Extensions = []pkix.Extension{critical(asn1.ObjectIdentifier{2, 5, 29, 29})}

	tests := []struct {
		name    string
		signer  *testCA
		crl     []byte
		wantErr string // "" for a list that is accepted
	}{
		{"a list with a non-critical CRL number is accepted", root,
			root.rawCRL(t, from, until, []pkix.Extension{number(1)}, entry), ""},
		{"a list without a next update is refused", root,
			root.rawCRL(t, from, time.Time{}, []pkix.Extension{number(1)}, entry), "no next update"},
		{"a years-old list without a next update is refused", root,
			root.rawCRL(t, now.Add(-3*year), time.Time{}, []pkix.Extension{number(1)}), "no next update"},
		{"a list without a CRL number is refused", root,
			root.rawCRL(t, from, until, nil, entry), "no CRL number"},
		{"a list with a critical CRL number is refused", root,
			root.rawCRL(t, from, until, []pkix.Extension{crlNumber(t, big.NewInt(1), true)}), "CRL number extension is marked critical"},
		{"a list with two CRL numbers is refused", root,
			root.rawCRL(t, from, until, []pkix.Extension{number(1), number(2)}), "more than one CRL number"},
		{"a negative CRL number is refused", root,
			root.rawCRL(t, from, until, []pkix.Extension{number(-1)}), "not a non-negative integer"},
		{"a CRL number over 20 octets is refused", root,
			root.rawCRL(t, from, until, []pkix.Extension{crlNumber(t, new(big.Int).Lsh(big.NewInt(1), 160), false)}), "at most 20 octets"},
		{"a delta CRL is refused", root,
			root.rawCRL(t, from, until, []pkix.Extension{number(2), critical(asn1.ObjectIdentifier{2, 5, 29, 27})}), "delta CRL"},
		{"a partial list (issuing distribution point) is refused", root,
			root.rawCRL(t, from, until, []pkix.Extension{number(2), critical(asn1.ObjectIdentifier{2, 5, 29, 28})}), "covers only part"},
		{"an unknown critical extension is refused", root,
			root.rawCRL(t, from, until, []pkix.Extension{number(2), critical(asn1.ObjectIdentifier{1, 2, 3, 4})}), "critical extension this portal does not process: 1.2.3.4"},
		{"an entry with a critical extension is refused", root,
			root.rawCRL(t, from, until, []pkix.Extension{number(2)}, entryWithIssuer), "entry for serial 7 has a critical extension"},
		{"a list signed by a CA without cRLSign is refused", noCRLSign,
			noCRLSign.rawCRL(t, from, until, []pkix.Extension{number(1)}), "not allowed to sign CRLs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := ParseCRLs(map[string][]byte{"list.crl": tc.crl}, []*x509.Certificate{tc.signer.cert})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ParseCRLs: %v, want the list accepted", err)
			case tc.wantErr == "" && set.Len() != 1:
				t.Fatalf("the set has lists from %d issuers, want 1", set.Len())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("ParseCRLs error = %v, want one that says %q", err, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), "list.crl"):
				t.Errorf("the error %q does not name the file", err)
			}
		})
	}
}

func TestCertVerifier_CRLsCheckIntermediates(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	root := newTestCA(t, "Corp Root", now.Add(-year), now.Add(5*year), nil)
	issuing := newTestCA(t, "Corp Issuing", now.Add(-year), now.Add(4*year), root)
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	leaf := issuing.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(year)))
	fresh, staleFrom, staleUntil := now.Add(-time.Hour), now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	day := now.Add(24 * time.Hour)

	rootClean := root.crl(t, 1, fresh, day)
	rootRevokesIssuing := root.crl(t, 2, fresh, day, issuing.cert)
	rootStale := root.crl(t, 3, staleFrom, staleUntil)
	issuingClean := issuing.crl(t, 1, fresh, day)
	issuingRevokesLeaf := issuing.crl(t, 2, fresh, day, leaf)
	issuingStale := issuing.crl(t, 3, staleFrom, staleUntil)

	tests := []struct {
		name   string
		files  map[string][]byte
		want   CertStatus
		notice string
	}{
		{"clean lists from both CAs: valid", map[string][]byte{"root": rootClean, "issuing": issuingClean}, CertValid, ""},
		{"the root revokes the intermediate: the leaf does not count", map[string][]byte{"root": rootRevokesIssuing, "issuing": issuingClean}, CertRevoked,
			`the certificate authority "Corp Issuing" that your certificate depends on has been revoked`},
		{"the root's revocation of the intermediate counts without a list from the intermediate", map[string][]byte{"root": rootRevokesIssuing}, CertRevoked,
			`"Corp Issuing" that your certificate depends on has been revoked`},
		{"the intermediate revokes the leaf", map[string][]byte{"root": rootClean, "issuing": issuingRevokesLeaf}, CertRevoked, noticeRevoked},
		{"a stale list from the intermediate's issuer fails closed", map[string][]byte{"root": rootStale, "issuing": issuingClean}, CertInvalid,
			`the revocation list of "Corp Root", a certificate authority your certificate depends on, is out of date`},
		{"a stale list from the leaf's issuer fails closed", map[string][]byte{"root": rootClean, "issuing": issuingStale}, CertInvalid,
			"the revocation list of your certificate's issuer is out of date"},
		{"a revoked intermediate outweighs a stale list", map[string][]byte{"root": rootRevokesIssuing, "issuing": issuingStale}, CertRevoked,
			`"Corp Issuing" that your certificate depends on has been revoked`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := ParseCRLs(tc.files, []*x509.Certificate{root.cert, issuing.cert})
			if err != nil {
				t.Fatal(err)
			}
			v := &CertVerifier{Roots: pool, CRLs: func() *CRLSet { return set }}
			got := v.Verify(t.Context(), []*x509.Certificate{leaf, issuing.cert}, now)
			if got.Status != tc.want || !strings.Contains(got.Notice, tc.notice) {
				t.Fatalf("got %v %q, want %v with a notice that says %q", got.Status, got.Notice, tc.want, tc.notice)
			}
		})
	}

	t.Run("a revoked intermediate is caught on a chain remembered from before", func(t *testing.T) {
		set := func() *CRLSet { return nil }
		v := &CertVerifier{Roots: pool, CRLs: func() *CRLSet { return set() }}
		chain := []*x509.Certificate{leaf, issuing.cert}
		if got := v.Verify(t.Context(), chain, now); !got.Valid() {
			t.Fatalf("before any list: %v %q", got.Status, got.Notice)
		}
		revoking, err := ParseCRLs(map[string][]byte{"root": rootRevokesIssuing}, []*x509.Certificate{root.cert})
		if err != nil {
			t.Fatal(err)
		}
		set = func() *CRLSet { return revoking }
		if got := v.Verify(t.Context(), chain, now); got.Status != CertRevoked {
			t.Fatalf("after the root's list revoked the intermediate: %v %q, want revoked", got.Status, got.Notice)
		}
	})
}

func TestCertVerifier_TwoTierPKI(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	root := newTestCA(t, "Corp Root", now.Add(-year), now.Add(5*year), nil)
	issuing := newTestCA(t, "Corp Issuing", now.Add(-year), now.Add(4*year), root)
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	revoked := issuing.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(year)))
	kept := issuing.issue(t, clientTemplate("bob", now.Add(-time.Hour), now.Add(year)))
	signers := []*x509.Certificate{root.cert, issuing.cert}
	fresh := issuing.crl(t, 4, now.Add(-time.Hour), now.Add(24*time.Hour), revoked)
	stale := issuing.crl(t, 5, now.Add(-48*time.Hour), now.Add(-24*time.Hour))

	tests := []struct {
		name  string
		crl   []byte
		chain []*x509.Certificate
		want  CertStatus
	}{
		{"a leaf sent without its intermediate verifies through the configured one", nil, []*x509.Certificate{kept}, CertValid},
		{"the issuing CA's list revokes its leaf", fresh, []*x509.Certificate{revoked}, CertRevoked},
		{"the issuing CA's list revokes its leaf sent with the intermediate", fresh, []*x509.Certificate{revoked, issuing.cert}, CertRevoked},
		{"a leaf the issuing CA's list does not name counts", fresh, []*x509.Certificate{kept}, CertValid},
		{"a stale list from the issuing CA fails closed", stale, []*x509.Certificate{kept}, CertInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string][]byte{}
			if tc.crl != nil {
				files["issuing.crl"] = tc.crl
			}
			set, err := ParseCRLs(files, signers)
			if err != nil {
				t.Fatal(err)
			}
			v := &CertVerifier{Roots: pool, Intermediates: []*x509.Certificate{issuing.cert}, CRLs: func() *CRLSet { return set }}
			if got := v.Verify(t.Context(), tc.chain, now); got.Status != tc.want {
				t.Fatalf("status = %v (%q), want %v", got.Status, got.Notice, tc.want)
			}
		})
	}

	t.Run("a list from an intermediate that is not a signer is refused", func(t *testing.T) {
		_, err := ParseCRLs(map[string][]byte{"issuing.crl": fresh}, []*x509.Certificate{root.cert})
		if err == nil || !strings.Contains(err.Error(), "not signed by a configured client CA") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCRLSet_NumbersNeverGoBack(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	root := newTestCA(t, "Corp Root", now.Add(-year), now.Add(5*year), nil)
	other := newTestCA(t, "Other Root", now.Add(-year), now.Add(5*year), nil)
	signers := []*x509.Certificate{root.cert, other.cert}
	leaf := root.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(year)))
	from, until := now.Add(-time.Hour), now.Add(24*time.Hour)
	parse := func(t *testing.T, files map[string][]byte) *CRLSet {
		t.Helper()
		set, err := ParseCRLs(files, signers)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	five := root.crl(t, 5, from, until, leaf)
	inForce := parse(t, map[string][]byte{"root.crl": five, "other.crl": other.crl(t, 1, from, until)})

	tests := []struct {
		name    string
		next    map[string][]byte
		wantErr string // "" when the set may replace the one in force
	}{
		{"a higher number follows", map[string][]byte{"root.crl": root.crl(t, 6, from, until), "other.crl": other.crl(t, 1, from, until)}, ""},
		{"the same list again follows", map[string][]byte{"root.crl": five, "other.crl": other.crl(t, 1, from, until)}, ""},
		{"a lower number is refused", map[string][]byte{"root.crl": root.crl(t, 4, from, until), "other.crl": other.crl(t, 1, from, until)},
			"CRL root.crl (issuer CN=Corp Root) has CRL number 4, lower than number 5 already seen"},
		{"an equal number with other content is refused", map[string][]byte{"root.crl": root.crl(t, 5, from, until), "other.crl": other.crl(t, 1, from, until)},
			"has CRL number 5, the number of the list in force, but different content"},
		{"a set that drops an issuer is refused", map[string][]byte{"root.crl": five},
			"no longer hold a list from issuer CN=Other Root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := parse(t, tc.next).Follows(inForce)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Follows = %v, want %q", err, tc.wantErr)
			}
		})
	}

	t.Run("an older list's error gives both numbers", func(t *testing.T) {
		err := parse(t, map[string][]byte{"root.crl": root.crl(t, 4, from, until), "other.crl": other.crl(t, 1, from, until)}).Follows(inForce)
		var older *OlderCRLError
		if !errors.As(err, &older) || older.Number.Int64() != 4 || older.Seen.Int64() != 5 || older.File != "root.crl" {
			t.Fatalf("err = %#v, want an *OlderCRLError for root.crl, 4 after 5", err)
		}
	})
	t.Run("two files with one number and different content are refused", func(t *testing.T) {
		_, err := ParseCRLs(map[string][]byte{"a.crl": five, "b.crl": root.crl(t, 5, from, until)}, signers)
		if err == nil || !strings.Contains(err.Error(), "both have CRL number 5 but differ") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("lists describes each issuer's list", func(t *testing.T) {
		lists := inForce.Lists()
		if len(lists) != 2 {
			t.Fatalf("Lists = %+v, want 2", lists)
		}
		for _, l := range lists {
			want := map[string]string{"CN=Corp Root": "root.crl 5", "CN=Other Root": "other.crl 1"}[l.Issuer]
			if got := l.File + " " + l.Number.String(); got != want || !strings.HasPrefix(l.IssuerID, "sha256:") {
				t.Errorf("list of %s: %s (%s), want %s", l.Issuer, got, l.IssuerID, want)
			}
		}
	})
}

// commonNameAs returns the DER name of one common name whose value is of
// the ASN.1 string type tag, with the bytes value (see bmp for a
// BMPString's).
func commonNameAs(t testing.TB, tag int, value []byte) []byte {
	t.Helper()
	return rdnsAs(t, [][]nameAttribute{{{Type: oidCommonName, Value: asn1.RawValue{Tag: tag, Bytes: value}}}})
}

var (
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidOrganization = asn1.ObjectIdentifier{2, 5, 4, 10}
)

// nameAttribute is one attribute of a name that a test makes.
type nameAttribute struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// rdnsAs returns the DER name made of rdns, each a set of attributes in
// the order given.
func rdnsAs(t testing.TB, rdns [][]nameAttribute) []byte {
	t.Helper()
	var seq pkix.RDNSequence
	for _, rdn := range rdns {
		var set pkix.RelativeDistinguishedNameSET
		for _, a := range rdn {
			set = append(set, pkix.AttributeTypeAndValue{Type: a.Type, Value: a.Value})
		}
		seq = append(seq, set)
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// bmp encodes s as a BMPString's bytes (UCS-2, big-endian).
func bmp(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.BigEndian.AppendUint16(b, u)
	}
	return b
}

// reissued returns ca's certificate issued again, self-signed with the
// same key, under the DER name rawSubject: what newer CA software does
// when it re-issues a root and encodes its name in another string type.
func (ca *testCA) reissued(t *testing.T, rawSubject []byte) *testCA {
	t.Helper()
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), RawSubject: rawSubject,
		NotBefore: ca.cert.NotBefore, NotAfter: ca.cert.NotAfter,
		KeyUsage: ca.cert.KeyUsage, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ca.key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: ca.key}
}

// TestCRL_IssuerNameEncodingsAreOneIssuer covers a CA whose certificate
// exists with its name in two encodings, PrintableString and
// UTF8String, with one key: both are configured client CAs. It is one
// issuer (RFC 5280 §7.1 compares names after converting string types),
// so its list applies to every certificate it issued, whichever encoding
// the list or the certificate's issuer field uses, and its CRL numbers
// are one sequence.
func TestCRL_IssuerNameEncodingsAreOneIssuer(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	printable := newTestCA(t, "unused", now.Add(-year), now.Add(5*year), nil).
		reissued(t, commonNameAs(t, asn1.TagPrintableString, []byte("Corp CA")))
	utf8Name := printable.reissued(t, commonNameAs(t, asn1.TagUTF8String, []byte("Corp CA")))
	// The same name once more, as only the list spells it: BMPString,
	// other case, other spacing. No configured certificate has it.
	otherSpelling := printable.reissued(t, commonNameAs(t, asn1.TagBMPString, bmp("  CORP   ca ")))
	if printable.cert.Subject.String() != utf8Name.cert.Subject.String() || string(printable.cert.RawSubject) == string(utf8Name.cert.RawSubject) {
		t.Fatal("the two roots should have one name in two encodings")
	}
	pool := x509.NewCertPool()
	pool.AddCert(printable.cert)
	pool.AddCert(utf8Name.cert)
	signers := []*x509.Certificate{printable.cert, utf8Name.cert}
	fromPrintable := printable.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(year)))
	fromUTF8 := utf8Name.issue(t, clientTemplate("bob", now.Add(-time.Hour), now.Add(year)))
	from, until := now.Add(-time.Hour), now.Add(24*time.Hour)
	staleFrom, staleUntil := now.Add(-48*time.Hour), now.Add(-24*time.Hour)

	tests := []struct {
		name  string
		files map[string][]byte
		cert  *x509.Certificate
		want  CertStatus
	}{
		{"a list in the UTF8String name revokes a certificate issued under the PrintableString name",
			map[string][]byte{"ca.crl": utf8Name.crl(t, 7, from, until, fromPrintable)}, fromPrintable, CertRevoked},
		{"a list in the PrintableString name revokes a certificate issued under the UTF8String name",
			map[string][]byte{"ca.crl": printable.crl(t, 7, from, until, fromUTF8)}, fromUTF8, CertRevoked},
		{"a list naming the issuer in another string type, case and spacing revokes its certificate",
			map[string][]byte{"ca.crl": otherSpelling.crl(t, 7, from, until, fromPrintable)}, fromPrintable, CertRevoked},
		{"a stale list in one encoding fails closed for certificates under the other",
			map[string][]byte{"ca.crl": utf8Name.crl(t, 7, staleFrom, staleUntil)}, fromPrintable, CertInvalid},
		{"the newer list in the other encoding wins over the older one",
			map[string][]byte{"a.crl": printable.crl(t, 7, from, until), "b.crl": utf8Name.crl(t, 8, from, until, fromPrintable)}, fromPrintable, CertRevoked},
		{"the newer list wins whichever file comes first",
			map[string][]byte{"a.crl": utf8Name.crl(t, 8, from, until, fromUTF8), "b.crl": printable.crl(t, 7, from, until)}, fromUTF8, CertRevoked},
		{"a certificate the list does not name counts",
			map[string][]byte{"ca.crl": utf8Name.crl(t, 7, from, until, fromUTF8)}, fromPrintable, CertValid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := ParseCRLs(tc.files, signers)
			if err != nil {
				t.Fatal(err)
			}
			if set.Len() != 1 {
				t.Errorf("the set has lists from %d issuers, want 1", set.Len())
			}
			v := &CertVerifier{Roots: pool, CRLs: func() *CRLSet { return set }}
			if got := v.Verify(t.Context(), []*x509.Certificate{tc.cert}, now); got.Status != tc.want {
				t.Fatalf("status = %v (%q), want %v", got.Status, got.Notice, tc.want)
			}
		})
	}

	parse := func(t *testing.T, list []byte) *CRLSet {
		t.Helper()
		set, err := ParseCRLs(map[string][]byte{"ca.crl": list}, signers)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	t.Run("a reload with an older list in the other encoding is refused", func(t *testing.T) {
		inForce := parse(t, utf8Name.crl(t, 8, from, until, fromPrintable))
		err := parse(t, printable.crl(t, 7, from, until)).Follows(inForce)
		var older *OlderCRLError
		if !errors.As(err, &older) || older.Number.Int64() != 7 || older.Seen.Int64() != 8 {
			t.Fatalf("Follows = %v, want an *OlderCRLError, 7 after 8", err)
		}
	})
	t.Run("two encodings with one number and different content are refused", func(t *testing.T) {
		_, err := ParseCRLs(map[string][]byte{"a.crl": printable.crl(t, 7, from, until), "b.crl": utf8Name.crl(t, 7, from, until, fromUTF8)}, signers)
		if err == nil || !strings.Contains(err.Error(), "both have CRL number 7 but differ") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("both encodings keep their numbers under one record, and under each encoding's former record", func(t *testing.T) {
		a := parse(t, printable.crl(t, 7, from, until)).Numbers()
		b := parse(t, utf8Name.crl(t, 7, from, until)).Numbers()
		if diff := cmp.Diff(counters(a), counters(b)); diff != "" {
			t.Errorf("the two encodings' lists are kept under other records (-printable +utf8):\n%s", diff)
		}
		want := []string{IssuerID(printable.cert.RawSubject), IssuerID(utf8Name.cert.RawSubject)}
		for _, id := range want {
			if !slices.Contains(counters(a), id) {
				t.Errorf("records %q lack the former one of an encoding, %s", counters(a), id)
			}
		}
		if len(a) != 3 {
			t.Errorf("records %q, want the issuer's and the two former ones", counters(a))
		}
	})
}

func counters(numbers []CRLNumber) []string {
	var out []string
	for _, n := range numbers {
		out = append(out, n.Counter)
	}
	return out
}

// TestCRL_CAsSharingANameKeepTheirOwnLists covers two client CAs with one
// name and different keys: two issuers, so neither list replaces the
// other. Every list of the name applies to the certificates of both,
// since RFC 5280 §6.3.3 matches a list to a certificate by issuer name
// (a CA that changed its key may list the old key's certificates on a
// list signed with the new one); the worst answer wins, so a list can
// only add revocations.
func TestCRL_CAsSharingANameKeepTheirOwnLists(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	oldKey := newTestCA(t, "Corp CA", now.Add(-year), now.Add(5*year), nil)
	newKey := newTestCA(t, "Corp CA", now.Add(-year), now.Add(5*year), nil)
	pool := x509.NewCertPool()
	pool.AddCert(oldKey.cert)
	pool.AddCert(newKey.cert)
	signers := []*x509.Certificate{oldKey.cert, newKey.cert}
	fromOld := oldKey.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(year)))
	fromNew := newKey.issue(t, clientTemplate("bob", now.Add(-time.Hour), now.Add(year)))
	from, until := now.Add(-time.Hour), now.Add(24*time.Hour)
	stale := newKey.crl(t, 2, now.Add(-48*time.Hour), now.Add(-24*time.Hour))

	tests := []struct {
		name  string
		files map[string][]byte
		cert  *x509.Certificate
		want  CertStatus
	}{
		{"a key's list with the lower number still revokes its certificates",
			map[string][]byte{"old.crl": oldKey.crl(t, 9, from, until, fromOld), "new.crl": newKey.crl(t, 3, from, until, fromNew)}, fromNew, CertRevoked},
		{"a key's list with the higher number revokes its certificates",
			map[string][]byte{"old.crl": oldKey.crl(t, 9, from, until, fromOld), "new.crl": newKey.crl(t, 3, from, until, fromNew)}, fromOld, CertRevoked},
		{"a list signed with the new key revokes a certificate of the old key",
			map[string][]byte{"new.crl": newKey.crl(t, 3, from, until, fromOld)}, fromOld, CertRevoked},
		{"a stale list of either key fails closed for the name",
			map[string][]byte{"old.crl": oldKey.crl(t, 9, from, until), "new.crl": stale}, fromOld, CertInvalid},
		{"fresh lists that do not name a certificate let it count",
			map[string][]byte{"old.crl": oldKey.crl(t, 9, from, until), "new.crl": newKey.crl(t, 3, from, until)}, fromOld, CertValid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := ParseCRLs(tc.files, signers)
			if err != nil {
				t.Fatal(err)
			}
			if set.Len() != len(tc.files) {
				t.Errorf("the set has lists from %d issuers, want %d", set.Len(), len(tc.files))
			}
			v := &CertVerifier{Roots: pool, CRLs: func() *CRLSet { return set }}
			if got := v.Verify(t.Context(), []*x509.Certificate{tc.cert}, now); got.Status != tc.want {
				t.Fatalf("status = %v (%q), want %v", got.Status, got.Notice, tc.want)
			}
		})
	}
}

// TestCRL_ListWithoutNextUpdateIsNeverFresh checks the lookup on its
// own: ParseCRLs refuses a list without a next update, and were one to
// reach a set, it would fail closed rather than vouch for ever.
func TestCRL_ListWithoutNextUpdateIsNeverFresh(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	root := newTestCA(t, "root", now.Add(-5*year), now.Add(5*year), nil)
	leaf := root.issue(t, clientTemplate("alice", now.Add(-time.Hour), now.Add(year)))
	block, _ := pem.Decode(root.rawCRL(t, now.Add(-time.Hour), time.Time{}, []pkix.Extension{crlNumber(t, big.NewInt(1), false)}))
	list, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !list.NextUpdate.IsZero() {
		t.Fatal("the list has a next update; the test proves nothing")
	}
	issuer := crlIssuer{key: keyID(root.cert), name: canonicalName(root.cert.RawSubject)}
	c := newCRL("list.crl", list, issuer)
	set := &CRLSet{byIssuer: map[crlIssuer]*crl{issuer: c}}
	set.index([]*x509.Certificate{root.cert}, []string{issuer.name})
	if got := set.check(leaf, root.cert, now); got != crlStale {
		t.Errorf("verdict of a list without a next update = %v, want stale (%v)", got, crlStale)
	}
}

// TestCRL_IssuerNamesCompareAsRFC5280 checks canonicalName: two
// encodings of one name are equal, as RFC 5280 §7.1 compares names
// (string types converted, case and insignificant space ignored, the
// attributes of an RDN in any order), and different names stay apart.
func TestCRL_IssuerNamesCompareAsRFC5280(t *testing.T) {
	cn := func(tag int, value string) nameAttribute {
		return nameAttribute{Type: oidCommonName, Value: asn1.RawValue{Tag: tag, Bytes: []byte(value)}}
	}
	o := func(value string) nameAttribute {
		return nameAttribute{Type: oidOrganization, Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(value)}}
	}
	name := func(rdns ...[]nameAttribute) []byte { return rdnsAs(t, rdns) }
	one := func(attrs ...nameAttribute) []nameAttribute { return attrs }
	corp := name(one(cn(asn1.TagUTF8String, "Corp CA")))

	tests := []struct {
		name  string
		a, b  []byte
		equal bool
	}{
		{"PrintableString and UTF8String", name(one(cn(asn1.TagPrintableString, "Corp CA"))), corp, true},
		{"BMPString and UTF8String", name(one(nameAttribute{Type: oidCommonName, Value: asn1.RawValue{Tag: asn1.TagBMPString, Bytes: bmp("Corp CA")}})), corp, true},
		{"TeletexString read as Latin-1 and UTF8String", name(one(cn(asn1.TagT61String, "Caf\xe9"))), name(one(cn(asn1.TagUTF8String, "Café"))), true},
		{"IA5String and UTF8String", name(one(cn(asn1.TagIA5String, "Corp CA"))), corp, true},
		{"other case", name(one(cn(asn1.TagUTF8String, "CORP ca"))), corp, true},
		{"other case beyond ASCII", name(one(cn(asn1.TagUTF8String, "CAFÉ"))), name(one(cn(asn1.TagUTF8String, "café"))), true},
		{"leading, trailing and repeated spaces", name(one(cn(asn1.TagUTF8String, "  Corp \t  CA "))), corp, true},
		{"the attributes of an RDN in another order", name(one(cn(asn1.TagUTF8String, "x"), o("y"))), name(one(o("y"), cn(asn1.TagPrintableString, "x"))), true},
		{"the same DER", corp, corp, true},
		{"another value", name(one(cn(asn1.TagUTF8String, "Corp CA 2"))), corp, false},
		{"a space taken out", name(one(cn(asn1.TagUTF8String, "CorpCA"))), corp, false},
		{"another attribute type", name(one(o("Corp CA"))), corp, false},
		{"RDNs in another order", name(one(cn(asn1.TagUTF8String, "x")), one(o("y"))), name(one(o("y")), one(cn(asn1.TagUTF8String, "x"))), false},
		{"two RDNs and one RDN of two attributes", name(one(cn(asn1.TagUTF8String, "x")), one(o("y"))), name(one(cn(asn1.TagUTF8String, "x"), o("y"))), false},
		{"a value of another kind than a string", name(one(nameAttribute{Type: oidCommonName, Value: asn1.RawValue{Tag: asn1.TagOctetString, Bytes: []byte("Corp CA")}})), corp, false},
		{"a name that does not parse", []byte("Corp CA"), corp, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := canonicalName(tc.a) == canonicalName(tc.b); got != tc.equal {
				t.Errorf("equal = %v, want %v", got, tc.equal)
			}
		})
	}
}

// FuzzCanonicalName feeds canonicalName outside input: it never panics,
// and gives one answer for one input.
func FuzzCanonicalName(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("Corp CA"))
	f.Add(commonNameAs(f, asn1.TagBMPString, bmp("Corp CA")))
	f.Add(commonNameAs(f, asn1.TagBMPString, []byte{0xd8, 0x00}))
	f.Add(commonNameAs(f, asn1.TagT61String, []byte("Caf\xe9")))
	f.Add(commonNameAs(f, asn1.TagUTF8String, []byte("\xff")))
	f.Fuzz(func(t *testing.T, der []byte) {
		if canonicalName(der) != canonicalName(der) {
			t.Error("two answers for one name")
		}
	})
}

// The check a request with a cached chain makes when CRLs are loaded and
// the client sends an intermediate that is not configured (a two-tier
// PKI with only its root configured): its name is looked up once.
func BenchmarkCertVerifier_VerifyClientIntermediateWithCRL(b *testing.B) {
	now := time.Now()
	root := newTestCA(b, "Corp Root CA", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	inter := newTestCA(b, "Corp Issuing CA 1", now.Add(-time.Hour), now.Add(24*time.Hour), root)
	leaf := inter.issue(b, clientTemplate("alice", now.Add(-time.Hour), now.Add(time.Hour)))
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	set, err := ParseCRLs(map[string][]byte{"root.crl": root.crl(b, 3, now.Add(-time.Hour), now.Add(time.Hour))}, []*x509.Certificate{root.cert})
	if err != nil {
		b.Fatal(err)
	}
	v := &CertVerifier{Roots: pool, CRLs: func() *CRLSet { return set }}
	chain := []*x509.Certificate{leaf, inter.cert}
	for b.Loop() {
		if !v.Verify(b.Context(), chain, now).Valid() {
			b.Fatal("not valid")
		}
	}
}
