package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"gatehouse/store/storetest"
)

// runErr runs "gatehouse ARGS…" and returns its error.
func (d *cliData) runErr(stdin string, args ...string) error {
	d.t.Helper()
	getenv := func(k string) string { return map[string]string{"GATEHOUSE_DATA": d.data}[k] }
	var out bytes.Buffer
	return run(d.t.Context(), append([]string{"gatehouse"}, args...), getenv, strings.NewReader(stdin), &out, io.Discard)
}

// A cert issue that cannot write its files issues nothing: no key and
// certificate are left on disk, and the certificate the CA signed is
// recorded, so it shows in cert list and counts for nobody. Before, the
// files were written first and the record last: a .p12 already there
// (or the store failing) left a valid certificate and its key on disk
// that no revocation could reach.
func TestCLI_CertIssueThatFailsLeavesNothingThatCounts(t *testing.T) {
	d := newCLIData(t)
	d.run("", "user", "add", "alice", "--role", "employee")
	prefix := filepath.Join(t.TempDir(), "alice")
	if err := os.WriteFile(prefix+".p12", []byte("someone else's file"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := d.runErr("", "cert", "issue", "alice", "--out", prefix)
	if err == nil || !strings.Contains(err.Error(), "alice.p12") {
		t.Fatalf("cert issue over an existing .p12: %v, want an error naming the file", err)
	}
	for _, ext := range []string{".crt", ".key"} {
		if _, err := os.Stat(prefix + ext); err == nil {
			t.Errorf("%s was left on disk by the failed issue", prefix+ext)
		}
	}
	if b, _ := os.ReadFile(prefix + ".p12"); string(b) != "someone else's file" {
		t.Errorf("the existing .p12 was overwritten")
	}
	st, err := openStore(&env{ctx: t.Context()}, &settings{data: d.data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	certs, err := st.Certificates(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		if c.RevokedAt.IsZero() {
			t.Errorf("certificate %s of alice is valid after an issue that failed", c.Serial)
		}
	}
	// Files that cannot be written once the certificate is made (here a
	// folder that is not there): the certificate is recorded, and revoked.
	missing := filepath.Join(t.TempDir(), "no-such-folder", "alice")
	if err := d.runErr("", "cert", "issue", "alice", "--out", missing); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("cert issue into a missing folder: %v, want an error saying the certificate is revoked", err)
	}
	if certs, err = st.Certificates(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 || certs[0].RevokedAt.IsZero() {
		t.Errorf("after an issue whose files could not be written: %+v, want one revoked certificate", certs)
	}
	if ev := d.audit(); len(ev) == 0 || ev[0].Action != "certificate.revoke" || !strings.Contains(ev[0].Reason, certs[0].Serial) {
		t.Errorf("the revocation of the certificate whose files could not be written is not the last audit event: %+v", ev[:min(len(ev), 1)])
	}

	// And a later issue with a free prefix works.
	d.run("", "cert", "issue", "alice", "--out", filepath.Join(t.TempDir(), "alice"))
}

// init (and serve on an empty data directory, which runs it) refuses a
// store that is set up already, whether or not it still has an account
// named admin: operators delete the default admin once they have their
// own. Before, a new data directory pointed at such a store got a new CA
// and a new admin account in the production store.
func TestCLI_InitRefusesAStoreThatIsSetUp(t *testing.T) {
	d := newCLIData(t)
	db := filepath.Join(d.data, "gatehouse.db")
	st, err := openStore(&env{ctx: t.Context()}, &settings{data: d.data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteAccount(t.Context(), "admin"); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	err = d.runErr("", "init", "--data", other, "--store", db)
	if err == nil || !strings.Contains(err.Error(), "set up already") {
		t.Errorf("init of a new data directory on a store that is set up: %v, want a refusal", err)
	}
	if _, err := st.Account(t.Context(), "admin"); err == nil {
		t.Errorf("init made a new admin account in a store that was set up")
	}
	if _, err := os.Stat(filepath.Join(other, "pki", "ca.key")); err == nil {
		t.Errorf("init made a new CA for a store that was set up")
	}
	st.Close()
}

// A command other than init and serve never makes a store: with a
// mistyped --data or --store it says there is no store there, and leaves
// nothing behind.
func TestCLI_CommandsDoNotMakeAStoreWhereThereIsNone(t *testing.T) {
	d := newCLIData(t)
	typo := filepath.Join(t.TempDir(), "dtaa")
	for _, args := range [][]string{
		{"user", "list", "--data", typo},
		{"user", "list", "--store", filepath.Join(typo, "other.db")},
	} {
		err := d.runErr("", args...)
		if err == nil || !strings.Contains(err.Error(), "there is no store at") {
			t.Errorf("gatehouse %s: %v, want \"there is no store at …\"", strings.Join(args, " "), err)
		}
	}
	if _, err := os.Stat(typo); err == nil {
		t.Errorf("a command made %s", typo)
	}
	// A Redis address with its scheme forgotten is told so, not that
	// there is no store.
	if err := d.runErr("", "user", "list", "--store", "localhost:6379"); err == nil || !strings.Contains(err.Error(), "redis://HOST:PORT/DB") {
		t.Errorf("--store localhost:6379: %v, want the forms a store takes", err)
	}
}

// The same on a Redis Cluster that lost one master, the one holding the
// listing of account names: the markers on the other masters say the
// store was set up, and init refuses instead of writing the missing
// markers back over the loss.
func TestCLI_InitRefusesAClusterThatLostOneMaster(t *testing.T) {
	c := storetest.StartCluster(t)
	gh := func(args ...string) error {
		var out bytes.Buffer
		return run(t.Context(), append([]string{"gatehouse"}, args...), func(string) string { return "" }, strings.NewReader(""), &out, io.Discard)
	}
	a := filepath.Join(t.TempDir(), "a")
	if err := gh("init", "--data", a, "--store", c.URL); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if err := gh("user", "add", fmt.Sprintf("user%02d", i), "--role", "employee", "--data", a, "--store", c.URL); err != nil {
			t.Fatal(err)
		}
	}
	st, err := openStore(&env{ctx: t.Context()}, &settings{data: a, store: c.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteAccount(t.Context(), "admin"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	flushed := ""
	for _, addr := range c.Addrs {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		if n, err := rdb.Exists(t.Context(), "gatehouse:{accounts}:account-names").Result(); err == nil && n == 1 {
			if err := rdb.FlushAll(t.Context()).Err(); err != nil {
				t.Fatal(err)
			}
			flushed = addr
		}
		rdb.Close()
	}
	if flushed == "" {
		t.Fatal("setup: no master holds the listing of account names")
	}
	b := filepath.Join(t.TempDir(), "b")
	err = gh("init", "--data", b, "--store", c.URL)
	if err == nil || !strings.Contains(err.Error(), "set up already") {
		t.Errorf("init on a cluster whose master %s lost its data: %v, want a refusal", flushed, err)
	}
	if _, err := os.Stat(filepath.Join(b, "pki", "ca.key")); err == nil {
		t.Errorf("init made a new CA for a cluster that was set up")
	}
}
