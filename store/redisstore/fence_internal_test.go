package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
	"gatehouse/store/cached"
	"gatehouse/store/storetest"
)

// slowHandler is a cached.Handler that, once slowed (slow), takes its
// time over each change of a named account, as an instance does whose
// processor is busy, and records the accounts it was told of. It is
// slowed only for the write a test checks: a feed kept busy for long
// would miss its lease's renewal.
type slowHandler struct {
	delay atomic.Int64 // a time.Duration
	mu    sync.Mutex
	seen  map[string]int
	// feed, when set, is checked at each Reset: heldAtReset is set if
	// its lease was still relied on when the cache was dropped.
	feed        *trackingFeed
	resets      atomic.Int64
	heldAtReset atomic.Bool
}

func (h *slowHandler) Invalidate(ch cached.Change) {
	if ch.Kind != cached.Account {
		return
	}
	if ch.Name != "" {
		time.Sleep(time.Duration(h.delay.Load()))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[string]int{}
	}
	h.seen[ch.Name]++
}

func (h *slowHandler) Reset() {
	if h.feed != nil && h.feed.lease.held() {
		h.heldAtReset.Store(true)
	}
	h.resets.Add(1)
}

// slow makes each later change of a named account take d.
func (h *slowHandler) slow(d time.Duration) { h.delay.Store(int64(d)) }

func (h *slowHandler) told(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[name]
}

// holdingLease starts s's feed, reporting to h, and waits until it holds
// its lease.
func holdingLease(t *testing.T, s *Store, h cached.Handler) *trackingFeed {
	t.Helper()
	feed, err := s.Watch(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { feed.Close() })
	f := feed.(*trackingFeed)
	if f.lease == nil {
		t.Fatal("the feed of a store on one server has no lease")
	}
	waitHeld(t, f)
	return f
}

