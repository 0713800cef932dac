// Package sqlitestore keeps Gatehouse's data in one SQLite file in the data
// directory, through the pure-Go driver modernc.org/sqlite (no cgo, so the
// portal stays a static binary). It is the default store: nothing to
// install or run beside the portal.
//
// The file is shared safely between processes: the gatehouse command can
// change accounts while gatehouse serve runs on the same file, and each
// sees the other's writes at once. It serves one machine only, and the
// file must be on a local file system (SQLite's WAL mode shares memory
// between the processes); several portal instances need the Redis store.
package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"gatehouse/store"
)

var _ store.Store = (*Store)(nil)

// busyTimeout is how long a write waits for another process's write (the
// CLI's while the server runs, or the other way round) before it fails
// with store.ErrUnavailable. Writes are short, so waiting this long means
// something is wrong. SQLite does not queue writers of different processes
// fairly (the waiting one polls for the lock), so a process that wrote
// without pause could hold another off this long; the server writes a
// little per request, the CLI a few times per command.
const busyTimeout = 5 * time.Second

// maxConns bounds the SQLite connections one Store keeps open, the
// cache's (see Watch) included. Readers run in parallel (WAL mode);
// writers take turns anyway.
const maxConns = 9

// purgeInterval is how often, at most, a write also deletes expired
// sessions, TOTP marks and failure counters. Reads ignore expired rows
// whether or not they were purged yet.
const purgeInterval = time.Minute

// Store is a store.Store backed by a SQLite file.
type Store struct {
	db *sql.DB
	// path is the database file's absolute path.
	path string
	// now is the clock that expiry is measured with; tests move it.
	now func() time.Time
	// writing is a one-slot semaphore held for the whole of a write
	// transaction, so this process's writers queue here instead of
	// polling SQLite's lock; busyTimeout only matters for other handles
	// on the file (another process, or another Store).
	writing chan struct{}
	// lastPurge is when this process last purged expired rows; only
	// read and written while holding writing.
	lastPurge time.Time
}

// Open opens the store in the SQLite file at path, creating the file
// (readable by its owner only) and its schema when they do not exist.
// The directory must exist. Several processes may open the same file at
// once.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, busyTimeout)
}

func open(ctx context.Context, path string, busy time.Duration) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// Create the file ourselves so that it is private from the start:
	// SQLite would create it world-readable, and it gives the -wal and
	// -shm files it makes beside it the database file's mode. The file
	// holds password hashes and sealed TOTP secrets.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err // names the file already
	}
	f.Close()

	db, err := sql.Open("sqlite", dsn(abs, busy))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	s := &Store{db: db, path: abs, now: time.Now, writing: make(chan struct{}, 1)}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	return s, nil
}

// dsn is the driver's data source name for the file at path (absolute).
// Every connection the pool opens applies these settings:
//   - busy_timeout: wait for another process's write instead of failing;
//   - journal_mode WAL: readers and one writer work at the same time, in
//     this process and in others;
//   - synchronous FULL: a commit is on disk before it returns, so a
//     revocation or a lock survives even a power cut;
//   - _txlock immediate: every transaction is BEGIN IMMEDIATE, taking the
//     write lock up front, so read-modify-write transactions serialise
//     instead of failing with SQLITE_BUSY when they try to upgrade.
func dsn(path string, busy time.Duration) string {
	q := url.Values{
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()),
			"journal_mode(WAL)",
			"synchronous(FULL)",
		},
		"_txlock": {"immediate"},
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// Close closes the database; later calls fail with store.ErrUnavailable.
func (s *Store) Close() error { return s.db.Close() }

// Ping reports whether the file can be read.
func (s *Store) Ping(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// wrap turns a database error into a store error: sql.ErrNoRows becomes
// store.ErrNotFound, anything else (a closed store, an I/O error, a lock
// still held by another process after busyTimeout) store.ErrUnavailable.
func wrap(op string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
}

// inTx runs fn in a write transaction (BEGIN IMMEDIATE, see dsn) and
// commits it when fn returns nil. fn's error is returned as is, so fn
// wraps its own.
func (s *Store) inTx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	select {
	case s.writing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, ctx.Err())
	}
	defer func() { <-s.writing }()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return wrap(op, err)
	}
	return nil
}

