package sqlitestore

import (
	"path/filepath"
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
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s := openFile(t, path)
	other := openFile(t, path)
	h := gatedReset{entered: make(chan struct{}), release: make(chan struct{})}
	f, err := s.Watch(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
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