// waitHeld waits, within a bound, until f holds its lease.
func waitHeld(t *testing.T, f *trackingFeed) {
	t.Helper()
	for range 200 {
		if f.lease.held() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("the feed never held its lease")
}

// dropped runs event and waits, within a bound, until the feed has
// dropped the cache (h's Reset) because of it.
func dropped(t *testing.T, h *slowHandler, event func()) {
	t.Helper()
	resets := h.resets.Load()
	event()
	for i := 0; h.resets.Load() == resets; i++ {
		if i == 500 {
			t.Fatal("the cache was never dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openStore(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestFence_WriteReturnsOnlyOnceEveryLeaseHolderHandledIt: an instance
// that answers from memory under its lease has handled a write's report
// by the time the write returns on another instance, even when it is
// slow to handle reports. Without the writer's fence the write returns
// first (the second case), which is what would let a revoked account
// pass the other instance's next verify.
func TestFence_WriteReturnsOnlyOnceEveryLeaseHolderHandledIt(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		fenced bool
	}{{"fenced", true}, {"not fenced", false}} {
		t.Run(tc.name, func(t *testing.T) {
			reader := openStore(t, r.URL)
			h := &slowHandler{}
			f := holdingLease(t, reader, h)
			writer := openStore(t, r.URL)
			user := "dave-" + tc.name
			if err := writer.CreateAccount(ctx, store.Account{Name: user, CreatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if !tc.fenced {
				// A client of its own: the hook is on writer's.
				c := redis.NewClient(&redis.Options{Addr: r.Addr})
				t.Cleanup(func() { c.Close() })
				writer = New(c)
			}
			before := h.told(user)
			h.slow(300 * time.Millisecond)
			if err := writer.UpdateAccount(ctx, user, func(a *store.Account) error { a.Disabled = true; return nil }); err != nil {
				t.Fatal(err)
			}
			if !f.lease.held() {
				t.Fatal("the reader's lease lapsed during the write: the test proves nothing")
			}
			if told := h.told(user) > before; told != tc.fenced {
				t.Errorf("reader told of the write when it returned = %v, want %v", told, tc.fenced)
			}
		})
	}
}

// TestFence_AnInstanceThatStoppedHoldsWritersBackUntilItCannotRelyOnItsLease:
// an instance that stopped without giving up its lease holds a writer
// back until the instance could no longer rely on the lease, by the
// writer's clock, even when its key is gone from Redis sooner (a key's
// expiry runs on Redis's clock, which may jump); it is then unlisted,
// so it holds back no other write.
func TestFence_AnInstanceThatStoppedHoldsWritersBackUntilItCannotRelyOnItsLease(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	s := openStore(t, r.URL)
	if err := s.CreateAccount(ctx, store.Account{Name: "erin", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, s.k.fenceHolders(), "stopped")
		p.Set(ctx, s.k.lease("stopped"), 0, 100*time.Millisecond)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.UpdateAccount(ctx, "erin", func(a *store.Account) error { a.Disabled = true; return nil }); err != nil {
		t.Fatalf("UpdateAccount with a stopped instance's lease listed = %v, want it to wait and succeed", err)
	}
	if waited := time.Since(start); waited < leaseTTL {
		t.Errorf("the write returned after %v: the stopped instance could still rely on its lease (%v from its last renewal)", waited, leaseTTL-leaseMargin)
	}
	if listed, err := s.rdb.SIsMember(ctx, s.k.fenceHolders(), "stopped").Result(); err != nil || listed {
		t.Errorf("the stopped instance is still listed (%v, %v)", listed, err)
	}
}

// TestLease_DroppedBeforeTheCacheIs: when the feed's connection is lost
// or Redis is flushed (the lease's keys with everything else), writers
// stop waiting for this instance, so the lease must be given up before
// the cache is dropped and filled again.
func TestLease_DroppedBeforeTheCacheIs(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	s := openStore(t, r.URL)
	h := &slowHandler{}
	f := holdingLease(t, s, h)
	h.feed = f
	admin := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { admin.Close() })
	for _, cmd := range [][]any{{"CLIENT", "KILL", "TYPE", "pubsub"}, {"FLUSHALL"}} {
		dropped(t, h, func() {
			if err := admin.Do(ctx, cmd...).Err(); err != nil {
				t.Fatalf("%v: %v", cmd, err)
			}
		})
		if h.heldAtReset.Load() {
			t.Fatalf("%v: the cache was dropped while the lease was still relied on", cmd)
		}
		waitHeld(t, f)
	}
}

// TestFence_ACloseGivesTheLeaseUp: a feed that closes gives its lease
// up, so writers do not wait for it.
func TestFence_ACloseGivesTheLeaseUp(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	s := openStore(t, r.URL)
	feed, err := s.Watch(&slowHandler{})
	if err != nil {
		t.Fatal(err)
	}
	f := feed.(*trackingFeed)
	waitHeld(t, f)
	ids, err := s.rdb.SMembers(ctx, s.k.fenceHolders()).Result()
	if err != nil || len(ids) != 1 {
		t.Fatalf("listed leases = %v, %v; want one", ids, err)
	}
	if err := feed.Close(); err != nil {
		t.Fatal(err)
	}
	if f.lease.held() {
		t.Error("the lease is still relied on after Close gave it up")
	}
	if v, err := s.rdb.Get(ctx, s.k.lease(ids[0])).Result(); err != nil || v != releasedLease {
		t.Errorf("lease after Close = %q, %v; want %q (given up: writers that listed it stop waiting)", v, err, releasedLease)
	}
	if listed, err := s.rdb.SIsMember(ctx, s.k.fenceHolders(), ids[0]).Result(); err != nil || listed {
		t.Errorf("lease still listed after Close (%v, %v)", listed, err)
	}
}

func TestWritesCached(t *testing.T) {
	k := newKeyspace(false)
	ctx := context.Background()
	for _, tc := range []struct {
		cmd  redis.Cmder
		want bool
	}{
		{redis.NewStatusCmd(ctx, "set", k.account("alice"), []byte(`{}`)), true},
		{redis.NewIntCmd(ctx, "del", k.session("s1")), true},
		{redis.NewIntCmd(ctx, "sadd", k.revoked, "issuer/1"), true},
		{redis.NewIntCmd(ctx, "pexpire", k.session("s1"), 1000), true},
		{redis.NewStringCmd(ctx, "get", k.account("alice")), false},
		{redis.NewStatusCmd(ctx, "watch", k.account("alice")), false},
		{redis.NewCmd(ctx, "evalsha", viewScript.Hash(), 3, k.session("s1"), k.roles, k.apps, k.accountPrefix("s1")), false},
		{redis.NewIntCmd(ctx, "incr", k.counter("x")), false},
		{redis.NewIntCmd(ctx, "incr", k.fenceSeq()), false},
		{redis.NewIntCmd(ctx, "publish", fenceChannel(0), "e:1"), false},
		{redis.NewIntCmd(ctx, "xadd", k.audit, "*", "e", "gatehouse:account:looks-like-a-key-but-is-a-value"), true},
	} {
		if got := writesCached(tc.cmd); got != tc.want {
			t.Errorf("writesCached(%v) = %v, want %v", tc.cmd.Args(), got, tc.want)
		}
	}
}

// TestFence_MarksDoNotGoBackWhenTheCounterIsLost: after a flush or a
// restart that loses the fence counter, counting starts again from
// nothing; an instance whose lease held a high mark of the old count
// must not confirm the new, low marks with it.
func TestFence_MarksDoNotGoBackWhenTheCounterIsLost(t *testing.T) {
	for _, event := range []string{"flushall", "restart"} {
		t.Run(event, func(t *testing.T) {
			r := storetest.StartRedis(t)
			ctx := t.Context()
			admin := redis.NewClient(&redis.Options{Addr: r.Addr})
			t.Cleanup(func() { admin.Close() })
			reader := openStore(t, r.URL)
			h := &slowHandler{}
			f := holdingLease(t, reader, h)
			writer := openStore(t, r.URL)
			// A deployment that has fenced a while.
			if err := admin.HSet(ctx, writer.k.fenceSeq(), "era", "before", "n", 1000).Err(); err != nil {
				t.Fatal(err)
			}
			if err := writer.CreateAccount(ctx, store.Account{Name: "warm", CreatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			dropped(t, h, func() {
				if event == "flushall" {
					admin.FlushAll(ctx)
				} else {
					r.Restart()
				}
			})
			waitHeld(t, f)
			before := h.told("dave")
			h.slow(300 * time.Millisecond)
			if err := writer.CreateAccount(ctx, store.Account{Name: "dave", CreatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if f.lease.held() && h.told("dave") == before {
				t.Error("the write returned while the reader holds its lease and has not handled it")
			}
		})
	}
}

// TestFence_AnotherDatabasesMarksDoNotCount: pub/sub is shared by a
// Redis server's databases; a deployment on database 1 must not take
// the marks of one on database 0 as its own.
func TestFence_AnotherDatabasesMarksDoNotCount(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	url1 := strings.TrimSuffix(r.URL, "/0") + "/1"
	if url1 == r.URL {
		t.Fatalf("cannot name database 1 after %s", r.URL)
	}
	admin0 := redis.NewClient(&redis.Options{Addr: r.Addr, DB: 0})
	t.Cleanup(func() { admin0.Close() })
	readerA := openStore(t, r.URL)
	holdingLease(t, readerA, &slowHandler{})
	writerA := openStore(t, r.URL)
	readerB := openStore(t, url1)
	h := &slowHandler{}
	fB := holdingLease(t, readerB, h)
	writerB := openStore(t, url1)
	// A's counter far ahead of B's, and in the same era name.
	if err := admin0.HSet(ctx, writerA.k.fenceSeq(), "era", "shared", "n", 1000).Err(); err != nil {
		t.Fatal(err)
	}
	admin1 := redis.NewClient(&redis.Options{Addr: r.Addr, DB: 1})
	t.Cleanup(func() { admin1.Close() })
	if err := admin1.HSet(ctx, writerB.k.fenceSeq(), "era", "shared").Err(); err != nil {
		t.Fatal(err)
	}
	if err := writerA.PutRole(ctx, store.Role{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // for B to read A's mark, were it subscribed to it
	h.slow(300 * time.Millisecond)
	if err := writerB.CreateAccount(ctx, store.Account{Name: "dave", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if fB.lease.held() && h.told("dave") == 0 {
		t.Error("B's write returned before B's instance handled it")
	}
}

// TestFence_UnlistKeepsALeaseThatConfirmedMeanwhile: a writer unlists
// the leases that did not confirm its mark in time, but not one that
// did by the time it looks again (renewed after the writer's count).
func TestFence_UnlistKeepsALeaseThatConfirmedMeanwhile(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	s := openStore(t, r.URL)
	w := fenceMark{"e", 5}
	leases := map[string]string{"late": "e:4", "gone": "", "renewed": "e:6", "other-era": "f:9", "released": releasedLease}
	var ids, keys []string
	for id, v := range leases {
		s.rdb.SAdd(ctx, s.k.fenceHolders(), id)
		if v != "" {
			s.rdb.Set(ctx, s.k.lease(id), v, time.Minute)
		}
		ids, keys = append(ids, id), append(keys, s.k.lease(id))
	}
	if err := s.unlist(ctx, ids, keys, w); err != nil {
		t.Fatal(err)
	}
	for id, v := range leases {
		want := covers(v, w)
		if listed, err := s.rdb.SIsMember(ctx, s.k.fenceHolders(), id).Result(); err != nil || listed != want {
			t.Errorf("lease %s (%q) listed after unlist = %v, %v; want %v", id, v, listed, err, want)
		}
	}
}

// TestLease_NotHeldWhereRedisMayEvictAnyKey: a Redis that may evict keys
// without an expiry when full (allkeys-*) could drop the listing of
// leases, and writers would wait for nobody: no lease is held there,
// and one is taken once the policy is noeviction.
func TestLease_NotHeldWhereRedisMayEvictAnyKey(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	admin := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { admin.Close() })
	for _, kv := range [][2]string{{"maxmemory", "100mb"}, {"maxmemory-policy", "allkeys-lru"}} {
		if err := admin.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, r.URL)
	feed, err := s.Watch(&slowHandler{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { feed.Close() })
	f := feed.(*trackingFeed)
	if err := vouches(ctx, f); err != nil {
		t.Fatal(err)
	}
	// Two renewals' time.
	for range 2 * leaseRenew / (50 * time.Millisecond) {
		if f.lease.held() {
			t.Fatal("a lease is held on a Redis with maxmemory-policy allkeys-lru")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n, err := admin.SCard(ctx, s.k.fenceHolders()).Result(); err != nil || n != 0 {
		t.Errorf("leases listed on a Redis with maxmemory-policy allkeys-lru: %d, %v", n, err)
	}
	// Nor is one taken and given up again and again.
	if keys, err := admin.Keys(ctx, s.k.lease("*")).Result(); err != nil || len(keys) != 0 {
		t.Errorf("lease keys written on a Redis with maxmemory-policy allkeys-lru: %q, %v", keys, err)
	}
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, f)
}

// restartedFromAnOlderSnapshot starts a reader that holds its lease (its
// handler slow) and a writer, saves a snapshot, fences twenty writes, and
// restarts Redis from the snapshot: the fence counter comes back twenty
// lower. It returns once the reader holds its lease again, with the
// counter as it was before the restart.
func restartedFromAnOlderSnapshot(t *testing.T) (admin *redis.Client, f *trackingFeed, h *slowHandler, writer *Store, counter map[string]string) {
	t.Helper()
	r := storetest.StartRedis(t)
	ctx := t.Context()
	admin = redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { admin.Close() })
	h = &slowHandler{}
	f = holdingLease(t, openStore(t, r.URL), h)
	writer = openStore(t, r.URL)
	if err := writer.CreateAccount(ctx, store.Account{Name: "dave", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := writer.PutRole(ctx, store.Role{Name: fmt.Sprint("r", i)}); err != nil {
			t.Fatal(err)
		}
	}
	counter = admin.HGetAll(ctx, writer.k.fenceSeq()).Val()
	dropped(t, h, func() { r.Restart() })
	waitHeld(t, f)
	return admin, f, h, writer, counter
}

// wantHandledOnReturn disables dave through writer and checks that the
// reader has handled it by the time the write returns, or no longer
// relies on its lease.
func wantHandledOnReturn(t *testing.T, f *trackingFeed, h *slowHandler, writer *Store) {
	t.Helper()
	before := h.told("dave")
	h.slow(300 * time.Millisecond)
	start := time.Now()
	if err := writer.UpdateAccount(t.Context(), "dave", func(a *store.Account) error { a.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if f.lease.held() && h.told("dave") == before {
		t.Errorf("the disable returned after %v while the reader holds its lease and has not handled it", time.Since(start))
	}
}

// TestFence_AfterARestartFromAnOlderSnapshotALeaseConfirmsOnlyWhatItHandled:
// a restart that loads an older snapshot brings the fence counter back
// lower; the reader has read higher marks before, and its next lease
// must not confirm the new, low marks with them. (A new lease starts
// from no mark read, and the counter starts a new era: either keeps
// this test green; the next test needs the era.)
func TestFence_AfterARestartFromAnOlderSnapshotALeaseConfirmsOnlyWhatItHandled(t *testing.T) {
	_, f, h, writer, _ := restartedFromAnOlderSnapshot(t)
	wantHandledOnReturn(t, f, h, writer)
}

// TestFence_AfterTheTransactionLetsGoOfItsConnection: a fence that waits
// for a stopped instance's lease must not hold a transaction's
// connection meanwhile: as many concurrent account updates as the pool
// has connections would otherwise fail for want of one, although every
// write was made.
func TestFence_AfterTheTransactionLetsGoOfItsConnection(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	const n = 4
	s, err := Open(ctx, r.URL, func(o *redis.UniversalOptions) error { o.PoolSize = n; return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for i := range n {
		if err := s.CreateAccount(ctx, store.Account{Name: fmt.Sprint("u", i), CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	s.rdb.SAdd(ctx, s.k.fenceHolders(), "stopped") // an instance that died holding its lease
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.UpdateAccount(ctx, fmt.Sprint("u", i), func(a *store.Account) error { a.Disabled = true; return nil })
		}()
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		a, _ := s.Account(ctx, fmt.Sprint("u", i))
		if err != nil && a.Disabled {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d updates reported failure although written", failed, n)
	}
}

// TestFence_AMarkCountedBeforeARestartCoversNoLaterWrite: a writer that
// counted before a restart from an older snapshot publishes its mark
// after it; the reader confirms it, and no write counted after the
// restart may take that for its own.
func TestFence_AMarkCountedBeforeARestartCoversNoLaterWrite(t *testing.T) {
	admin, f, h, writer, counter := restartedFromAnOlderSnapshot(t)
	// A writer that counted the next mark before the restart publishes
	// it now.
	if err := admin.Publish(t.Context(), fenceChannel(0), counter["era"]+":"+fmt.Sprint(atoi(t, counter["n"])+1)).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	wantHandledOnReturn(t, f, h, writer)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// BenchmarkFence is what a write that touches a cached record costs with
// no instance, one and three instances holding leases (each on a feed of
// its own, on this machine): the fence's round trips, the publish and
// the instances' confirmations. UpdateAccount is one such write (a
// WATCH transaction).
func BenchmarkFence(b *testing.B) {
	for _, instances := range []int{0, 1, 3} {
		b.Run(fmt.Sprintf("instances=%d", instances), func(b *testing.B) {
			r := storetest.StartRedis(b)
			ctx := b.Context()
			s, err := Open(ctx, r.URL)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			for range instances {
				feed, err := s.Watch(&slowHandler{})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { feed.Close() })
				f := feed.(*trackingFeed)
				for i := 0; !f.lease.held(); i++ {
					if i == 200 {
						b.Fatal("the feed never held its lease")
					}
					time.Sleep(25 * time.Millisecond)
				}
			}
			if err := s.CreateAccount(ctx, store.Account{Name: "erin", CreatedAt: time.Now()}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if err := s.UpdateAccount(ctx, "erin", func(a *store.Account) error { a.Disabled = i%2 == 0; return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestFence_StopsWaitingForALeaseUnlistedMeanwhile: a writer waiting for
// a stopped instance's lease stops as soon as the lease is unlisted (by
// another writer that waited it out), instead of waiting its own full
// bound: with a stopped instance, writes are held back once.
func TestFence_StopsWaitingForALeaseUnlistedMeanwhile(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	s := openStore(t, r.URL)
	if err := s.CreateAccount(ctx, store.Account{Name: "erin", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.SAdd(ctx, s.k.fenceHolders(), "stopped").Err(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.UpdateAccount(ctx, "erin", func(a *store.Account) error { a.Disabled = true; return nil })
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the write returned (%v) while a stopped instance's lease was listed", err)
	default:
	}
	if err := s.rdb.SRem(ctx, s.k.fenceHolders(), "stopped").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(leaseTTL / 2):
		t.Fatal("the write still waits for a lease no longer listed")
	}
}

// TestFence_AUserWithoutINFORefusesToCountWhileLeasesAreHeld: a Redis
// user that may not run INFO cannot tell a restart of Redis (which can
// bring the fence counter back), so its writes are refused in plain words
// while instances hold leases; it still connects, and writes while none
// do.
func TestFence_AUserWithoutINFORefusesToCountWhileLeasesAreHeld(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	admin := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { admin.Close() })
	if err := admin.Do(ctx, "ACL", "SETUSER", "noinfo", "on", ">a long password for noinfo", "~*", "&*", "+@all", "-info").Err(); err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(r.URL, "redis://", "redis://noinfo:a%20long%20password%20for%20noinfo@", 1)
	s := openStore(t, url)
	if err := s.CreateAccount(ctx, store.Account{Name: "erin", CreatedAt: time.Now()}); err != nil {
		t.Fatalf("a write with no lease held = %v, want it to succeed", err)
	}
	holdingLease(t, openStore(t, r.URL), &slowHandler{})
	err := s.UpdateAccount(ctx, "erin", func(a *store.Account) error { a.Disabled = true; return nil })
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "+info") {
		t.Errorf("a write while a lease is held, by a user without INFO = %v, want ErrUnavailable naming +info", err)
	}
}