// write is inTx for the store's methods: once per purgeInterval it also
// deletes the rows that have expired.
func (s *Store) write(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		if now := s.now(); now.Sub(s.lastPurge) >= purgeInterval {
			s.lastPurge = now
			for _, table := range []string{"sessions", "totp_used", "failures", "tickets"} {
				if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE expires_at <= ?", now.UnixNano()); err != nil {
					return wrap("purge expired "+table, err)
				}
			}
		}
		return fn(tx)
	})
}

// expiry is the expires_at of a row written at now that lives for ttl:
// Unix nanoseconds, saturated rather than overflowing.
func expiry(now time.Time, ttl time.Duration) int64 {
	n := now.UnixNano()
	if ttl > 0 && int64(ttl) > math.MaxInt64-n {
		return math.MaxInt64
	}
	return n + int64(ttl)
}

// timeKey is t as text that sorts like the instant it names (UTC, fixed
// width, nanoseconds), for the columns that order or bound rows by time.
func timeKey(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z")
}

// querier is what reads need from a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// getJSON loads the JSON record the query selects (one data column).
func getJSON[T any](ctx context.Context, q querier, op, query string, args ...any) (T, error) {
	var v T
	var b []byte
	if err := q.QueryRowContext(ctx, query, args...).Scan(&b); err != nil {
		return v, wrap(op, err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%s: decode: %w", op, err)
	}
	return v, nil
}

// listJSON loads the JSON records the query selects (one data column),
// in the query's order.
func listJSON[T any](ctx context.Context, q querier, op, query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, wrap(op, err)
		}
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("%s: decode: %w", op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(op, err)
	}
	return out, nil
}

// exec runs one statement in its own write transaction.
func (s *Store) exec(ctx context.Context, op, query string, args ...any) error {
	return s.write(ctx, op, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return wrap(op, err)
		}
		return nil
	})
}

// putJSON creates or replaces the record under name in table (one of
// accounts, roles, apps: a name and a data column).
func (s *Store) putJSON(ctx context.Context, op, table, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	return s.exec(ctx, op, "INSERT INTO "+table+" (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data = excluded.data", name, string(b))
}

// Account returns the named account.
func (s *Store) Account(ctx context.Context, name string) (store.Account, error) {
	return getJSON[store.Account](ctx, s.db, fmt.Sprintf("load account %q", name), "SELECT data FROM accounts WHERE name = ?", name)
}

// Accounts returns every account sorted by name (byte order).
func (s *Store) Accounts(ctx context.Context) ([]store.Account, error) {
	return listJSON[store.Account](ctx, s.db, "list accounts", "SELECT data FROM accounts ORDER BY name")
}

// ListAccounts returns a page of accounts by name (the primary key).
func (s *Store) ListAccounts(ctx context.Context, q store.ListQuery) (store.Page[store.Account], error) {
	var pos store.AccountPosition
	if q.Cursor != "" {
		if err := store.ParseCursor(store.AccountCursor, q.Cursor, &pos); err != nil {
			return store.Page[store.Account]{}, fmt.Errorf("list accounts: %w", err)
		}
	}
	limit := q.PageLimit()
	items, err := listJSON[store.Account](ctx, s.db, "list accounts",
		"SELECT data FROM accounts WHERE name > ? ORDER BY name LIMIT ?", pos.Name, limit+1)
	page := store.Page[store.Account]{Items: items}
	if err == nil && len(items) > limit {
		page.Items = items[:limit]
		page.Next = store.Cursor(store.AccountCursor, store.AccountPosition{Name: items[limit-1].Name})
	}
	return page, err
}

