package cached_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
	"gatehouse/store/cached"
	"gatehouse/store/redisstore"
	"gatehouse/store/sqlitestore"
	"gatehouse/store/storetest"
)

// wrap puts a cache in front of backend, closed when t ends.
func wrap(t testing.TB, backend interface {
	store.Store
	cached.Source
}) *cached.Store {
	t.Helper()
	c, err := cached.New(backend, backend, nil, nil)
	if err != nil {
		t.Fatalf("cached.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func openRedis(t testing.TB, url string) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("redisstore.Open: %v", err)
	}
	return s
}

func openFile(t testing.TB, path string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("sqlitestore.Open: %v", err)
	}
	return s
}

func TestCached_ContractRedis(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		r := storetest.StartRedis(t)
		return wrap(t, openRedis(t, r.URL))
	})
}

func TestCached_ContractEmbedded(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return wrap(t, openFile(t, filepath.Join(t.TempDir(), "gatehouse.db")))
	})
}

// The writes that change a verify answer, each made on one instance
// (writer) and read on the other (reader) right after it returned.
func TestCached_TwoInstancesOnOneRedis_WriteTakesEffectOnTheOthersNextRead(t *testing.T) {
	r := storetest.StartRedis(t)
	writer := openRedis(t, r.URL)
	t.Cleanup(func() { writer.Close() })
	reader := wrap(t, openRedis(t, r.URL))
	testWritesSeenAtOnce(t, writer, reader)
}

// The command line writes to the embedded store's file while the server
// runs: a second handle on the file is that other process.
func TestCached_EmbeddedFileWrittenByAnotherProcess_WriteTakesEffectAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	reader := wrap(t, openFile(t, path))
	writer := openFile(t, path)
	t.Cleanup(func() { writer.Close() })
	testWritesSeenAtOnce(t, writer, reader)
}

// Under load the reader's feed has a barrier (a PING, a data_version
// check) out most of the time. A read that began after a write returned
// must still see it: it may never be vouched for by a barrier sent
// before it began, whose answer can come back ahead of the write's
// report.
func TestCached_TwoInstancesUnderLoad_WriteTakesEffectOnTheOthersNextRead(t *testing.T) {
	r := storetest.StartRedis(t)
	writer := openRedis(t, r.URL)
	t.Cleanup(func() { writer.Close() })
	testWritesSeenUnderLoad(t, writer, wrap(t, openRedis(t, r.URL)))
}

func TestCached_EmbeddedFileUnderLoad_WriteTakesEffectAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	reader := wrap(t, openFile(t, path))
	writer := openFile(t, path)
	t.Cleanup(func() { writer.Close() })
	testWritesSeenUnderLoad(t, writer, reader)
}

func testWritesSeenUnderLoad(t *testing.T, writer, reader store.Store) {
	ctx := t.Context()
	setUp(t, writer, "dave", "d1", "4000")
	setUp(t, writer, "erin", "e1", "4001")
	stop := make(chan struct{})
	var load sync.WaitGroup
	for range 8 {
		load.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				reader.View(ctx, "e1")
			}
		})
	}
	t.Cleanup(func() { close(stop); load.Wait() })
	for i := range 300 {
		disabled := i%2 == 0
		if err := writer.UpdateAccount(ctx, "dave", func(a *store.Account) error { a.Disabled = disabled; return nil }); err != nil {
			t.Fatal(err)
		}
		if v, err := reader.View(ctx, "d1"); err != nil || v.Account.Disabled != disabled {
			t.Fatalf("write %d: View right after setting disabled=%v = %v, %v", i, disabled, v.Account.Disabled, err)
		}
	}
}

