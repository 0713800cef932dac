package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
	"gatehouse/store/cached"
	"gatehouse/store/storetest"
)

// TestChangeOf_EveryKeyIsKnown runs every key name the store writes, on
// one server and on a Cluster (with hash tags), through changeOf: the
// keys cached records are read from name what changed, every other key
// is ignored. A key changeOf does not know empties every instance's
// whole cache on every write to it, which must never be the case for a
// key written on each sign-in.
func TestChangeOf_EveryKeyIsKnown(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		t.Run(fmt.Sprintf("cluster=%v", cluster), func(t *testing.T) { testChangeOfKnowsEveryKey(t, newKeyspace(cluster)) })
	}
}

func testChangeOfKnowsEveryKey(t *testing.T, k keyspace) {
	sid := store.SessionID("alice", "abc")
	changes := map[string]cached.Kind{
		k.session(sid):        cached.Session,
		k.session("old-form"): cached.Session,
		k.account("alice"):    cached.Account,
		k.role("admin"):       cached.Roles,
		k.roles:               cached.Roles,
		k.app("wiki"):         cached.Apps,
		k.apps:                cached.Apps,
		k.revoked:             cached.Revocations,
		k.legacyRevoked:       cached.Revocations,
		k.accounts:            cached.Account,
		k.accountNames:        cached.Account,
	}
	for key, want := range changes {
		ch, ok := changeOf(key)
		if !ok || ch.Kind != want {
			t.Errorf("changeOf(%q) = %+v, %v; want kind %v", key, ch, ok, want)
		}
	}
	for key, name := range map[string]string{k.session(sid): sid, k.account("alice"): "alice"} {
		if ch, _ := changeOf(key); ch.Name != name {
			t.Errorf("changeOf(%q) names %q, want %q", key, ch.Name, name)
		}
	}
	ignored := []string{
		k.emails, k.certs, k.certsByIssue, k.audit,
		k.cert("ab"), k.certsOf("alice"), k.userSessions("alice"), k.sessionsOf("alice"),
		k.marker(""), k.marker(store.Shard("alice")), k.emailClaim("a@example.com"), k.emailLease("a@example.com"),
		k.totpStep("alice", 7), k.failure("password:alice"), k.meta("x"), k.counter("x"), k.claim("x"),
		ticketKey("oidc-code:x"), oidcClientKey("grafana"), oidcClientsKey, oidcKeyKey("k1"), oidcKeysKey,
		k.fenceSeq(), k.fenceHolders(), k.lease("i1"), fenceChannel(0), fenceChannel(3),
	}
	for _, key := range ignored {
		if ch, ok := changeOf(key); ok {
			t.Errorf("changeOf(%q) = %+v, true; want it ignored (no cached record is read from it)", key, ch)
		}
	}
}