// CreateAccount adds a new account; it fails with store.ErrExists when the
// name is taken and with store.ErrEmailTaken when another account has its
// email. Both are checked in the write transaction, which holds the
// file's write lock, so two creates racing for one email (from this
// process or another) cannot both succeed.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	if a.ID == "" {
		a.ID = store.NewAccountID()
	}
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode account: %w", err)
	}
	op := fmt.Sprintf("create account %q", a.Name)
	return s.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "INSERT INTO accounts (name, email_key, data) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
			a.Name, emailKey(a.Email), string(b))
		if err != nil {
			return wrap(op, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return wrap(op, err)
		} else if n == 0 {
			return fmt.Errorf("%s: %w", op, store.ErrExists)
		}
		return emailFree(ctx, tx, op, a.Name, a.Email)
	})
}

// UpdateAccount reads the account, applies fn and writes it back in one
// write transaction, so concurrent updates, from this process or another,
// never overwrite each other. fn runs once, while the store's write lock
// is held: it must not write to the store itself. An error from fn is
// returned as is and nothing is written. The account keeps its name
// whatever fn does. A changed email that another account has fails with
// store.ErrEmailTaken; an unchanged one is never refused, so accounts
// that shared an email before emails were unique can still be changed.
func (s *Store) UpdateAccount(ctx context.Context, name string, fn func(*store.Account) error) error {
	op := fmt.Sprintf("update account %q", name)
	return s.write(ctx, op, func(tx *sql.Tx) error {
		a, err := getJSON[store.Account](ctx, tx, op, "SELECT data FROM accounts WHERE name = ?", name)
		if err != nil {
			return err
		}
		before := store.EmailKey(a.Email)
		id := a.ID
		if err := fn(&a); err != nil {
			return err
		}
		a.Name, a.ID = name, id
		if store.EmailKey(a.Email) != before {
			if err := emailFree(ctx, tx, op, name, a.Email); err != nil {
				return err
			}
		}
		b, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("%s: encode: %w", op, err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET data = ?, email_key = ? WHERE name = ?", string(b), emailKey(a.Email), name); err != nil {
			return wrap(op, err)
		}
		return nil
	})
}

// emailKey is the email_key column of an account with that email.
func emailKey(email string) any {
	if k := store.EmailKey(email); k != "" {
		return k
	}
	return nil
}

// emailFree fails with store.ErrEmailTaken when an account other than
// name has email.
func emailFree(ctx context.Context, tx *sql.Tx, op, name, email string) error {
	k := store.EmailKey(email)
	if k == "" {
		return nil
	}
	var other string
	err := tx.QueryRowContext(ctx, "SELECT name FROM accounts WHERE email_key = ? AND name <> ? LIMIT 1", k, name).Scan(&other)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return wrap(op, err)
	}
	return fmt.Errorf("%s: email %q is the email of account %q: %w", op, email, other, store.ErrEmailTaken)
}

// DeleteAccount removes the account, or fails with store.ErrNotFound.
func (s *Store) DeleteAccount(ctx context.Context, name string) error {
	op := fmt.Sprintf("delete account %q", name)
	return s.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM accounts WHERE name = ?", name)
		if err != nil {
			return wrap(op, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return wrap(op, err)
		} else if n == 0 {
			return fmt.Errorf("%s: %w", op, store.ErrNotFound)
		}
		return nil
	})
}

// Role returns the named role.
func (s *Store) Role(ctx context.Context, name string) (store.Role, error) {
	return getJSON[store.Role](ctx, s.db, fmt.Sprintf("load role %q", name), "SELECT data FROM roles WHERE name = ?", name)
}

// Roles returns every role sorted by name.
func (s *Store) Roles(ctx context.Context) ([]store.Role, error) {
	return listJSON[store.Role](ctx, s.db, "list roles", "SELECT data FROM roles ORDER BY name")
}

// PutRole creates or replaces a role.
func (s *Store) PutRole(ctx context.Context, r store.Role) error {
	return s.putJSON(ctx, "put role", "roles", r.Name, r)
}