func testWritesSeenAtOnce(t *testing.T, writer store.Store, reader store.Store) {
	ctx := t.Context()
	for i := range 10 {
		user, sid, serial := fmt.Sprintf("alice%d", i), fmt.Sprintf("s%d", i), fmt.Sprintf("%x", 1000+i)
		setUp(t, writer, user, sid, serial)
		warm := func(t *testing.T) store.SessionView {
			t.Helper()
			for range 3 {
				if _, err := reader.View(ctx, sid); err != nil {
					t.Fatalf("View: %v", err)
				}
				if _, err := reader.IsRevoked(ctx, "issuer", serial); err != nil {
					t.Fatalf("IsRevoked: %v", err)
				}
				if _, err := reader.Apps(ctx); err != nil {
					t.Fatalf("Apps: %v", err)
				}
			}
			v, _ := reader.View(ctx, sid)
			return v
		}
		t.Run(fmt.Sprintf("DisableAccount/%d", i), func(t *testing.T) {
			warm(t)
			if err := writer.UpdateAccount(ctx, user, func(a *store.Account) error { a.Disabled = true; return nil }); err != nil {
				t.Fatal(err)
			}
			if v, err := reader.View(ctx, sid); err != nil || !v.Account.Disabled {
				t.Errorf("View right after disabling = %+v, %v; want the account disabled", v.Account, err)
			}
			writer.UpdateAccount(ctx, user, func(a *store.Account) error { a.Disabled = false; return nil })
		})
		t.Run(fmt.Sprintf("TakeRoleAway/%d", i), func(t *testing.T) {
			warm(t)
			if err := writer.UpdateAccount(ctx, user, func(a *store.Account) error { a.Roles = nil; return nil }); err != nil {
				t.Fatal(err)
			}
			if v, err := reader.View(ctx, sid); err != nil || len(v.Account.Roles) != 0 {
				t.Errorf("View right after taking the role = %v, %v; want no roles", v.Account.Roles, err)
			}
		})
		t.Run(fmt.Sprintf("ChangeRoleRequirements/%d", i), func(t *testing.T) {
			warm(t)
			if err := writer.PutRole(ctx, store.Role{Name: "employee", RequireTOTP: i%2 == 0, RequireCertificate: true}); err != nil {
				t.Fatal(err)
			}
			v, err := reader.View(ctx, sid)
			if i := slices.IndexFunc(v.Roles, func(r store.Role) bool { return r.Name == "employee" }); err != nil || i < 0 || !v.Roles[i].RequireCertificate {
				t.Errorf("View right after changing the role = %+v, %v; want it to require a certificate", v.Roles, err)
			}
			writer.PutRole(ctx, store.Role{Name: "employee"})
		})
		t.Run(fmt.Sprintf("ChangeApp/%d", i), func(t *testing.T) {
			warm(t)
			if err := writer.PutApp(ctx, store.App{Name: "wiki", URL: "https://wiki.example.com/", Roles: []string{"admin"}}); err != nil {
				t.Fatal(err)
			}
			apps, err := reader.Apps(ctx)
			if err != nil || len(apps) != 1 || !slices.Equal(apps[0].Roles, []string{"admin"}) {
				t.Errorf("Apps right after changing the app = %+v, %v; want it for admin only", apps, err)
			}
			writer.PutApp(ctx, store.App{Name: "wiki", URL: "https://wiki.example.com/", Roles: []string{"employee"}})
		})
		t.Run(fmt.Sprintf("RevokeCertificate/%d", i), func(t *testing.T) {
			warm(t)
			if _, err := writer.RevokeCertificate(ctx, serial, time.Now(), "lost"); err != nil {
				t.Fatal(err)
			}
			if revoked, err := reader.IsRevoked(ctx, "issuer", serial); err != nil || !revoked {
				t.Errorf("IsRevoked right after revoking = %v, %v; want true", revoked, err)
			}
		})
		t.Run(fmt.Sprintf("PinCertificate/%d", i), func(t *testing.T) {
			warm(t)
			keysOf := func() []store.AccountKeys {
				t.Helper()
				keys, err := reader.(*cached.Store).AccountKeys(ctx)
				if err != nil {
					t.Fatalf("AccountKeys: %v", err)
				}
				return keys
			}
			keysOf()
			pin := fmt.Sprintf("sha256:pin%d", i)
			if err := writer.UpdateAccount(ctx, user, func(a *store.Account) error {
				a.PinnedFingerprints = append(a.PinnedFingerprints, pin)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			keys := keysOf()
			if j := slices.IndexFunc(keys, func(k store.AccountKeys) bool { return k.Name == user }); j < 0 || !slices.Contains(keys[j].PinnedFingerprints, pin) {
				t.Errorf("AccountKeys right after pinning a certificate on %s = %+v; want the pin", user, keys)
			}
		})
		t.Run(fmt.Sprintf("EndSession/%d", i), func(t *testing.T) {
			warm(t)
			if err := writer.DeleteSession(ctx, sid); err != nil {
				t.Fatal(err)
			}
			if v, err := reader.View(ctx, sid); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("View right after ending the session = %+v, %v; want ErrNotFound", v.Session, err)
			}
		})
	}
}

// setUp writes an account with a session and a certificate, the role
// and an app.
func setUp(t testing.TB, s store.Store, user, sid, serial string) {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	if err := s.CreateAccount(ctx, store.Account{Name: user, Roles: []string{"employee"}, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRole(ctx, store.Role{Name: "employee"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutApp(ctx, store.App{Name: "wiki", URL: "https://wiki.example.com/", Roles: []string{"employee"}}); err != nil {
		t.Fatal(err)
	}
	sess := store.Session{ID: sid, User: user, Factors: []string{"password"}, CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.PutSession(ctx, sess, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCertificate(ctx, store.Certificate{Serial: serial, Issuer: "issuer", User: user, IssuedAt: now}); err != nil {
		t.Fatal(err)
	}
}

// A write made while the reader's feed connection is down is never
// reported to it: the reader must not answer from what it kept before.
func TestCached_RedisFeedConnectionLost_CacheDroppedBeforeServing(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	writer := openRedis(t, r.URL)
	t.Cleanup(func() { writer.Close() })
	reader := wrap(t, openRedis(t, r.URL))
	admin := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { admin.Close() })
	for i := range 5 {
		user, sid := fmt.Sprintf("bob%d", i), fmt.Sprintf("b%d", i)
		setUp(t, writer, user, sid, fmt.Sprintf("%x", 2000+i))
		for range 3 {
			if _, err := reader.View(ctx, sid); err != nil {
				t.Fatalf("View: %v", err)
			}
		}
		// Redis drops the feed's connection: the report of the write
		// below goes nowhere.
		if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatalf("CLIENT KILL: %v", err)
		}
		if err := writer.UpdateAccount(ctx, user, func(a *store.Account) error { a.Disabled = true; return nil }); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if v, err := reader.View(ctx, sid); err != nil || !v.Account.Disabled {
				t.Fatalf("View after a write the feed missed = %+v, %v; want the account disabled", v.Account, err)
			}
		}
		// Once reconnected, the cache is used again and still right.
		time.Sleep(300 * time.Millisecond)
		if v, err := reader.View(ctx, sid); err != nil || !v.Account.Disabled {
			t.Fatalf("View after reconnecting = %+v, %v; want the account disabled", v.Account, err)
		}
	}
}

// fakeFeed is a feed a test drives.
type fakeFeed struct {
	h   cached.Handler
	err atomic.Pointer[error]
	// synced, when set, receives each Sync.
	synced chan struct{}
}

func (f *fakeFeed) Watch(h cached.Handler) (cached.Feed, error) { f.h = h; return f, nil }
func (f *fakeFeed) Sync(context.Context) error {
	if f.synced != nil {
		f.synced <- struct{}{}
	}
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}
func (f *fakeFeed) Close() error { return nil }

// countingStore counts View and Accounts calls and runs during before
// each returns.
type countingStore struct {
	store.Store
	views, accounts atomic.Int64
	during          func()
}

func (s *countingStore) Accounts(ctx context.Context) ([]store.Account, error) {
	s.accounts.Add(1)
	a, err := s.Store.Accounts(ctx)
	if s.during != nil {
		s.during()
	}
	return a, err
}

func (s *countingStore) View(ctx context.Context, id string) (store.SessionView, error) {
	s.views.Add(1)
	v, err := s.Store.View(ctx, id)
	if s.during != nil {
		s.during()
	}
	return v, err
}

func newFake(t *testing.T) (*cached.Store, *countingStore, *fakeFeed) {
	t.Helper()
	backend := &countingStore{Store: openFile(t, filepath.Join(t.TempDir(), "gatehouse.db"))}
	setUp(t, backend, "carol", "c1", "3000")
	feed := &fakeFeed{}
	c, err := cached.New(backend, feed, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, backend, feed
}

func TestCached_ServesFromMemoryUntilInvalidated(t *testing.T) {
	c, backend, feed := newFake(t)
	for range 5 {
		if _, err := c.View(t.Context(), "c1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := backend.views.Load(); n != 1 {
		t.Errorf("5 views read the backend %d times, want 1", n)
	}
	feed.h.Invalidate(cached.Change{Kind: cached.Account, Name: "carol"})
	c.View(t.Context(), "c1")
	if n := backend.views.Load(); n != 2 {
		t.Errorf("after an invalidation the backend was read %d times in all, want 2", n)
	}
	feed.h.Reset()
	c.View(t.Context(), "c1")
	if n := backend.views.Load(); n != 3 {
		t.Errorf("after a reset the backend was read %d times in all, want 3", n)
	}
}

func TestCached_FeedThatCannotVouch_EveryReadGoesToTheBackend(t *testing.T) {
	c, backend, feed := newFake(t)
	c.View(t.Context(), "c1")
	err := errors.New("feed down")
	feed.err.Store(&err)
	for range 3 {
		if _, err := c.View(t.Context(), "c1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := backend.views.Load(); n != 4 {
		t.Errorf("backend read %d times, want 4 (every view while the feed is down)", n)
	}
}

// A record read from the backend while an invalidation arrives may be
// the old one: it must not be kept.
func TestCached_InvalidationDuringARead_ReadIsNotKept(t *testing.T) {
	c, backend, feed := newFake(t)
	backend.during = func() { feed.h.Invalidate(cached.Change{Kind: cached.Session, Name: "c1"}) }
	c.View(t.Context(), "c1")
	backend.during = nil
	c.View(t.Context(), "c1")
	if n := backend.views.Load(); n != 2 {
		t.Errorf("backend read %d times, want 2 (the first read raced an invalidation)", n)
	}
}

// Every account's keys (for a sign-in with a certificate) come from
// memory until an account changes; a session or role written meanwhile
// does not drop them.
func TestCached_AccountKeys_FromMemoryUntilAnAccountChanges(t *testing.T) {
	c, backend, feed := newFake(t)
	read := func(want int64, after string) {
		t.Helper()
		keys, err := c.AccountKeys(t.Context())
		if err != nil || len(keys) != 1 || keys[0].Name != "carol" {
			t.Fatalf("AccountKeys = %+v, %v; want carol's", keys, err)
		}
		if n := backend.accounts.Load(); n != want {
			t.Errorf("after %s the backend's accounts were read %d times in all, want %d", after, n, want)
		}
	}
	read(1, "the first call")
	read(1, "a second call")
	feed.h.Invalidate(cached.Change{Kind: cached.Session, Name: "c1"})
	feed.h.Invalidate(cached.Change{Kind: cached.Roles})
	feed.h.Invalidate(cached.Change{Kind: cached.Revocations})
	read(1, "a session, role and revocation change")
	feed.h.Invalidate(cached.Change{Kind: cached.Account, Name: "dave"})
	read(2, "another account's change")
	feed.h.Reset()
	read(3, "a reset")
	feed.h.Invalidate(cached.Change{})
	read(4, "a change the feed cannot place")
	err := errors.New("feed down")
	feed.err.Store(&err)
	read(5, "a call while the feed cannot vouch")
	read(6, "another call while the feed cannot vouch")
}

// Accounts read while an account changes may include the old one: they
// are not kept. A session written meanwhile does not matter.
func TestCached_AccountKeys_AccountChangeDuringTheRead_ReadIsNotKept(t *testing.T) {
	c, backend, feed := newFake(t)
	read := func() {
		t.Helper()
		if keys, err := c.AccountKeys(t.Context()); err != nil || len(keys) != 1 || keys[0].Name != "carol" {
			t.Fatalf("AccountKeys = %+v, %v; want carol's", keys, err)
		}
	}
	backend.during = func() { feed.h.Invalidate(cached.Change{Kind: cached.Account, Name: "carol"}) }
	read()
	backend.during = func() { feed.h.Invalidate(cached.Change{Kind: cached.Session, Name: "c1"}) }
	read()
	backend.during = nil
	read()
	if n := backend.accounts.Load(); n != 2 {
		t.Errorf("backend's accounts read %d times, want 2 (the first read raced an account change, the second a session's)", n)
	}
}

// Sign-ins that miss at once share one read of every account, unless an
// account changed after that read began: then it may lack the change,
// and the later sign-in reads again.
func TestCached_AccountKeys_ConcurrentMissesShareOneRead(t *testing.T) {
	for _, changed := range []bool{false, true} {
		t.Run(fmt.Sprintf("account changed meanwhile=%v", changed), func(t *testing.T) {
			c, backend, feed := newFake(t)
			feed.synced = make(chan struct{}, 2)
			started, release := make(chan struct{}), make(chan struct{})
			var blocked atomic.Bool
			backend.during = func() {
				if blocked.CompareAndSwap(false, true) {
					close(started)
					<-release
				}
			}
			first := make(chan error)
			go func() {
				_, err := c.AccountKeys(t.Context())
				first <- err
			}()
			<-started
			if changed {
				feed.h.Invalidate(cached.Change{Kind: cached.Account, Name: "dave"})
			}
			second := make(chan error)
			go func() {
				keys, err := c.AccountKeys(t.Context())
				if err == nil && (len(keys) != 1 || keys[0].Name != "carol") {
					err = fmt.Errorf("keys %+v, want carol's", keys)
				}
				second <- err
			}()
			// The second call either waits for the first read or reads
			// on its own, which returns at once (only the first blocks).
			<-feed.synced
			<-feed.synced
			if changed {
				if err := <-second; err != nil {
					t.Fatal(err)
				}
			} else {
				// Past its barrier it joins the read in progress; give it
				// the time a read of its own would take to show.
				for range 20 {
					if backend.accounts.Load() > 1 {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			close(release)
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			if !changed {
				if err := <-second; err != nil {
					t.Fatal(err)
				}
			}
			want := int64(1)
			if changed {
				want = 2
			}
			if n := backend.accounts.Load(); n != want {
				t.Errorf("backend's accounts read %d times, want %d", n, want)
			}
		})
	}
}
