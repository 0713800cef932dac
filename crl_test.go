package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/store"
	"gatehouse/store/sqlitestore"
)

// testCA is a certificate authority made at run time.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newTestCA makes a CA named cn, signed by parent (a root when nil),
// valid from an hour ago until notAfter.
func newTestCA(t *testing.T, cn string, parent *testCA, notAfter time.Time) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// writeCRL writes a PEM CRL from c, numbered number, valid for an hour
// and revoking serials, and returns what it wrote.
func (c *testCA) writeCRL(t *testing.T, path string, number int64, serials ...*big.Int) []byte {
	t.Helper()
	now := time.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: now})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, c.cert, c.key)
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func openTestStore(t *testing.T, path string) store.Store {
	t.Helper()
	st, err := sqlitestore.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// revokes reports whether the CRL set in force revokes a certificate
// with serial from ca.
func revokes(t *testing.T, w *crlWatcher, ca *testCA, serial *big.Int) bool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "alice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	v := &auth.CertVerifier{Roots: pool, CRLs: w.current}
	return v.Verify(t.Context(), []*x509.Certificate{leaf}, time.Now()).Status == auth.CertRevoked
}

func TestCRLWatcher_NumbersNeverGoBack(t *testing.T) {
	root := newTestCA(t, "Corp Root", nil, time.Now().Add(24*time.Hour))
	dir := t.TempDir()
	file := filepath.Join(dir, "root.crl")
	dbPath := filepath.Join(dir, "gatehouse.db")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	serial := big.NewInt(1001)

	st := openTestStore(t, dbPath)
	five := root.writeCRL(t, file, 5, serial)
	w, err := newCRLWatcher(t.Context(), []string{file}, []*x509.Certificate{root.cert}, st, log)
	if err != nil {
		t.Fatal(err)
	}
	if !revokes(t, w, root, serial) {
		t.Fatal("list 5 does not revoke the serial it names")
	}

	t.Run("a reload with an older list keeps the list in force", func(t *testing.T) {
		root.writeCRL(t, file, 4) // revokes nothing
		err := w.load(t.Context())
		var older *auth.OlderCRLError
		if !errors.As(err, &older) || older.Number.Int64() != 4 || older.Seen.Int64() != 5 {
			t.Fatalf("reload error = %v, want an older-list error, 4 after 5", err)
		}
		if !revokes(t, w, root, serial) {
			t.Error("after the refused reload the serial is no longer revoked")
		}
	})

	t.Run("the same list again is fine", func(t *testing.T) {
		if err := os.WriteFile(file, five, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := w.load(t.Context()); err != nil {
			t.Fatalf("reloading list 5: %v", err)
		}
	})

	t.Run("a restart with an older list does not start, naming file, issuer and both numbers", func(t *testing.T) {
		root.writeCRL(t, file, 4)
		_, err := newCRLWatcher(t.Context(), []string{file}, []*x509.Certificate{root.cert}, st, log)
		if err == nil {
			t.Fatal("a new watcher (a restart) accepted list 4 after list 5")
		}
		for _, want := range []string{file, "CN=Corp Root", "CRL number 4", "number 5 already seen"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the error %q does not say %q", err, want)
			}
		}
	})

	t.Run("the highest number survives reopening the store", func(t *testing.T) {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		reopened := openTestStore(t, dbPath)
		root.writeCRL(t, file, 4)
		if _, err := newCRLWatcher(t.Context(), []string{file}, []*x509.Certificate{root.cert}, reopened, log); err == nil {
			t.Fatal("after reopening the store, list 4 was accepted after list 5")
		}
		root.writeCRL(t, file, 6)
		if _, err := newCRLWatcher(t.Context(), []string{file}, []*x509.Certificate{root.cert}, reopened, log); err != nil {
			t.Fatalf("list 6 after list 5: %v", err)
		}
	})

	t.Run("another store has seen nothing", func(t *testing.T) {
		root.writeCRL(t, file, 1)
		other := openTestStore(t, filepath.Join(t.TempDir(), "other.db"))
		if _, err := newCRLWatcher(t.Context(), []string{file}, []*x509.Certificate{root.cert}, other, log); err != nil {
			t.Fatalf("list 1 in a store that has seen none: %v", err)
		}
	})
}