// DeleteRole removes a role.
func (s *Store) DeleteRole(ctx context.Context, name string) error {
	return s.exec(ctx, "delete role", "DELETE FROM roles WHERE name = ?", name)
}

// App returns the named app.
func (s *Store) App(ctx context.Context, name string) (store.App, error) {
	return getJSON[store.App](ctx, s.db, fmt.Sprintf("load app %q", name), "SELECT data FROM apps WHERE name = ?", name)
}

// Apps returns every app sorted by name.
func (s *Store) Apps(ctx context.Context) ([]store.App, error) {
	return listJSON[store.App](ctx, s.db, "list apps", "SELECT data FROM apps ORDER BY name")
}

// PutApp creates or replaces an app.
func (s *Store) PutApp(ctx context.Context, a store.App) error {
	return s.putJSON(ctx, "put app", "apps", a.Name, a)
}

// DeleteApp removes an app.
func (s *Store) DeleteApp(ctx context.Context, name string) error {
	return s.exec(ctx, "delete app", "DELETE FROM apps WHERE name = ?", name)
}

// PutCertificate records an issued certificate, replacing the record with
// the same serial.
func (s *Store) PutCertificate(ctx context.Context, c store.Certificate) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode certificate: %w", err)
	}
	return s.exec(ctx, "put certificate", `
INSERT INTO certificates (serial, fingerprint, user, issued_at, data) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (serial) DO UPDATE SET
	fingerprint = excluded.fingerprint, user = excluded.user,
	issued_at = excluded.issued_at, data = excluded.data`,
		c.Serial, c.Fingerprint, c.User, timeKey(c.IssuedAt), string(b))
}

// Certificates returns the certificates issued to user (all when user is
// empty), oldest first; certificates issued at the same time come in
// serial order.
func (s *Store) Certificates(ctx context.Context, user string) ([]store.Certificate, error) {
	if user == "" {
		return listJSON[store.Certificate](ctx, s.db, "list certificates",
			"SELECT data FROM certificates ORDER BY issued_at, serial")
	}
	return listJSON[store.Certificate](ctx, s.db, "list certificates",
		"SELECT data FROM certificates WHERE user = ? ORDER BY issued_at, serial", user)
}

// ListCertificates returns a page of certificates in the order (issued
// at, serial), through the index on that order (or on user first).
func (s *Store) ListCertificates(ctx context.Context, q store.ListQuery) (store.Page[store.Certificate], error) {
	var pos store.CertificatePosition
	after := [2]any{"", ""}
	if q.Cursor != "" {
		if err := store.ParseCursor(store.CertificateCursor, q.Cursor, &pos); err != nil {
			return store.Page[store.Certificate]{}, fmt.Errorf("list certificates: %w", err)
		}
		after = [2]any{timeKey(pos.IssuedAt), pos.Serial}
	}
	limit := q.PageLimit()
	var items []store.Certificate
	var err error
	if q.User == "" {
		items, err = listJSON[store.Certificate](ctx, s.db, "list certificates",
			"SELECT data FROM certificates WHERE (issued_at, serial) > (?, ?) ORDER BY issued_at, serial LIMIT ?", after[0], after[1], limit+1)
	} else {
		items, err = listJSON[store.Certificate](ctx, s.db, "list certificates",
			"SELECT data FROM certificates WHERE user = ? AND (issued_at, serial) > (?, ?) ORDER BY issued_at, serial LIMIT ?", q.User, after[0], after[1], limit+1)
	}
	page := store.Page[store.Certificate]{Items: items}
	if err == nil && len(items) > limit {
		last := items[limit-1]
		page.Items = items[:limit]
		page.Next = store.Cursor(store.CertificateCursor, store.CertificatePosition{IssuedAt: last.IssuedAt, Serial: last.Serial})
	}
	return page, err
}

