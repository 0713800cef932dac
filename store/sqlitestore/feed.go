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
	conn, err := s.db.Conn(context.Background())
	if err != nil {
		return nil, wrap("open the cache's connection", err)
	}
	return &versionFeed{conn: conn, h: h, last: -1}, nil
}

// versionFeed compares data_version with the value the last Sync saw.
type versionFeed struct {
	mu   sync.Mutex
	conn *sql.Conn
	h    cached.Handler
	last int64
}

// Sync drops the cache when anything was committed since the last call.
func (f *versionFeed) Sync(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var v int64
	if err := f.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
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
func (f *versionFeed) Close() error { return f.conn.Close() }