func TestLoadClientIntermediates(t *testing.T) {
	year := time.Now().Add(365 * 24 * time.Hour)
	root := newTestCA(t, "Corp Root", nil, year)
	other := newTestCA(t, "Other Root", nil, year)
	issuing := newTestCA(t, "Corp Issuing", root, year)
	second := newTestCA(t, "Corp Issuing 2", issuing, year) // under issuing
	foreign := newTestCA(t, "Foreign Issuing", other, year)
	expired := newTestCA(t, "Old Issuing", root, time.Now().Add(-time.Minute))
	roots := x509.NewCertPool()
	roots.AddCert(root.cert)
	dir := t.TempDir()
	file := func(name string, cas ...*testCA) string {
		path := filepath.Join(dir, name)
		var b []byte
		for _, c := range cas {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})...)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "alice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: year}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, issuing.cert, &issuing.key.PublicKey, issuing.key)
	if err != nil {
		t.Fatal(err)
	}
	leafFile := filepath.Join(dir, "leaf.crt")
	if err := os.WriteFile(leafFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		files   []string
		want    int    // intermediates loaded
		wantErr string // "" when they load
	}{
		{"none", nil, 0, ""},
		{"one under a client CA", []string{file("issuing.crt", issuing)}, 1, ""},
		{"two tiers below the client CA, in one file", []string{file("both.crt", second, issuing)}, 2, ""},
		{"one under another CA is refused", []string{file("foreign.crt", foreign)}, 0, `"CN=Foreign Issuing" is not signed by a configured client CA`},
		{"an expired one is refused", []string{file("expired.crt", expired)}, 0, "does not chain to a configured client CA"},
		{"a certificate that is not a CA is refused", []string{leafFile}, 0, "is not a CA certificate"},
		{"a missing file is refused", []string{filepath.Join(dir, "missing.crt")}, 0, "read client intermediate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadClientIntermediates(tc.files, roots, time.Now())
			if tc.wantErr == "" {
				if err != nil || len(got) != tc.want {
					t.Fatalf("loaded %d, %v; want %d", len(got), err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one that says %q", err, tc.wantErr)
			}
			if len(tc.files) > 0 && !strings.Contains(err.Error(), tc.files[0]) {
				t.Errorf("the error %q does not name the file", err)
			}
		})
	}
}

// commonNameAs returns the DER name "CN=cn" with the value in the ASN.1
// string type tag.
func commonNameAs(t *testing.T, tag int, cn string) []byte {
	t.Helper()
	der, err := asn1.Marshal(pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: asn1.RawValue{Tag: tag, Bytes: []byte(cn)}}}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// reissued returns c's certificate issued again, self-signed with the
// same key, under the DER name rawSubject: a root re-issued by newer CA
// software that encodes its name in another string type.
func (c *testCA) reissued(t *testing.T, rawSubject []byte) *testCA {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, RawSubject: rawSubject,
		NotBefore: c.cert.NotBefore, NotAfter: c.cert.NotAfter,
		KeyUsage: c.cert.KeyUsage, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &c.key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: c.key}
}

// TestCRLWatcher_IssuerNameEncodingsShareOneNumber covers a CA whose
// certificate exists with its name as PrintableString and as UTF8String
// (one key), both configured: one issuer, so one CRL number that never
// goes back, across restarts, whichever encoding each list uses.
func TestCRLWatcher_IssuerNameEncodingsShareOneNumber(t *testing.T) {
	root := newTestCA(t, "unused", nil, time.Now().Add(24*time.Hour))
	printable := root.reissued(t, commonNameAs(t, asn1.TagPrintableString, "Corp CA"))
	utf8Name := root.reissued(t, commonNameAs(t, asn1.TagUTF8String, "Corp CA"))
	signers := []*x509.Certificate{printable.cert, utf8Name.cert}
	dir := t.TempDir()
	file := filepath.Join(dir, "corp.crl")
	st := openTestStore(t, filepath.Join(dir, "gatehouse.db"))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	serial := big.NewInt(1001)

	utf8Name.writeCRL(t, file, 8, serial)
	w, err := newCRLWatcher(t.Context(), []string{file}, signers, st, log)
	if err != nil {
		t.Fatal(err)
	}
	if !revokes(t, w, printable, serial) {
		t.Error("the list in the UTF8String name does not revoke a certificate issued under the PrintableString name")
	}

	printable.writeCRL(t, file, 7) // revokes nothing
	_, err = newCRLWatcher(t.Context(), []string{file}, signers, st, log)
	var older *auth.OlderCRLError
	if !errors.As(err, &older) || older.Number.Int64() != 7 || older.Seen.Int64() != 8 {
		t.Fatalf("a restart with list 7 in the other encoding after list 8: %v, want an older-list error, 7 after 8", err)
	}
	printable.writeCRL(t, file, 9)
	if _, err := newCRLWatcher(t.Context(), []string{file}, signers, st, log); err != nil {
		t.Fatalf("list 9 in the other encoding after list 8: %v", err)
	}
}

