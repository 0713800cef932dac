package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations bring the schema from one version to the next: migrations[i]
// turns version i into version i+1. The version in force is kept in
// PRAGMA user_version; a new version is a new entry at the end, never an
// edit of an old one.
//
// Records are kept as JSON, in the same shapes the Redis store writes, so
// that a record looks the same in either backend; the other columns are
// copies of the fields that queries select or sort on. Times that order
// rows are kept as text in timeKey's sortable form, expiry times as Unix
// nanoseconds.
var migrations = [...]string{
	0: `
CREATE TABLE accounts (
	name TEXT PRIMARY KEY,
	data TEXT NOT NULL
);
CREATE TABLE roles (
	name TEXT PRIMARY KEY,
	data TEXT NOT NULL
);
CREATE TABLE apps (
	name TEXT PRIMARY KEY,
	data TEXT NOT NULL
);
CREATE TABLE certificates (
	serial      TEXT PRIMARY KEY,
	fingerprint TEXT NOT NULL,
	user        TEXT NOT NULL,
	issued_at   TEXT NOT NULL,
	data        TEXT NOT NULL
);
CREATE INDEX certificates_by_user ON certificates (user, issued_at, serial);
CREATE INDEX certificates_by_issue ON certificates (issued_at, serial);
CREATE INDEX certificates_by_fingerprint ON certificates (fingerprint);
CREATE TABLE revoked (
	fingerprint TEXT PRIMARY KEY
);
CREATE TABLE audit (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	time   TEXT NOT NULL,
	actor  TEXT NOT NULL,
	target TEXT NOT NULL,
	action TEXT NOT NULL,
	data   TEXT NOT NULL
);
CREATE INDEX audit_by_actor ON audit (actor, id);
CREATE INDEX audit_by_target ON audit (target, id);
CREATE INDEX audit_by_action ON audit (action, id);
CREATE INDEX audit_by_time ON audit (time);
CREATE TABLE sessions (
	id         TEXT PRIMARY KEY,
	user       TEXT NOT NULL,
	created_at TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	data       TEXT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user, created_at, id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE TABLE totp_used (
	user       TEXT NOT NULL,
	step       INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (user, step)
);
CREATE INDEX totp_used_by_expiry ON totp_used (expires_at);
CREATE TABLE failures (
	key        TEXT PRIMARY KEY,
	count      INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX failures_by_expiry ON failures (expires_at);
CREATE TABLE meta (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
`,
	// Revocations are kept by issuer and serial, never by fingerprint: a
	// certificate has more than one DER encoding. Certificates revoked
	// before this version have no issuer on record and are kept under
	// store.AnyIssuer.
	1: `
CREATE TABLE revoked_certs (
	issuer TEXT NOT NULL,
	serial TEXT NOT NULL,
	PRIMARY KEY (issuer, serial)
);
INSERT OR IGNORE INTO revoked_certs (issuer, serial)
	SELECT coalesce(json_extract(data, '$.issuer'), '*'), serial FROM certificates
	WHERE json_extract(data, '$.revoked_at') IS NOT NULL;
DROP TABLE revoked;
`,
	// email_key is store.EmailKey of the account's email (SQLite's
	// lower() folds ASCII letters only, the same rule), NULL for none.
	// It is not UNIQUE: a file written before holds whatever duplicates
	// it holds, and CreateAccount and UpdateAccount refuse new ones in
	// their write transaction instead.
	2: `
ALTER TABLE accounts ADD COLUMN email_key TEXT;
UPDATE accounts SET email_key = NULLIF(lower(json_extract(data, '$.email')), '');
CREATE INDEX accounts_by_email ON accounts (email_key);
`,
	// The marker (Store.Mark) says that this file holds Gatehouse's
	// data. A file written before markers existed gets one when it holds
	// an account; an empty one is left for "gatehouse init" to mark.
	3: `
INSERT INTO meta (name, value) SELECT char(0) || 'marker', 'marked on upgrade'
	WHERE EXISTS (SELECT 1 FROM accounts);
`,
	// OpenID Connect: the clients, the token signing keys (sealed by the
	// caller) and short-lived tickets (authorization requests, codes,
	// access tokens), which expire like sessions.
	4: `
CREATE TABLE oidc_clients (
	id   TEXT PRIMARY KEY,
	data TEXT NOT NULL
);
CREATE TABLE oidc_keys (
	id   TEXT PRIMARY KEY,
	data TEXT NOT NULL
);
CREATE TABLE tickets (
	id         TEXT PRIMARY KEY,
	expires_at INTEGER NOT NULL,
	data       BLOB NOT NULL
);
CREATE INDEX tickets_by_expiry ON tickets (expires_at);
`,
}

// schemaVersion is the version of the schema this code reads and writes.
const schemaVersion = len(migrations)

// migrate brings the file's schema up to schemaVersion. It runs in one
// write transaction, so two processes opening a new file at once create
// the schema once, and a failed migration leaves the file as it was.
func (s *Store) migrate(ctx context.Context) error {
	return s.inTx(ctx, "create schema", func(tx *sql.Tx) error {
		var version int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
			return wrap("read schema version", err)
		}
		if version > schemaVersion {
			return fmt.Errorf("the store's schema version is %d, newer than this program's %d: use a newer gatehouse", version, schemaVersion)
		}
		for v := version; v < schemaVersion; v++ {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return wrap(fmt.Sprintf("migrate schema to version %d", v+1), err)
			}
		}
		if version == schemaVersion {
			return nil
		}
		// PRAGMA takes no bound parameters; schemaVersion is our constant.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
			return wrap("set schema version", err)
		}
		return nil
	})
}
