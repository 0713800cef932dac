package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"gatehouse/store/cached"
)

// Watch starts the cache's feed: SQLite's data_version, read on a
// connection of its own that never writes, changes whenever any other
// connection commits, in this process or another (the command line
// writing to the file while the server runs). The feed cannot tell what
// a commit changed, so any commit drops the whole cache; the verify path
// itself commits at most once a minute per session.
func (s *Store) Watch(h cached.Handler) (cached.Feed, error) {
	ctx := context.Background()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, wrap("open the cache's connection", err)
	}
	stmt, err := conn.PrepareContext(ctx, "PRAGMA data_version")
	if err != nil {
		conn.Close()
		return nil, wrap("prepare the cache's check", err)
	}
	f := &versionFeed{conn: conn, stmt: stmt, h: h, last: -1,
		kick: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{})}
	go f.run()
	return f, nil
}

// versionFeed compares data_version with the value the last check saw.
// One goroutine of its own runs the checks, so that no request is held
// up running checks for others. Requests that arrive while a check runs
// wait for the next one, so that one query serves many of them; a
// request is never vouched for by a check that began before it.
type versionFeed struct {
	conn *sql.Conn
	stmt *sql.Stmt
	h    cached.Handler
	// kick tells the checker a batch waits; quit stops it, and stopped
	// is closed once it has.
	kick, quit, stopped chan struct{}

	mu sync.Mutex
	// next is the batch of requests waiting for a check not yet started;
	// closed is set by Close.
	next   *batch
	closed bool
	// last is only used by the checker.
	last int64
}

// batch is the requests one check answers: they share one channel,
// closed when the check is done.
type batch struct {
	done chan struct{}
	err  error
}

var errFeedClosed = errors.New("the cache's feed is closed")

// Sync drops the cache when anything was committed since the last check.
func (f *versionFeed) Sync(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return errFeedClosed
	}
	if f.next == nil {
		f.next = &batch{done: make(chan struct{})}
	}
	b := f.next
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default: // a kick is pending: the checker will take this batch
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the checker: each check answers the batch taken just before
// it starts, so every request in it arrived before the check began.
func (f *versionFeed) run() {
	defer close(f.stopped)
	for {
		select {
		case <-f.quit:
			f.mu.Lock()
			b := f.next
			f.next = nil
			f.mu.Unlock()
			if b != nil {
				b.err = errFeedClosed
				close(b.done)
			}
			return
		case <-f.kick:
		}
		f.mu.Lock()
		b := f.next
		f.next = nil
		f.mu.Unlock()
		if b == nil {
			continue
		}
		b.err = f.check()
		close(b.done)
	}
}

// check reads data_version and drops the cache if it moved.
func (f *versionFeed) check() error {
	ctx, cancel := context.WithTimeout(context.Background(), busyTimeout)
	defer cancel()
	var v int64
	if err := f.stmt.QueryRowContext(ctx).Scan(&v); err != nil {
		f.last = -1
		f.h.Reset()
		return fmt.Errorf("read data_version: %w", err)
	}
	if v != f.last {
		f.h.Reset()
		f.last = v
	}
	return nil
}

// Close stops the checker (failing the requests still waiting) and
// returns the connection to the pool.
func (f *versionFeed) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.mu.Unlock()
	close(f.quit)
	<-f.stopped
	f.stmt.Close()
	return f.conn.Close()
}
