package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

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
	f.shm, _ = s.walIndex(ctx, conn) // without it, data_version alone
	go f.run()
	return f, nil
}

// walIndexHeader is the start of the WAL-index (the -shm file beside the
// database in WAL mode; https://www.sqlite.org/walformat.html): the two
// copies of its 48-byte header. Every commit rewrites them (the frame
// count, the change counter, the checksums; a restart of the WAL its
// salts), and SQLite's readers learn of commits from nothing else: a
// header that has not changed since the last check means no commit
// since, for this process's connections and every other process's.
// Reading it is one read of 96 bytes, where data_version costs a read
// transaction (locks, the pager, the driver) on every check.
type walIndexHeader [96]byte

// walIndex opens the WAL-index of the file for reading, when the file is
// in WAL mode with normal locking (in exclusive mode the index lives in
// one process's memory only). The descriptor is never closed: closing
// any descriptor of a file drops every POSIX lock this process holds on
// it, SQLite's own locks on the index among them, and another process
// could then take the index for unused and rebuild it under this one.
// One descriptor per feed, for the life of the process.
func (s *Store) walIndex(ctx context.Context, conn *sql.Conn) (*os.File, error) {
	var mode, locking string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA locking_mode").Scan(&locking); err != nil {
		return nil, err
	}
	if !strings.EqualFold(mode, "wal") || !strings.EqualFold(locking, "normal") {
		return nil, fmt.Errorf("journal mode %s, locking mode %s: no shared WAL-index", mode, locking)
	}
	return os.Open(s.path + "-shm")
}

// versionFeed drops the cache when something was committed since the
// last check. Where the file has a WAL-index, each request reads its
// header itself: one read of 96 bytes, cheaper than handing the request
// to another goroutine and back. Otherwise (or when the index cannot be
// read) it compares data_version with the value the last check saw:
// one goroutine of its own runs those checks, so that no request is
// held up running checks for others, and requests that arrive while a
// check runs wait for the next one, so that one query serves many of
// them. Either way a request is never vouched for by a check that began
// before it.
type versionFeed struct {
	conn *sql.Conn
	stmt *sql.Stmt
	h    cached.Handler
	// kick tells the checker a batch waits; quit stops it, and stopped
	// is closed once it has.
	kick, quit, stopped chan struct{}

	// shm is the WAL-index (nil: data_version alone); hdr is what the
	// last read of it saw, guarded by hdrMu, which is held across the
	// read, the comparison and the drop of the cache.
	shm    *os.File
	hdrMu  sync.Mutex
	hdr    walIndexHeader
	closed atomic.Bool

	mu sync.Mutex
	// next is the batch of requests waiting for a check not yet started;
	// stopping is set by Close.
	next     *batch
	stopping bool
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
	if f.shm != nil {
		if f.closed.Load() {
			return errFeedClosed
		}
		if f.checkIndex() {
			return nil
		}
	}
	f.mu.Lock()
	if f.stopping {
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

// checkIndex drops the cache if the WAL-index header changed since the
// last read, and reports whether it could tell. When it cannot, the
// caller checks data_version; the next header read then drops the
// cache, so that moving from one check to the other never misses a
// commit (each is compared with its own last reading).
func (f *versionFeed) checkIndex() bool {
	f.hdrMu.Lock()
	defer f.hdrMu.Unlock()
	var hdr walIndexHeader
	if _, err := f.shm.ReadAt(hdr[:], 0); err != nil {
		f.hdr = walIndexHeader{}
		return false
	}
	if hdr != f.hdr {
		f.h.Reset()
		f.hdr = hdr
	}
	return true
}

// check drops the cache if data_version moved since the last check.
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
	if f.stopping {
		f.mu.Unlock()
		return nil
	}
	f.stopping = true
	f.closed.Store(true)
	f.mu.Unlock()
	close(f.quit)
	<-f.stopped
	f.stmt.Close()
	return f.conn.Close()
}
