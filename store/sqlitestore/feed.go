package sqlitestore

import (
	"context"
	"database/sql"
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
	return &versionFeed{conn: conn, stmt: stmt, h: h, last: -1}, nil
}

// versionFeed compares data_version with the value the last check saw.
// Requests that arrive while a check runs wait for the next one, so that
// one query serves many of them; a request is never vouched for by a
// check that began before it.
type versionFeed struct {
	conn *sql.Conn
	stmt *sql.Stmt
	h    cached.Handler

	mu sync.Mutex
	// running is set while a caller runs checks; next is the batch of
	// requests waiting for a check not yet started.
	running bool
	next    *batch
	// last is only used by the caller running the checks.
	last int64
}

// batch is the requests one check answers: they share one channel,
// closed when the check is done.
type batch struct {
	done chan struct{}
	err  error
}

// Sync drops the cache when anything was committed since the last check.
func (f *versionFeed) Sync(ctx context.Context) error {
	f.mu.Lock()
	if f.next == nil {
		f.next = &batch{done: make(chan struct{})}
	}
	b := f.next
	if !f.running {
		// This caller runs checks until nobody waits: each check starts
		// after every request of its batch arrived.
		f.running = true
		for f.next != nil {
			run := f.next
			f.next = nil
			f.mu.Unlock()
			run.err = f.check()
			close(run.done)
			f.mu.Lock()
		}
		f.running = false
	}
	f.mu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
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

// Close returns the connection to the pool.
func (f *versionFeed) Close() error {
	f.stmt.Close()
	return f.conn.Close()
}