// TestConnWatch_UsesTheNewestServerWhileAConnectionIsOpen: the store's
// client reads from a server when its newest connection went there and
// one to it is still open. Once go-redis's failover client has closed
// its connections to the old master (+switch-master), it no longer
// reads there, even before it has dialed the new one.
func TestConnWatch_UsesTheNewestServerWhileAConnectionIsOpen(t *testing.T) {
	ln1, ln2 := listen(t), listen(t)
	x, y := ln1.Addr().String(), ln2.Addr().String()
	w := newConnWatch()
	if w.uses(x) || w.uses("") {
		t.Fatal("a client without connections reads from a server")
	}
	x1, x2 := w.opened(dial(t, x)), w.opened(dial(t, x))
	if !w.uses(x) {
		t.Fatalf("after dialing %s the client does not read from it", x)
	}
	y1 := w.opened(dial(t, y))
	if w.uses(x) || !w.uses(y) {
		t.Fatalf("after dialing %s: uses(%s) = %v, uses(%s) = %v; want only the newest", y, x, w.uses(x), y, w.uses(y))
	}
	y1.Close()
	y1.Close() // a second Close counts once
	if w.uses(y) {
		t.Fatalf("with its only connection to %s closed the client still reads from it", y)
	}
	x3 := w.opened(dial(t, x))
	x1.Close()
	x2.Close()
	if !w.uses(x) {
		t.Fatalf("with one connection to %s left the client does not read from it", x)
	}
	x3.Close()
	if w.uses(x) {
		t.Fatalf("with every connection to %s closed the client still reads from it", x)
	}
	if _, ok := x3.(syscall.Conn); !ok {
		t.Error("a watched TCP connection hides its file descriptor from go-redis's health check")
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestTrackingFeed_StoreClientOnAnotherServer_RefusesToVouchAndFollows:
// behind Sentinel, the feed's PONG vouches for the server the feed is
// subscribed on. When the store's client has moved to another server
// (a failover: the name now points elsewhere, its connections to the
// old master are gone) while the feed's connection stayed, the feed
// must not vouch: a write on the new server is never reported to it.
// It connects again through the same dialer, hence to the new server,
// drops the cache, and vouches there, with that server's writes
// reported.
func TestTrackingFeed_StoreClientOnAnotherServer_RefusesToVouchAndFollows(t *testing.T) {
	old, next := storetest.StartRedis(t), storetest.StartRedis(t)
	if old.External() {
		t.Skip("GATEHOUSE_TEST_REDIS is set: this test needs two servers of its own")
	}
	ctx := t.Context()
	// master stands for Sentinel: the address the dialer is told to use.
	var master atomic.Value
	master.Store(old.Addr)
	rdb := redis.NewClient(&redis.Options{
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, master.Load().(string))
		},
		MaxRetries: 1,
	})
	s := &Store{rdb: rdb, k: newKeyspace(false), sentinel: newConnWatch()}
	rdb.AddHook(s.sentinel)
	t.Cleanup(func() { s.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	h := &resetCounter{}
	f := watchVouching(t, s, h)

	// The failover: the name moves, the store's client loses its
	// connections to the old master and dials the new one. The feed's
	// (pub/sub) connection stays on the old master.
	master.Store(next.Addr)
	oldAdmin := redis.NewClient(&redis.Options{Addr: old.Addr})
	t.Cleanup(func() { oldAdmin.Close() })
	if err := oldAdmin.ClientKillByFilter(ctx, "TYPE", "normal").Err(); err != nil {
		t.Fatalf("CLIENT KILL: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for err := rdb.Ping(ctx).Err(); err != nil || s.sentinel.server() != next.Addr; err = rdb.Ping(ctx).Err() {
		if time.Now().After(deadline) {
			t.Fatalf("the store's client did not move to %s: it is on %s (%v)", next.Addr, s.sentinel.server(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, _ := oldAdmin.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text(); !strings.Contains(n, "sub=1") {
		t.Fatalf("the feed's connection did not stay on the old master: %q", n)
	}
	resets := h.resets.Load()
	invalidations := h.invalidations.Load()
	if err := rdb.Set(ctx, s.k.account("alice"), "{}", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(ctx); !errors.Is(err, errFeedDown) {
		t.Fatalf("Sync with the feed on the old master and the store's client on the new one = %v, want errFeedDown", err)
	}

	if err := vouches(ctx, f); err != nil {
		t.Fatalf("after the failover: %v", err)
	}
	if h.resets.Load() <= resets {
		t.Error("the cache was not dropped when the feed moved to the new master")
	}
	nextAdmin := redis.NewClient(&redis.Options{Addr: next.Addr})
	t.Cleanup(func() { nextAdmin.Close() })
	if n, _ := nextAdmin.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text(); !strings.Contains(n, "sub=1") {
		t.Fatalf("the feed is not subscribed on the new master: %q", n)
	}
	if err := rdb.Set(ctx, s.k.account("alice"), "{}", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(ctx); err != nil {
		t.Fatalf("Sync after a write on the new master: %v", err)
	}
	if h.invalidations.Load() <= invalidations {
		t.Error("a write on the new master was not reported to the feed")
	}
}

// vouches waits, within a bound, until f vouches for the cache.
func vouches(ctx context.Context, f cached.Feed) error {
	var err error
	for range 200 {
		if err = f.Sync(ctx); err == nil {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("the feed never vouched: %w", err)
}

// watchVouching starts s's feed, reporting to h, and waits until it
// vouches; the feed is closed when t ends.
func watchVouching(t *testing.T, s *Store, h *resetCounter) cached.Feed {
	t.Helper()
	f, err := s.Watch(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := vouches(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	return f
}

// pauseFailsEveryWaiter pauses the Redis server at addr (CLIENT PAUSE,
// three PING timeouts long) and checks that every request waiting on f
// meanwhile is told the feed cannot vouch.
func pauseFailsEveryWaiter(t *testing.T, f cached.Feed, addr string) {
	t.Helper()
	ctx := t.Context()
	admin := redis.NewClient(&redis.Options{Addr: addr})
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
			t.Errorf("Sync while %s answers nothing = %v, want errFeedDown", addr, err)
		}
	}
}

// resetCounter is a cached.Handler that counts the times the feed told
// it to drop everything, and the changes it reported.
type resetCounter struct{ resets, invalidations atomic.Int64 }

func (h *resetCounter) Invalidate(cached.Change) { h.invalidations.Add(1) }
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
	// The read barrier alone, as behind Sentinel: a lease (fence.go)
	// would answer from memory during the pause, rightly, as no write
	// can complete meanwhile.
	s.fences = false
	h := &resetCounter{}
	f := watchVouching(t, s, h)
	resets := h.resets.Load()
	pauseFailsEveryWaiter(t, f, r.Addr)
	if err := vouches(ctx, f); err != nil {
		t.Fatalf("after the pause: %v", err)
	}
	if h.resets.Load() <= resets {
		t.Error("the cache was not dropped when the feed's connection was replaced")
	}
}
