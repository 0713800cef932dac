package store_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/store"
)

// TestCertificateOf_IdentityIsTheVerifiersOwn checks that a stored record
// names a certificate exactly as the verifier does, so that a revocation
// written from the record is found for the certificate.
func TestCertificateOf_IdentityIsTheVerifiersOwn(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x0a1b), Subject: pkix.Name{CommonName: "alice"},
		Issuer: pkix.Name{CommonName: "alice"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	rec := store.CertificateOf(c, "alice", now)
	if rec.Serial != "a1b" || rec.Serial != auth.SerialText(c) {
		t.Errorf("Serial = %q, want a1b (auth.SerialText %q)", rec.Serial, auth.SerialText(c))
	}
	if rec.Issuer != auth.IssuerID(c.RawIssuer) || rec.ID != auth.CertID(c) || rec.Fingerprint != auth.Fingerprint(c.Raw) {
		t.Errorf("record %+v names the certificate differently from auth", rec)
	}
}

func TestFindCertificate(t *testing.T) {
	certs := []store.Certificate{
		{Serial: "a1b", Fingerprint: "sha256:" + "ab12"},
		{Serial: "ff", Fingerprint: "sha256:" + "cd34"},
	}
	for _, tc := range []struct {
		id   string
		want string // serial, "" for none
	}{
		{"a1b", "a1b"},
		{" 0A:1B ", "a1b"},
		{"sha256:cd34", "ff"},
		{"CD34", "ff"},
		{"0", ""},
		{"", ""},
		{"sha256:", ""},
	} {
		got, ok := store.FindCertificate(certs, tc.id)
		if ok != (tc.want != "") || got.Serial != tc.want {
			t.Errorf("FindCertificate(%q) = %q, %v; want %q", tc.id, got.Serial, ok, tc.want)
		}
	}
}

func TestShard_SpreadsAndIsStable(t *testing.T) {
	seen := map[string]int{}
	for i := range 100_000 {
		seen[store.Shard(fmt.Sprint("user", i))]++
	}
	if len(seen) != store.Shards {
		t.Errorf("100,000 names fall in %d shards, want all %d", len(seen), store.Shards)
	}
	for shard, n := range seen {
		if n < 40 || n > 170 {
			t.Errorf("shard %s holds %d of 100,000 names, want about 98", shard, n)
		}
	}
	if store.Shard("alice") != store.Shard("alice") || store.Shard("alice") == store.Shard("bob") && store.Shard("alice") == store.Shard("carol") {
		t.Error("Shard is not a stable function of the name")
	}
}

func TestSessionID_NamesTheUsersShard(t *testing.T) {
	id := store.SessionID("alice", "r4nd0m_-")
	if shard, ok := store.SessionShard(id); !ok || shard != store.Shard("alice") {
		t.Errorf("store.SessionShard(%q) = %q, %v; want alice's shard %q", id, shard, ok, store.Shard("alice"))
	}
	for _, id := range []string{"s1", "abc", ".x", "zzz.x", "400.x", "12.x", "1234.x", "abc."} {
		if shard, ok := store.SessionShard(id); ok {
			t.Errorf("store.SessionShard(%q) = %q, true; want false", id, shard)
		}
	}
}

// An account made before IDs were kept goes by its name; one with an ID
// by the ID.
func TestAccountSubject_IDOrTheNameOfAnOlderAccount(t *testing.T) {
	if got := (store.Account{Name: "bob"}).Subject(); got != "bob" {
		t.Errorf("Subject of an account without an ID = %q, want its name", got)
	}
	id := store.NewAccountID()
	if got := (store.Account{Name: "bob", ID: id}).Subject(); got != id {
		t.Errorf("Subject = %q, want the ID %q", got, id)
	}
	if other := store.NewAccountID(); other == id || !strings.HasPrefix(id, "A") || len(id) != 27 || strings.ToUpper(id) != id {
		t.Errorf("NewAccountID = %q then %q; want two different IDs, A and 26 capitals and digits", id, other)
	}
}