// RevokeCertificate marks an issued certificate revoked, keeping the first
// revocation's time and reason, and adds its issuer and serial to the
// list IsRevoked reads on every request that presents a certificate.
func (s *Store) RevokeCertificate(ctx context.Context, serial string, at time.Time, reason string) (store.Certificate, error) {
	op := "revoke certificate " + serial
	var c store.Certificate
	err := s.write(ctx, op, func(tx *sql.Tx) error {
		var err error
		c, err = getJSON[store.Certificate](ctx, tx, op, "SELECT data FROM certificates WHERE serial = ?", serial)
		if err != nil {
			return err
		}
		if c.RevokedAt.IsZero() {
			c.RevokedAt, c.RevokeReason = at, reason
		}
		b, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("%s: encode: %w", op, err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE certificates SET data = ? WHERE serial = ?", string(b), c.Serial); err != nil {
			return wrap(op, err)
		}
		issuer := cmp.Or(c.Issuer, store.AnyIssuer)
		if _, err := tx.ExecContext(ctx, "INSERT INTO revoked_certs (issuer, serial) VALUES (?, ?) ON CONFLICT DO NOTHING", issuer, c.Serial); err != nil {
			return wrap(op, err)
		}
		return nil
	})
	if err != nil {
		return store.Certificate{}, err
	}
	return c, nil
}

// IsRevoked reports whether the certificate with that issuer and serial
// was revoked (or a certificate with that serial, when its record had no
// issuer).
func (s *Store) IsRevoked(ctx context.Context, issuer, serial string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM revoked_certs WHERE serial = ? AND issuer IN (?, ?)",
		serial, issuer, store.AnyIssuer).Scan(&n)
	if err != nil {
		return false, wrap("check revocation", err)
	}
	return n > 0, nil
}

// AppendAudit adds an event to the audit trail. The store assigns the ID:
// the row's number, which only grows (AUTOINCREMENT never reuses one).
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	e.ID = ""
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode audit event: %w", err)
	}
	return s.exec(ctx, "append audit event",
		"INSERT INTO audit (time, actor, target, action, data) VALUES (?, ?, ?, ?, ?)",
		timeKey(e.Time), e.Actor, e.Target, e.Action, string(b))
}

// Audit returns the events q selects, newest first, at most a page.
// Every filter has an index, so a page costs index seeks, not a scan of
// the trail; Next is set when the page is full.
func (s *Store) Audit(ctx context.Context, q store.AuditQuery) (store.Page[store.AuditEvent], error) {
	var page store.Page[store.AuditEvent]
	limit := q.Limit
	if limit <= 0 || limit > store.MaxPage {
		limit = store.MaxPage
	}
	var where []string
	var args []any
	if q.Before != "" {
		before, err := strconv.ParseInt(q.Before, 10, 64)
		if err != nil {
			return page, fmt.Errorf("read audit trail: %q: %w", q.Before, store.ErrBadCursor)
		}
		where, args = append(where, "id < ?"), append(args, before)
	}
	if q.User != "" {
		where, args = append(where, "(actor = ? OR target = ?)"), append(args, q.User, q.User)
	}
	if q.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, q.Actor)
	}
	if q.Action != "" {
		where, args = append(where, "action = ?"), append(args, q.Action)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, timeKey(q.Since))
	}
	if !q.Until.IsZero() {
		where, args = append(where, "time < ?"), append(args, timeKey(q.Until))
	}
	query := "SELECT id, data FROM audit"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit)

	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return page, wrap("read audit trail", err)
	}
	defer rows.Close()
	page.Items = make([]store.AuditEvent, 0, min(limit, 100))
	for rows.Next() {
		var id int64
		var b []byte
		if err := rows.Scan(&id, &b); err != nil {
			return page, wrap("read audit trail", err)
		}
		var e store.AuditEvent
		if err := json.Unmarshal(b, &e); err != nil {
			return page, fmt.Errorf("decode audit event %d: %w", id, err)
		}
		e.ID = strconv.FormatInt(id, 10)
		page.Items = append(page.Items, e)
	}
	if err := rows.Err(); err != nil {
		return page, wrap("read audit trail", err)
	}
	if len(page.Items) == limit {
		page.Next = page.Items[limit-1].ID
	}
	return page, nil
}

