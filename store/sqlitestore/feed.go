package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

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

// checkGap is the least time from the start of one check to the next:
// requests that arrive within it share the next check, so that under
// load one query serves many of them. A request that finds the gap
// passed and no check running has its check run at once.
const checkGap = 100 * time.Microsecond

// versionFeed compares data_version with the value the last check saw.
// Requests that arrive while a check runs, or within checkGap of the
// last one, wait for the next one, so that one query serves many of
// them; a request is never vouched for by a check that began before it.
type versionFeed struct {
	conn *sql.Conn
	stmt *sql.Stmt
	h    cached.Handler

	mu       sync.Mutex
	checking bool
	waiting  []chan error
	// last and checkedAt are only used by the caller running the checks.
	last      int64
	checkedAt time.Time
}

// Sync drops the cache when anything was committed since the last check.
func (f *versionFeed) Sync(ctx context.Context) error {
	ch := make(chan error, 1)
	f.mu.Lock()
	f.waiting = append(f.waiting, ch)
	if !f.checking {
		// This caller runs checks until nobody waits: each check starts
		// after every waiter of its batch arrived.
		f.checking = true
		for len(f.waiting) > 0 {
			if wait := checkGap - time.Since(f.checkedAt); wait > 0 {
				// Those who arrive meanwhile join this batch: its
				// check starts after they did.
				f.mu.Unlock()
				time.Sleep(wait)
				f.mu.Lock()
			}
			batch := f.waiting
			f.waiting = nil
			f.mu.Unlock()
			err := f.check()
			for _, w := range batch {
				w <- err
			}
			f.mu.Lock()
		}
		f.checking = false
	}
	f.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// check reads data_version and drops the cache if it moved.
func (f *versionFeed) check() error {
	ctx, cancel := context.WithTimeout(context.Background(), busyTimeout)
	defer cancel()
	f.checkedAt = time.Now()
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
