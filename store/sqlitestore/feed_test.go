package sqlitestore

import (
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/store"
	"gatehouse/store/cached"
)

// gatedReset holds every Reset (a check that saw a commit) until the
// test releases it, and says when one has begun.
type gatedReset struct{ entered, release chan struct{} }

func (h gatedReset) Invalidate(cached.Change) {}
func (h gatedReset) Reset()                   { h.entered <- struct{}{}; <-h.release }

// A request waits for its own check only: once that check is done its
// Sync returns, even while the check of a request that came later still
// runs. (When the first caller ran the checks itself, it went on to run
// the next batch's check, and its own request waited for that too — for
// as long as new requests kept coming.)
func TestVersionFeed_ARequestWaitsForItsOwnCheckOnly(t *testing.T) {
	for _, index := range []bool{true, false} {
		name := map[bool]string{true: "WAL-index", false: "data_version"}[index]
		t.Run(name, func(t *testing.T) { testOwnCheckOnly(t, index) })
	}
}

// testOwnCheckOnly is TestVersionFeed_ARequestWaitsForItsOwnCheckOnly
// with the WAL-index header, or with data_version alone (index false:
// the checker goroutine's batches).
func testOwnCheckOnly(t *testing.T, index bool) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s := openFile(t, path)
	other := openFile(t, path)
	h := gatedReset{entered: make(chan struct{}), release: make(chan struct{})}
	f, err := s.Watch(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if !index {
		f.(*versionFeed).shm = nil
	}
	ctx := t.Context()

	first := make(chan error, 1)
	go func() { first <- f.Sync(ctx) }()
	<-h.entered // the first request's check saw a change: it is in Reset
	// A commit elsewhere, then a second request: its check will see it.
	if err := other.PutRole(ctx, store.Role{Name: "visitor"}); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- f.Sync(ctx) }()
	time.Sleep(50 * time.Millisecond) // let the second request join a batch
	h.release <- struct{}{}           // the first check ends
	<-h.entered                       // the second request's check is in Reset
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("first Sync = %v", err)
		}
	case <-time.After(10 * time.Second): // a bound for liveness, not speed
		t.Fatal("the first request still waits, on the second request's check")
	}
	h.release <- struct{}{}
	if err := <-second; err != nil {
		t.Fatalf("second Sync = %v", err)
	}
}

// resetCount counts the times the feed dropped the cache.
type resetCount struct{ n atomic.Int64 }

func (h *resetCount) Invalidate(cached.Change) {}
func (h *resetCount) Reset()                   { h.n.Add(1) }

// The feed learns of commits from the WAL-index header alone: with
// data_version out of its reach, a commit on another handle of the file
// drops the cache at the next check, and reads (which leave their marks
// in the index, past the header) and checks with nothing committed in
// between do not.
func TestVersionFeed_CommitsShowInTheWALIndexHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s := openFile(t, path)
	other := openFile(t, path)
	ctx := t.Context()
	var h resetCount
	feed, err := s.Watch(&h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { feed.Close() })
	f := feed.(*versionFeed)
	if f.shm == nil {
		t.Fatal("the feed does not read the WAL-index")
	}
	f.stmt.Close() // a check that fell back to data_version would fail
	checkNow := func() int64 {
		t.Helper()
		if err := f.Sync(ctx); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		return h.n.Load()
	}
	start := checkNow() // the first check drops what was kept before it
	for i := range 3 {
		if _, err := other.View(ctx, "no such session"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("View: %v", err)
		}
		if _, err := s.Roles(ctx); err != nil {
			t.Fatal(err)
		}
		if n := checkNow(); n != start {
			t.Fatalf("check %d with only reads since: %d resets, want %d", i, n, start)
		}
	}
	for i, write := range []func() error{
		func() error { return other.PutRole(ctx, store.Role{Name: "visitor"}) },
		func() error { return s.PutRole(ctx, store.Role{Name: "guest"}) },
		func() error { return other.DeleteRole(ctx, "visitor") },
	} {
		if err := write(); err != nil {
			t.Fatal(err)
		}
		if n := checkNow(); n != start+int64(i)+1 {
			t.Fatalf("check after commit %d: %d resets, want %d", i+1, n, start+int64(i)+1)
		}
	}
	// A checkpoint that restarts the WAL rewrites the header: at worst
	// a drop of the cache, never a missed commit after it.
	if _, err := other.db.ExecContext(ctx, "PRAGMA wal_checkpoint(RESTART)"); err != nil {
		t.Fatal(err)
	}
	before := checkNow()
	if err := other.PutRole(ctx, store.Role{Name: "after-restart"}); err != nil {
		t.Fatal(err)
	}
	if n := checkNow(); n != before+1 {
		t.Fatalf("check after a commit following a WAL restart: %d resets, want %d", n, before+1)
	}
}