// UseTOTPStep marks a step used unless a live mark is there, in one
// statement: a mark that has expired is taken over as if it were not.
// A ttl that is not positive keeps the mark for ever, as Redis does.
func (s *Store) UseTOTPStep(ctx context.Context, user string, step int64, ttl time.Duration) (bool, error) {
	now := s.now()
	exp := int64(math.MaxInt64)
	if ttl > 0 {
		exp = expiry(now, ttl)
	}
	var first bool
	err := s.write(ctx, "mark TOTP step", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
INSERT INTO totp_used (user, step, expires_at) VALUES (?, ?, ?)
ON CONFLICT (user, step) DO UPDATE SET expires_at = excluded.expires_at
WHERE totp_used.expires_at <= ?`, user, step, exp, now.UnixNano())
		if err != nil {
			return wrap("mark TOTP step", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return wrap("mark TOTP step", err)
		}
		first = n > 0
		return nil
	})
	return first, err
}

// AddFailure increments the counter (starting again from 1 when it had
// expired) and sets its expiry to ttl from now.
func (s *Store) AddFailure(ctx context.Context, key string, ttl time.Duration) (int, error) {
	now := s.now()
	var n int
	err := s.write(ctx, "count failure", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `
INSERT INTO failures (key, count, expires_at) VALUES (?, 1, ?)
ON CONFLICT (key) DO UPDATE SET
	count = CASE WHEN failures.expires_at > ? THEN failures.count + 1 ELSE 1 END,
	expires_at = excluded.expires_at
RETURNING count`, key, expiry(now, ttl), now.UnixNano()).Scan(&n)
		if err != nil {
			return wrap("count failure", err)
		}
		return nil
	})
	return n, err
}

// Failures returns the counter, 0 when absent or expired.
func (s *Store) Failures(ctx context.Context, key string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT count FROM failures WHERE key = ? AND expires_at > ?", key, s.now().UnixNano()).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap("read failures", err)
	}
	return n, nil
}

// FailuresOf reads the counters; the file is local, so one query each
// costs no round trip.
func (s *Store) FailuresOf(ctx context.Context, keys []string) ([]int, error) {
	out := make([]int, len(keys))
	for i, k := range keys {
		n, err := s.Failures(ctx, k)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// ResetFailures deletes the counter.
func (s *Store) ResetFailures(ctx context.Context, key string) error {
	return s.exec(ctx, "reset failures", "DELETE FROM failures WHERE key = ?", key)
}

// SetMetaOnce stores a value unless one exists and returns the one kept.
func (s *Store) SetMetaOnce(ctx context.Context, name, value string) (string, error) {
	var kept string
	err := s.write(ctx, "set meta", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING", name, value); err != nil {
			return wrap("set meta", err)
		}
		if err := tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE name = ?", name).Scan(&kept); err != nil {
			return wrap("read meta", err)
		}
		return nil
	})
	return kept, err
}

// RaiseCounter keeps the greater of the stored and the given value, as
// decimal text in the meta table, in one write transaction.
func (s *Store) RaiseCounter(ctx context.Context, name string, value *big.Int) (*big.Int, error) {
	if value == nil {
		return nil, fmt.Errorf("raise counter %q: no value", name)
	}
	kept := new(big.Int).Set(value)
	err := s.write(ctx, "raise counter", func(tx *sql.Tx) error {
		var text string
		err := tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE name = ?", counterKey(name)).Scan(&text)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return wrap("read counter", err)
		default:
			current, ok := new(big.Int).SetString(text, 10)
			if !ok {
				return fmt.Errorf("counter %q holds %q, not a number", name, text)
			}
			if current.Cmp(value) >= 0 {
				kept = current
				return nil
			}
		}
		_, err = tx.ExecContext(ctx, `
INSERT INTO meta (name, value) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value`, counterKey(name), value.String())
		if err != nil {
			return wrap("raise counter", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return kept, nil
}

// counterKey keeps counters apart from SetMetaOnce values in the meta
// table.
func counterKey(name string) string { return "\x00counter:" + name }

// markerName is the meta row of the marker, apart from SetMetaOnce
// values and counters (migration 3 writes it as char(0) || 'marker').
const markerName = "\x00marker"

// Mark writes the marker row.
func (s *Store) Mark(ctx context.Context) error {
	return s.exec(ctx, "mark the store", "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
		markerName, "marked "+timeKey(s.now()))
}

// CheckMarker reports whether the marker row is there. The file is one
// piece: the account makes no difference.
func (s *Store) CheckMarker(ctx context.Context, account string) error {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM meta WHERE name = ?", markerName).Scan(&n); err != nil {
		return wrap("check the store's marker", err)
	}
	if n == 0 {
		return fmt.Errorf("the store's marker is missing from this file: %w", store.ErrDataLost)
	}
	return nil
}

// Session returns a live session.
func (s *Store) Session(ctx context.Context, id string) (store.Session, error) {
	return getJSON[store.Session](ctx, s.db, "load session",
		"SELECT data FROM sessions WHERE id = ? AND expires_at > ?", id, s.now().UnixNano())
}

// PutSession creates or replaces a session that expires ttl from now.
func (s *Store) PutSession(ctx context.Context, sess store.Session, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("put session: ttl must be positive, got %v", ttl)
	}
	b, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	return s.exec(ctx, "put session", `
INSERT INTO sessions (id, user, created_at, expires_at, data) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
	user = excluded.user, created_at = excluded.created_at,
	expires_at = excluded.expires_at, data = excluded.data`,
		sess.ID, sess.User, timeKey(sess.CreatedAt), expiry(s.now(), ttl), string(b))
}

// DeleteSession removes a session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	return s.exec(ctx, "delete session", "DELETE FROM sessions WHERE id = ?", id)
}

// Sessions returns the user's live sessions, oldest first. Sessions
// without a user belong to nobody's list, as in the Redis store.
func (s *Store) Sessions(ctx context.Context, user string) ([]store.Session, error) {
	if user == "" {
		return nil, nil
	}
	return listJSON[store.Session](ctx, s.db, "list user sessions",
		"SELECT data FROM sessions WHERE user = ? AND expires_at > ? ORDER BY created_at, id", user, s.now().UnixNano())
}

// deleteBatch is how many sessions one write transaction of
// DeleteUserSessions removes, so that other writers (the portal's
// requests, the command line) wait for one short transaction at most,
// however many sessions the user has.
const deleteBatch = 1000

// ListSessions returns a page of live sessions in the order (user,
// created at, ID), the order of the index sessions_by_user; without a
// user, only the sessions of accounts that exist.
func (s *Store) ListSessions(ctx context.Context, q store.ListQuery) (store.Page[store.Session], error) {
	var pos store.SessionPosition
	if q.Cursor != "" {
		if err := store.ParseCursor(store.SessionCursor, q.Cursor, &pos); err != nil {
			return store.Page[store.Session]{}, fmt.Errorf("list sessions: %w", err)
		}
	}
	limit, now := q.PageLimit(), s.now().UnixNano()
	// The position as a row value: after every session of a user that
	// is done, after (user, created, id) otherwise.
	user, created, id := pos.User, "", ""
	if q.Cursor != "" && !pos.UserDone {
		created, id = timeKey(pos.CreatedAt), pos.ID
	} else if pos.UserDone {
		created = "\U0010FFFF" // after any time key
	}
	var items []store.Session
	var err error
	if q.User != "" {
		if q.Cursor != "" && pos.User != q.User {
			return store.Page[store.Session]{}, fmt.Errorf("list sessions: a cursor of another account's list: %w", store.ErrBadCursor)
		}
		items, err = listJSON[store.Session](ctx, s.db, "list sessions", `
SELECT data FROM sessions WHERE user = ? AND expires_at > ? AND (created_at, id) > (?, ?)
ORDER BY created_at, id LIMIT ?`, q.User, now, created, id, limit+1)
	} else {
		items, err = listJSON[store.Session](ctx, s.db, "list sessions", `
SELECT s.data FROM sessions s JOIN accounts a ON a.name = s.user
WHERE s.expires_at > ? AND (s.user, s.created_at, s.id) > (?, ?, ?)
ORDER BY s.user, s.created_at, s.id LIMIT ?`, now, user, created, id, limit+1)
	}
	page := store.Page[store.Session]{Items: items}
	if err == nil && len(items) > limit {
		last := items[limit-1]
		page.Items = items[:limit]
		page.Next = store.Cursor(store.SessionCursor, store.SessionPosition{User: last.User, CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return page, err
}

// DeleteUserSessions removes every session of user, a batch per write
// transaction, and returns how many of them were live; expired ones go
// too but are not counted.
func (s *Store) DeleteUserSessions(ctx context.Context, user string) (int, error) {
	if user == "" {
		return 0, nil
	}
	live := 0
	for {
		deleted, liveNow := 0, 0
		err := s.write(ctx, "delete user sessions", func(tx *sql.Tx) error {
			deleted, liveNow = 0, 0
			rows, err := tx.QueryContext(ctx, `
DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE user = ? LIMIT ?)
RETURNING expires_at > ?`, user, deleteBatch, s.now().UnixNano())
			if err != nil {
				return wrap("delete user sessions", err)
			}
			defer rows.Close()
			for rows.Next() {
				var wasLive bool
				if err := rows.Scan(&wasLive); err != nil {
					return wrap("delete user sessions", err)
				}
				deleted++
				if wasLive {
					liveNow++
				}
			}
			if err := rows.Err(); err != nil {
				return wrap("delete user sessions", err)
			}
			return nil
		})
		if err != nil {
			return live, err
		}
		live += liveNow
		if deleted < deleteBatch {
			return live, nil
		}
	}
}

// Claim takes key for ttl unless it is held and not yet expired.
func (s *Store) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("claim: ttl must be positive, got %v", ttl)
	}
	now := s.now()
	var took bool
	err := s.write(ctx, "claim", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
INSERT INTO failures (key, count, expires_at) VALUES (?, 1, ?)
ON CONFLICT (key) DO UPDATE SET count = 1, expires_at = excluded.expires_at
WHERE failures.expires_at <= ?`, claimKey(key), expiry(now, ttl), now.UnixNano())
		if err != nil {
			return wrap("claim", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return wrap("claim", err)
		}
		took = n > 0
		return nil
	})
	return took, err
}

// claimKey keeps claims apart from failure counters in their table.
func claimKey(key string) string { return "\x00claim:" + key }

// View reads a session with its account and the role and app
// definitions. The file is local: the reads cost no network round trips.
func (s *Store) View(ctx context.Context, id string) (store.SessionView, error) {
	return store.ViewByParts(ctx, s, id)
}

// RefreshSession rewrites a live session; a missing or expired one is
// left alone.
func (s *Store) RefreshSession(ctx context.Context, sess store.Session, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("refresh session: ttl must be positive, got %v", ttl)
	}
	b, err := json.Marshal(sess)
	if err != nil {
		return false, fmt.Errorf("encode session: %w", err)
	}
	now := s.now()
	var found bool
	err = s.write(ctx, "refresh session", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE sessions SET expires_at = ?, data = ? WHERE id = ? AND expires_at > ?",
			expiry(now, ttl), string(b), sess.ID, now.UnixNano())
		if err != nil {
			return wrap("refresh session", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return wrap("refresh session", err)
		}
		found = n > 0
		return nil
	})
	return found, err
}