// TestCRLWatcher_NumbersSeenBeforeAnUpgradeStillCount starts with a
// store in which an earlier version kept CRL numbers: one record per DER
// encoding of the issuer's name, "crl-number:" and IssuerID of the
// encoding, shared by every key with that name. Those numbers still
// count, whichever encoding the list uses, as that version counted them
// (of the lists with one encoding, the newest must not be older); and a
// newer list raises them too, for instances of the earlier version that
// share the store.
func TestCRLWatcher_NumbersSeenBeforeAnUpgradeStillCount(t *testing.T) {
	root := newTestCA(t, "unused", nil, time.Now().Add(24*time.Hour))
	printable := root.reissued(t, commonNameAs(t, asn1.TagPrintableString, "Corp CA"))
	utf8Name := root.reissued(t, commonNameAs(t, asn1.TagUTF8String, "Corp CA"))
	otherKey := newTestCA(t, "Corp CA", nil, time.Now().Add(24*time.Hour)) // the PrintableString name
	if string(otherKey.cert.RawSubject) != string(printable.cert.RawSubject) {
		t.Fatal("the CA with the other key should have the PrintableString name")
	}
	signers := []*x509.Certificate{printable.cert, utf8Name.cert, otherKey.cert}
	former := func(ca *testCA) string { return "crl-number:" + auth.IssuerID(ca.cert.RawSubject) }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	type list struct {
		ca     *testCA
		number int64
	}

	tests := []struct {
		name  string
		seen  map[*testCA]int64 // what the earlier version kept
		lists []list
		// wantOlder is the refused number and the number seen; nil when
		// the lists are accepted.
		wantOlder []int64
	}{
		{"a number seen under the list's encoding counts",
			map[*testCA]int64{printable: 5}, []list{{printable, 4}}, []int64{4, 5}},
		{"a number seen under the issuer's other encoding counts",
			map[*testCA]int64{printable: 7, utf8Name: 9}, []list{{printable, 8}}, []int64{8, 9}},
		{"a newer list is accepted",
			map[*testCA]int64{printable: 5, utf8Name: 3}, []list{{utf8Name, 6}}, nil},
		{"two CAs sharing a name but not a key: the newer of their lists counts, as before",
			map[*testCA]int64{printable: 9}, []list{{printable, 9}, {otherKey, 3}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st := openTestStore(t, filepath.Join(dir, "gatehouse.db"))
			for ca, n := range tc.seen {
				if _, err := st.RaiseCounter(t.Context(), former(ca), big.NewInt(n)); err != nil {
					t.Fatal(err)
				}
			}
			var files []string
			for i, l := range tc.lists {
				files = append(files, filepath.Join(dir, fmt.Sprintf("%d.crl", i)))
				l.ca.writeCRL(t, files[i], l.number)
			}
			_, err := newCRLWatcher(t.Context(), files, signers, st, log)
			if tc.wantOlder != nil {
				var older *auth.OlderCRLError
				if !errors.As(err, &older) || older.Number.Int64() != tc.wantOlder[0] || older.Seen.Int64() != tc.wantOlder[1] {
					t.Fatalf("%v, want an older-list error, %d after %d", err, tc.wantOlder[0], tc.wantOlder[1])
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			newest := tc.lists[0]
			for _, ca := range []*testCA{printable, utf8Name} {
				if n, err := st.RaiseCounter(t.Context(), former(ca), big.NewInt(0)); err != nil || n.Int64() != newest.number {
					t.Errorf("the earlier version's record for %s holds %v (%v), want %d", ca.cert.Subject, n, err, newest.number)
				}
			}
		})
	}
}
