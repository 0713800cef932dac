package redisstore

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store/cached"
	"gatehouse/store/storetest"
)

// TestChangeOf_EveryKeyIsKnown runs every key name the store writes on
// one server through changeOf: the keys cached records are read from
// name what changed, every other key is ignored. A key changeOf does
// not know empties every instance's whole cache on every write to it,
// which must never be the case for a key written on each sign-in.
func TestChangeOf_EveryKeyIsKnown(t *testing.T) {
	k := newKeyspace(false)
	shard := "0001"
	changes := map[string]cached.Kind{
		k.session(shard + ".abc"): cached.Session,
		k.account("alice"):        cached.Account,
		k.role("admin"):           cached.Roles,
		k.roles:                   cached.Roles,
		k.app("wiki"):             cached.Apps,
		k.apps:                    cached.Apps,
		k.revoked:                 cached.Revocations,
		k.legacyRevoked:           cached.Revocations,
	}
	for key, want := range changes {
		ch, ok := changeOf(key)
		if !ok || ch.Kind != want {
			t.Errorf("changeOf(%q) = %+v, %v; want kind %v", key, ch, ok, want)
		}
	}
	ignored := []string{
		k.accounts, k.accountNames, k.emails, k.certs, k.certsByIssue, k.audit,
		k.cert("ab"), k.certsOf("alice"), k.userSessions("alice"), k.sessionsOf("alice"),
		k.marker(""), k.emailClaim("a@example.com"), k.emailLease("a@example.com"),
		k.totpStep("alice", 7), k.failure("password:alice"), k.meta("x"), k.counter("x"), k.claim("x"),
		ticketKey("oidc-code:x"), oidcClientKey("grafana"), oidcClientsKey, oidcKeyKey("k1"), oidcKeysKey,
	}
	for _, key := range ignored {
		if ch, ok := changeOf(key); ok {
			t.Errorf("changeOf(%q) = %+v, true; want it ignored (no cached record is read from it)", key, ch)
		}
	}
}

// TestWatch_NotBehindSentinel: the cache's feed does not follow a
// failover yet, so a store behind Sentinel offers none (the portal then
// reads Redis on every request).
func TestWatch_NotBehindSentinel(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	s := &Store{rdb: rdb, k: newKeyspace(false), sentinel: true}
	if f, err := s.Watch(nil); err == nil {
		f.Close()
		t.Fatal("Watch behind Sentinel started a feed")
	}
}

// resetCounter is a cached.Handler that counts the times the feed told
// it to drop everything.
type resetCounter struct{ resets atomic.Int64 }

func (h *resetCounter) Invalidate(cached.Change) {}
func (h *resetCounter) Reset()                   { h.resets.Add(1) }

// TestTrackingFeed_UnansweredPing_FailsEveryWaiterAndReconnects: while
// Redis answers nothing (CLIENT PAUSE), the feed cannot vouch for the
// cache. Every request waiting for its PING fails with errFeedDown
// rather than being told the cache is current, the connection is
// replaced and the cache dropped, and once Redis answers again the feed
// vouches again.
func TestTrackingFeed_UnansweredPing_FailsEveryWaiterAndReconnects(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	s, err := Open(ctx, r.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h := &resetCounter{}
	f, err := s.Watch(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	syncs := func() error {
		t.Helper()
		for range 200 {
			if err := f.Sync(ctx); err == nil {
				return nil
			}
			time.Sleep(25 * time.Millisecond)
		}
		return errors.New("the feed never vouched")
	}
	if err := syncs(); err != nil {
		t.Fatal(err)
	}
	resets := h.resets.Load()

	admin := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { admin.Close() })
	pause := 3 * syncTimeout
	if err := admin.Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() { errs <- f.Sync(ctx) }()
	}
	for range cap(errs) {
		if err := <-errs; !errors.Is(err, errFeedDown) {
			t.Errorf("Sync while Redis answers nothing = %v, want errFeedDown", err)
		}
	}
	if err := syncs(); err != nil {
		t.Fatalf("after the pause: %v", err)
	}
	if h.resets.Load() <= resets {
		t.Error("the cache was not dropped when the feed's connection was replaced")
	}
}
