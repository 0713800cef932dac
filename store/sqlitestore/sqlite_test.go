package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gatehouse/store"
	"gatehouse/store/storetest"
)

// openFile opens the store at path for t and closes it when t ends.
func openFile(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// tempPath is a store file in a directory of t's own.
func tempPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "gatehouse.db")
}

func TestSQLiteStore_Contract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openFile(t, tempPath(t))
	})
}

func TestSQLiteStore_DataSurvivesReopening(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	acct := store.Account{Name: "alice", PasswordHash: "hash", Roles: []string{"employee"}, CreatedAt: time.Now()}
	role := store.Role{Name: "admin", RequireCertificate: true}
	cert := store.Certificate{Serial: "a", Issuer: "sha256:ii", Fingerprint: "sha256:aa", User: "alice", IssuedAt: time.Now()}
	sess := store.Session{ID: "s1", User: "alice", CreatedAt: time.Now()}
	for _, step := range []error{
		s.CreateAccount(ctx, acct),
		s.PutRole(ctx, role),
		s.PutCertificate(ctx, cert),
		s.PutSession(ctx, sess, time.Hour),
		s.AppendAudit(ctx, store.AuditEvent{Action: "login", Actor: "alice", Time: time.Now()}),
		s.AppendAudit(ctx, store.AuditEvent{Action: "logout", Actor: "alice", Time: time.Now()}),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	if _, err := s.RevokeCertificate(ctx, "a", time.Now(), "lost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddFailure(ctx, "password:alice", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetMetaOnce(ctx, "totp-key-check", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RaiseCounter(ctx, "crl-number:x", big.NewInt(42)); err != nil {
		t.Fatal(err)
	}
	before, err := s.Audit(ctx, store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openFile(t, path)
	if got, err := s.Account(ctx, "alice"); err != nil || !slices.Equal(got.Roles, acct.Roles) {
		t.Errorf("account after reopening = %+v, %v", got, err)
	}
	if got, err := s.Role(ctx, "admin"); err != nil || got != role {
		t.Errorf("role after reopening = %+v, %v", got, err)
	}
	if revoked, err := s.IsRevoked(ctx, "sha256:ii", "a"); err != nil || !revoked {
		t.Errorf("revocation after reopening = %v, %v", revoked, err)
	}
	if _, err := s.Session(ctx, "s1"); err != nil {
		t.Errorf("session after reopening: %v", err)
	}
	if n, err := s.Failures(ctx, "password:alice"); err != nil || n != 1 {
		t.Errorf("failures after reopening = %d, %v", n, err)
	}
	if v, err := s.SetMetaOnce(ctx, "totp-key-check", "v2"); err != nil || v != "v1" {
		t.Errorf("meta after reopening = %q, %v", v, err)
	}
	if n, err := s.RaiseCounter(ctx, "crl-number:x", big.NewInt(1)); err != nil || n.Int64() != 42 {
		t.Errorf("counter after reopening = %v, %v; want 42", n, err)
	}
	after, err := s.Audit(ctx, store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("audit trail after reopening (-before +after):\n%s", diff)
	}
	// New events still come after the old ones.
	if err := s.AppendAudit(ctx, store.AuditEvent{Action: "login", Actor: "bob", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Audit(ctx, store.AuditQuery{Limit: 1}); len(got.Items) != 1 || got.Items[0].Actor != "bob" {
		t.Errorf("newest event after reopening = %+v", got)
	}
}

func TestSQLiteStore_FilesArePrivate(t *testing.T) {
	path := tempPath(t)
	s := openFile(t, path)
	// A write makes sure the -wal and -shm files exist.
	if err := s.PutRole(t.Context(), store.Role{Name: "employee"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %v, want -rw-------", filepath.Base(p), mode)
		}
	}
}

func TestSQLiteStore_PathNeedsNoEscaping(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd dir ?#%3F", "a file?#%20.db")
	if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	s := openFile(t, path)
	if err := s.PutRole(t.Context(), store.Role{Name: "employee"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the store is not in the file it was given: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "a file?#%20.db") {
			t.Errorf("unexpected file %q beside the store", e.Name())
		}
	}
}

func TestSQLiteStore_MissingDirectoryIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "gatehouse.db")
	if s, err := Open(t.Context(), path); err == nil {
		s.Close()
		t.Fatal("Open in a missing directory succeeded")
	}
}

// TestSQLiteStore_TwoStoresOnOneFile opens the file twice, as the server
// and the command line do, and checks that each sees the other's writes
// and that concurrent updates from both are all kept.
func TestSQLiteStore_TwoStoresOnOneFile(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	server, cli := openFile(t, path), openFile(t, path)

	if err := cli.CreateAccount(ctx, store.Account{Name: "alice", Roles: []string{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Account(ctx, "alice"); err != nil {
		t.Fatalf("the other store does not see the new account: %v", err)
	}
	if err := server.PutSession(ctx, store.Session{ID: "s1", User: "alice"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n, err := cli.DeleteUserSessions(ctx, "alice"); err != nil || n != 1 {
		t.Fatalf("DeleteUserSessions from the other store = %d, %v; want 1", n, err)
	}
	if _, err := server.Session(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session ended by the other store: err = %v, want ErrNotFound", err)
	}

	const each = 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for i := range each {
		for name, s := range map[string]*Store{"server": server, "cli": cli} {
			wg.Go(func() {
				role := fmt.Sprintf("%s-%02d", name, i)
				errs <- s.UpdateAccount(context.Background(), "alice", func(a *store.Account) error {
					a.Roles = append(a.Roles, role)
					return nil
				})
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("UpdateAccount: %v", err)
		}
	}
	var want []string
	for i := range each {
		want = append(want, fmt.Sprintf("cli-%02d", i), fmt.Sprintf("server-%02d", i))
	}
	slices.Sort(want)
	for name, s := range map[string]*Store{"server": server, "cli": cli} {
		a, err := s.Account(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(a.Roles)
		if diff := cmp.Diff(want, a.Roles); diff != "" {
			t.Errorf("roles read by %s after concurrent updates from both (-want +got):\n%s", name, diff)
		}
	}
}

// helperEnv names the store file when this test binary runs as the
// "other process" of TestSQLiteStore_AnotherProcessWhileOpen.
const helperEnv = "GATEHOUSE_SQLITESTORE_HELPER"

// helperUpdates is how many updates the other process makes.
const helperUpdates = 50

// TestSQLiteStore_AnotherProcessWhileOpen runs this test binary again as a
// second process (like the gatehouse command beside gatehouse serve) that
// writes to the file while this process holds it open and writes too.
func TestSQLiteStore_AnotherProcessWhileOpen(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	s := openFile(t, path)
	if err := s.CreateAccount(ctx, store.Account{Name: "alice", Roles: []string{}}); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteStore_HelperProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// Write all the while the other process runs, so that the two
	// really contend for the file, pausing a moment between writes as a
	// server does between requests: SQLite does not queue writers of
	// different processes fairly (a waiting one polls for the lock), so a
	// loop that never pauses could hold the other process off until its
	// busy timeout.
	var ours []string
	var helperErr error
	deadline := time.After(time.Minute)
loop:
	for i := 0; ; i++ {
		select {
		case helperErr = <-done:
			break loop
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("the other process did not finish within a minute; its output:\n%s", out.String())
		default:
		}
		role := fmt.Sprintf("parent-%04d", i)
		if err := s.UpdateAccount(ctx, "alice", func(a *store.Account) error {
			a.Roles = append(a.Roles, role)
			return nil
		}); err != nil {
			t.Fatalf("UpdateAccount while the other process writes: %v", err)
		}
		ours = append(ours, role)
		time.Sleep(time.Millisecond)
	}
	if helperErr != nil {
		t.Fatalf("the other process failed: %v; its output:\n%s", helperErr, out.String())
	}
	if !strings.Contains(out.String(), "--- PASS: TestSQLiteStore_HelperProcess") {
		t.Fatalf("the other process did not run its test; its output:\n%s", out.String())
	}

	a, err := s.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := ours
	for i := range helperUpdates {
		want = append(want, fmt.Sprintf("child-%04d", i))
	}
	slices.Sort(want)
	slices.Sort(a.Roles)
	if diff := cmp.Diff(want, a.Roles); diff != "" {
		t.Errorf("roles after both processes updated the account (%d updates here) (-want +got):\n%s", len(ours), diff)
	}
	if _, err := s.Session(ctx, "from-child"); err != nil {
		t.Errorf("session the other process wrote: %v", err)
	}
	if ev, err := s.Audit(ctx, store.AuditQuery{Actor: "child"}); err != nil || len(ev.Items) != 1 {
		t.Errorf("audit events the other process wrote = %+v, %v", ev, err)
	}
	t.Logf("%d updates here, %d in the other process", len(ours), helperUpdates)
}

// TestSQLiteStore_HelperProcess is the other process of
// TestSQLiteStore_AnotherProcessWhileOpen; it does nothing on its own.
func TestSQLiteStore_HelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("runs only as the other process of TestSQLiteStore_AnotherProcessWhileOpen")
	}
	ctx := t.Context()
	s := openFile(t, path)
	if _, err := s.Account(ctx, "alice"); err != nil {
		t.Fatalf("the account the first process made: %v", err)
	}
	for i := range helperUpdates {
		role := fmt.Sprintf("child-%04d", i)
		if err := s.UpdateAccount(ctx, "alice", func(a *store.Account) error {
			a.Roles = append(a.Roles, role)
			return nil
		}); err != nil {
			t.Fatalf("UpdateAccount: %v", err)
		}
	}
	if err := s.PutSession(ctx, store.Session{ID: "from-child", User: "alice"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, store.AuditEvent{Action: "test", Actor: "child", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteStore_ClosedIsErrUnavailable(t *testing.T) {
	s := openFile(t, tempPath(t))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkUnavailable(t, s, "closed")
}

// TestSQLiteStore_LockedTooLongIsErrUnavailable holds the write lock from
// another connection for longer than the busy timeout: writes fail with
// ErrUnavailable, reads go on.
func TestSQLiteStore_LockedTooLongIsErrUnavailable(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	s, err := open(ctx, path, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.CreateAccount(ctx, store.Account{Name: "alice"}); err != nil {
		t.Fatal(err)
	}

	other, err := sql.Open("sqlite", dsn(path, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	tx, err := other.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	start := time.Now()
	err = s.UpdateAccount(ctx, "alice", func(a *store.Account) error { a.Email = "x"; return nil })
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("UpdateAccount while another process holds the lock: error = %v, want ErrUnavailable", err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("UpdateAccount gave up after %v, before the busy timeout", waited)
	}
	if _, err := s.Account(ctx, "alice"); err != nil {
		t.Errorf("read while another process holds the write lock: %v", err)
	}
	tx.Rollback()
	if err := s.UpdateAccount(ctx, "alice", func(a *store.Account) error { a.Email = "x"; return nil }); err != nil {
		t.Errorf("UpdateAccount once the lock is released: %v", err)
	}
}

// checkUnavailable checks that calls fail with ErrUnavailable and never
// with ErrNotFound, which would let a caller fail open.
func checkUnavailable(t *testing.T, s *Store, why string) {
	t.Helper()
	ctx := t.Context()
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"Account", func() error { _, err := s.Account(ctx, "alice"); return err }},
		{"Accounts", func() error { _, err := s.Accounts(ctx); return err }},
		{"Session", func() error { _, err := s.Session(ctx, "s1"); return err }},
		{"PutSession", func() error { return s.PutSession(ctx, store.Session{ID: "s1"}, time.Hour) }},
		{"UpdateAccount", func() error {
			return s.UpdateAccount(ctx, "alice", func(*store.Account) error { return nil })
		}},
		{"IsRevoked", func() error { _, err := s.IsRevoked(ctx, "sha256:ii", "a"); return err }},
		{"Failures", func() error { _, err := s.Failures(ctx, "k"); return err }},
		{"AddFailure", func() error { _, err := s.AddFailure(ctx, "k", time.Hour); return err }},
		{"UseTOTPStep", func() error { _, err := s.UseTOTPStep(ctx, "alice", 1, time.Hour); return err }},
		{"Audit", func() error { _, err := s.Audit(ctx, store.AuditQuery{}); return err }},
		{"Ping", func() error { return s.Ping(ctx) }},
	} {
		err := op.call()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s on a %s store: error = %v, want store.ErrUnavailable", op.name, why, err)
		}
		if errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s on a %s store: error = %v, must not be store.ErrNotFound", op.name, why, err)
		}
	}
}

// TestSQLiteStore_PurgesExpiredRows moves the store's clock past every
// expiry: the next write deletes the expired rows, and only those.
func TestSQLiteStore_PurgesExpiredRows(t *testing.T) {
	ctx := t.Context()
	s := openFile(t, tempPath(t))
	now := time.Now()
	s.now = func() time.Time { return now }
	for _, step := range []func() error{
		func() error { return s.PutSession(ctx, store.Session{ID: "short", User: "alice"}, time.Hour) },
		func() error { return s.PutSession(ctx, store.Session{ID: "long", User: "alice"}, 24*time.Hour) },
		func() error { _, err := s.UseTOTPStep(ctx, "alice", 7, time.Minute); return err },
		func() error { _, err := s.AddFailure(ctx, "totp:alice", time.Hour); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	count := func(table string) int {
		var n int
		if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	now = now.Add(2 * time.Hour)
	// Expired rows are invisible at once, purged or not.
	if _, err := s.Session(ctx, "short"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired session: err = %v, want ErrNotFound", err)
	}
	if n, err := s.Failures(ctx, "totp:alice"); err != nil || n != 0 {
		t.Errorf("expired failures = %d, %v", n, err)
	}
	if err := s.PutRole(ctx, store.Role{Name: "employee"}); err != nil { // any write
		t.Fatal(err)
	}
	for table, want := range map[string]int{"sessions": 1, "totp_used": 0, "failures": 0} {
		if got := count(table); got != want {
			t.Errorf("%s rows after the purge = %d, want %d", table, got, want)
		}
	}
	if _, err := s.Session(ctx, "long"); err != nil {
		t.Errorf("live session after the purge: %v", err)
	}
}

func TestSQLiteStore_NewerSchemaIsRefused(t *testing.T) {
	path := tempPath(t)
	s := openFile(t, path)
	if _, err := s.db.ExecContext(t.Context(), fmt.Sprintf("PRAGMA user_version = %d", schemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(t.Context(), path); err == nil {
		s.Close()
		t.Fatal("Open of a file with a newer schema succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error = %v, want it to say the schema is newer", err)
	}
}

func TestSQLiteStore_AuditBeforeMustBeAnEventID(t *testing.T) {
	s := openFile(t, tempPath(t))
	if _, err := s.Audit(t.Context(), store.AuditQuery{Before: "1714000000000-0"}); err == nil {
		t.Error("Audit with a Redis stream ID as Before succeeded")
	}
}

// TestSQLiteStore_RevocationsByFingerprintAreKeptOnUpgrade opens a file
// written by the first schema, whose revocations were kept by
// fingerprint, and checks the certificate stays revoked by serial.
func TestSQLiteStore_RevocationsByFingerprintAreKeptOnUpgrade(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		migrations[0],
		`INSERT INTO certificates (serial, fingerprint, user, issued_at, data) VALUES
			('b1', 'sha256:f1', 'alice', '1', '{"serial":"b1","fingerprint":"sha256:f1","user":"alice","revoked_at":"2026-01-02T03:04:05Z"}'),
			('b2', 'sha256:f2', 'alice', '2', '{"serial":"b2","fingerprint":"sha256:f2","user":"alice"}')`,
		`INSERT INTO revoked (fingerprint) VALUES ('sha256:f1')`,
		"PRAGMA user_version = 1",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := openFile(t, path)
	if revoked, err := s.IsRevoked(ctx, "sha256:any-issuer", "b1"); err != nil || !revoked {
		t.Errorf("certificate revoked before the upgrade: IsRevoked = %v, %v; want true", revoked, err)
	}
	if revoked, err := s.IsRevoked(ctx, "sha256:any-issuer", "b2"); err != nil || revoked {
		t.Errorf("certificate never revoked: IsRevoked = %v, %v; want false", revoked, err)
	}
}

// A file written before emails were unique gets their index when it is
// opened: its emails count at once, in any ASCII case, and accounts that
// already shared one are kept, readable and changeable.
func TestSQLiteStore_EmailsOfAnOlderFileAreIndexed(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	db, err := sql.Open("sqlite", dsn(path, busyTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, migrations[0]+"PRAGMA user_version = 1;"); err != nil {
		t.Fatalf("write a version 1 file: %v", err)
	}
	for name, email := range map[string]string{"alice": "Alice@Example.com", "bob": "shared@example.com", "carol": "SHARED@example.com", "dave": ""} {
		b, err := json.Marshal(store.Account{Name: name, Email: email, Roles: []string{"employee"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO accounts (name, data) VALUES (?, ?)", name, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openFile(t, path)
	for _, email := range []string{"alice@example.com", "Shared@Example.com"} {
		if err := s.CreateAccount(ctx, store.Account{Name: "erin", Email: email}); !errors.Is(err, store.ErrEmailTaken) {
			t.Errorf("CreateAccount with %q, an email of the older file: error = %v, want store.ErrEmailTaken", email, err)
		}
	}
	for _, name := range []string{"bob", "carol"} {
		err := s.UpdateAccount(ctx, name, func(a *store.Account) error {
			a.Disabled = true
			return nil
		})
		if err != nil {
			t.Errorf("UpdateAccount(%s), leaving the shared email alone: %v", name, err)
		}
	}
	// Once bob moves away, carol still has the email.
	err = s.UpdateAccount(ctx, "bob", func(a *store.Account) error {
		a.Email = "bob@example.com"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, store.Account{Name: "erin", Email: "shared@example.com"}); !errors.Is(err, store.ErrEmailTaken) {
		t.Errorf("CreateAccount with carol's email: error = %v, want store.ErrEmailTaken", err)
	}
	if err := s.CreateAccount(ctx, store.Account{Name: "erin", Email: ""}); err != nil {
		t.Errorf("CreateAccount without email beside dave's: %v", err)
	}
}

// A file written before markers existed is marked when it is opened, if
// it holds an account; one without accounts is not: it is either new or
// not the file that held the data.
func TestSQLiteStore_OlderFileIsMarkedWhenItHoldsAccounts(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name     string
		accounts int
		marked   bool
	}{
		{"with accounts", 1, true},
		{"empty", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tempPath(t)
			db, err := sql.Open("sqlite", dsn(path, busyTimeout))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, migrations[0]+migrations[1]+migrations[2]+"PRAGMA user_version = 3;"); err != nil {
				t.Fatalf("write a version 3 file: %v", err)
			}
			for i := range tc.accounts {
				if _, err := db.ExecContext(ctx, "INSERT INTO accounts (name, data) VALUES (?, ?)", fmt.Sprint("user", i), `{"name":"x"}`); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()
			err = openFile(t, path).CheckMarker(ctx, "")
			if tc.marked && err != nil {
				t.Errorf("CheckMarker of an older file with accounts = %v, want it marked on upgrade", err)
			}
			if !tc.marked && !errors.Is(err, store.ErrDataLost) {
				t.Errorf("CheckMarker of an older file without accounts = %v, want store.ErrDataLost", err)
			}
		})
	}
}

// Ending more sessions than one batch holds ends them all and counts the
// live ones, over several short write transactions.
func TestSQLiteStore_DeleteUserSessionsInBatches(t *testing.T) {
	ctx := t.Context()
	s := openFile(t, tempPath(t))
	now := s.now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	const live, expired = 2*deleteBatch + 10, 7
	for i := range live + expired {
		exp := now.Add(time.Hour)
		if i >= live {
			exp = now.Add(-time.Minute)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO sessions (id, user, created_at, expires_at, data) VALUES (?, 'alice', ?, ?, '{}')",
			fmt.Sprint("a", i), timeKey(now), exp.UnixNano())
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSession(ctx, store.Session{ID: "b1", User: "bob"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteUserSessions(ctx, "alice")
	if err != nil || n != live {
		t.Fatalf("DeleteUserSessions = %d, %v; want %d (the live ones)", n, err, live)
	}
	var left int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM sessions WHERE user = 'alice'").Scan(&left); err != nil || left != 0 {
		t.Errorf("alice's rows left = %d, %v; want 0", left, err)
	}
	if _, err := s.Session(ctx, "b1"); err != nil {
		t.Errorf("bob's session: %v", err)
	}
}

// BenchmarkListPages reads one page (100) of each listing, first and in
// the middle, from files of 10^3 and 10^5 accounts, each with a session
// and a certificate, and as many audit events: time and memory per page
// must be about the same at both sizes.
func BenchmarkListPages(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		s, err := Open(b.Context(), filepath.Join(b.TempDir(), "gatehouse.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		fillFile(b, s, n)
		mid := fmt.Sprintf("user%06d", n/2)
		for _, l := range []struct {
			name   string
			cursor string
			list   func(store.ListQuery) (int, error)
		}{
			{"accounts", store.Cursor(store.AccountCursor, store.AccountPosition{Name: mid}), func(q store.ListQuery) (int, error) {
				p, err := s.ListAccounts(b.Context(), q)
				return len(p.Items), err
			}},
			{"sessions", store.Cursor(store.SessionCursor, store.SessionPosition{User: mid, UserDone: true}), func(q store.ListQuery) (int, error) {
				p, err := s.ListSessions(b.Context(), q)
				return len(p.Items), err
			}},
			{"certificates", store.Cursor(store.CertificateCursor, store.CertificatePosition{IssuedAt: s.now().Add(time.Duration(n/2) * time.Millisecond)}), func(q store.ListQuery) (int, error) {
				p, err := s.ListCertificates(b.Context(), q)
				return len(p.Items), err
			}},
			{"audit", strconv.Itoa(n / 2), func(q store.ListQuery) (int, error) {
				p, err := s.Audit(b.Context(), store.AuditQuery{Before: q.Cursor, Limit: q.Limit})
				return len(p.Items), err
			}},
		} {
			for _, at := range []struct{ name, cursor string }{{"first", ""}, {"middle", l.cursor}} {
				b.Run(fmt.Sprintf("%s/%s/records=%d", l.name, at.name, n), func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if got, err := l.list(store.ListQuery{Cursor: at.cursor, Limit: 100}); err != nil || got != 100 {
							b.Fatalf("%d items, %v", got, err)
						}
					}
				})
			}
		}
	}
}

// fillFile writes n accounts, sessions, certificates and audit events in
// one transaction.
func fillFile(b *testing.B, s *Store, n int) {
	b.Helper()
	ctx := b.Context()
	now := s.now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	for i := range n {
		name := fmt.Sprintf("user%06d", i)
		acct, _ := json.Marshal(store.Account{Name: name, Roles: []string{"employee"}, CreatedAt: now})
		sess, _ := json.Marshal(store.Session{ID: fmt.Sprint("s", i), User: name, Factors: []string{"password"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		issued := now.Add(time.Duration(i) * time.Millisecond)
		cert, _ := json.Marshal(store.Certificate{Serial: fmt.Sprintf("%x", 1<<40+i), User: name, Subject: "CN=" + name, IssuedAt: issued})
		ev, _ := json.Marshal(store.AuditEvent{Time: now, Action: "login", Outcome: "success", Actor: name})
		for _, st := range []struct {
			q    string
			args []any
		}{
			{"INSERT INTO accounts (name, data) VALUES (?, ?)", []any{name, string(acct)}},
			{"INSERT INTO sessions (id, user, created_at, expires_at, data) VALUES (?, ?, ?, ?, ?)", []any{fmt.Sprint("s", i), name, timeKey(now), now.Add(time.Hour).UnixNano(), string(sess)}},
			{"INSERT INTO certificates (serial, fingerprint, user, issued_at, data) VALUES (?, ?, ?, ?, ?)", []any{fmt.Sprintf("%x", 1<<40+i), fmt.Sprint("f", i), name, timeKey(issued), string(cert)}},
			{"INSERT INTO audit (time, actor, target, action, data) VALUES (?, ?, '', 'login', ?)", []any{timeKey(now), name, string(ev)}},
		} {
			if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
