package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gatehouse/store"
)

// testView checks View: the session with its account and every role and
// app, sorted; ErrNotFound without the session; a zero account once the
// account is gone.
func testView(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.View(ctx, "nothing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("View(missing) error = %v, want store.ErrNotFound", err)
	}
	now := time.Now().Truncate(time.Millisecond)
	acct := store.Account{Name: "alice", ID: "Aview-alice", Email: "alice@example.com", PasswordHash: "x", Roles: []string{"employee"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	roles := []store.Role{{Name: "admin", RequireCertificate: true}, {Name: "employee"}}
	for _, r := range []store.Role{roles[1], roles[0]} {
		if err := s.PutRole(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	apps := []store.App{{Name: "ops", URL: "https://ops.example.com/", Roles: []string{"admin"}}, {Name: "wiki", URL: "https://wiki.example.com/", Roles: []string{"employee"}}}
	for _, a := range []store.App{apps[1], apps[0]} {
		if err := s.PutApp(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	sess := store.Session{ID: sid("alice", "s1"), User: "alice", Factors: []string{"password"}, CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.PutSession(ctx, sess, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := s.View(ctx, sid("alice", "s1"))
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	want := store.SessionView{Session: sess, Account: acct, Roles: roles, Apps: apps}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("View (-want +got):\n%s", diff)
	}
	// What one caller does to its view (a backend may cache decoded
	// records: this read may come from that cache) never reaches the
	// next caller's.
	if got, err = s.View(ctx, sid("alice", "s1")); err != nil {
		t.Fatalf("View again: %v", err)
	}
	got.Account.Roles[0], got.Apps[0].Roles[0], got.Session.Factors[0] = "admin", "employee", "certificate"
	got, err = s.View(ctx, sid("alice", "s1"))
	if err != nil {
		t.Fatalf("View again: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("View after a caller changed its copy (-want +got):\n%s", diff)
	}
	if err := s.DeleteAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	got, err = s.View(ctx, sid("alice", "s1"))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("View after the account was deleted: %v", err)
	}
	if err == nil && got.Account.Name != "" {
		t.Errorf("View after the account was deleted: account %+v, want none", got.Account)
	}
}

// testClaim checks Claim: one holder among concurrent callers, free
// again after the ttl, independent keys.
func testClaim(t *testing.T, s store.Store) {
	ctx := t.Context()
	const callers = 20
	var wg sync.WaitGroup
	var took atomic.Int32
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.Claim(ctx, "attempt:alice", 700*time.Millisecond)
			if err != nil {
				t.Errorf("Claim: %v", err)
			}
			if ok {
				took.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := took.Load(); n != 1 {
		t.Fatalf("%d of %d concurrent Claims took the key, want 1", n, callers)
	}
	if ok, err := s.Claim(ctx, "attempt:bob", time.Second); err != nil || !ok {
		t.Errorf("Claim of another key = %v, %v; want it taken", ok, err)
	}
	time.Sleep(time.Second)
	if ok, err := s.Claim(ctx, "attempt:alice", time.Second); err != nil || !ok {
		t.Errorf("Claim after the ttl = %v, %v; want it taken again", ok, err)
	}
	if _, err := s.Claim(ctx, "x", 0); err == nil {
		t.Error("Claim with ttl 0 succeeded, want an error")
	}
}

// testRefreshSession checks RefreshSession: a live session is rewritten
// with its new ttl; a deleted or expired one stays gone.
func testRefreshSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	sess := store.Session{ID: sid("alice", "r1"), User: "alice", CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}
	if ok, err := s.RefreshSession(ctx, sess, time.Hour); err != nil || ok {
		t.Fatalf("RefreshSession of a session never written = %v, %v; want false", ok, err)
	}
	if _, err := s.Session(ctx, sid("alice", "r1")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RefreshSession created a session: %v", err)
	}
	if err := s.PutSession(ctx, sess, 700*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	sess.LastSeen = now.Add(time.Minute)
	if ok, err := s.RefreshSession(ctx, sess, time.Hour); err != nil || !ok {
		t.Fatalf("RefreshSession of a live session = %v, %v; want true", ok, err)
	}
	time.Sleep(time.Second) // past the first ttl, inside the new one
	got, err := s.Session(ctx, sid("alice", "r1"))
	if err != nil || !got.LastSeen.Equal(sess.LastSeen) {
		t.Fatalf("session after refresh = %+v, %v; want LastSeen %v and the new ttl", got, err, sess.LastSeen)
	}
	if err := s.DeleteSession(ctx, sid("alice", "r1")); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.RefreshSession(ctx, sess, time.Hour); err != nil || ok {
		t.Errorf("RefreshSession after DeleteSession = %v, %v; want false", ok, err)
	}
	if _, err := s.Session(ctx, sid("alice", "r1")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a revoked session came back after RefreshSession: %v", err)
	}
}
