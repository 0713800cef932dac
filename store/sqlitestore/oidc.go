package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"gatehouse/store"
)

// OIDCClient returns the client with that ID.
func (s *Store) OIDCClient(ctx context.Context, id string) (store.OIDCClient, error) {
	return getJSON[store.OIDCClient](ctx, s.db, "load OIDC client", "SELECT data FROM oidc_clients WHERE id = ?", id)
}

// OIDCClients returns every client sorted by ID.
func (s *Store) OIDCClients(ctx context.Context) ([]store.OIDCClient, error) {
	return listJSON[store.OIDCClient](ctx, s.db, "list OIDC clients", "SELECT data FROM oidc_clients ORDER BY id")
}

// PutOIDCClient creates or replaces a client.
func (s *Store) PutOIDCClient(ctx context.Context, c store.OIDCClient) error {
	return s.putRecord(ctx, "put OIDC client", "oidc_clients", c.ID, c)
}

// DeleteOIDCClient removes a client.
func (s *Store) DeleteOIDCClient(ctx context.Context, id string) error {
	return s.exec(ctx, "delete OIDC client", "DELETE FROM oidc_clients WHERE id = ?", id)
}

// OIDCKeys returns every signing key sorted by ID.
func (s *Store) OIDCKeys(ctx context.Context) ([]store.OIDCKey, error) {
	return listJSON[store.OIDCKey](ctx, s.db, "list OIDC keys", "SELECT data FROM oidc_keys ORDER BY id")
}

// PutOIDCKey creates or replaces a signing key.
func (s *Store) PutOIDCKey(ctx context.Context, k store.OIDCKey) error {
	return s.putRecord(ctx, "put OIDC key", "oidc_keys", k.ID, k)
}

// DeleteOIDCKey removes a signing key.
func (s *Store) DeleteOIDCKey(ctx context.Context, id string) error {
	return s.exec(ctx, "delete OIDC key", "DELETE FROM oidc_keys WHERE id = ?", id)
}

// putRecord writes v as JSON in table (one of ours: an id and a data
// column) under id.
func (s *Store) putRecord(ctx context.Context, op, table, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	return s.exec(ctx, op, "INSERT INTO "+table+" (id, data) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data", id, string(b))
}

// PutTicket writes a ticket that expires ttl from now.
func (s *Store) PutTicket(ctx context.Context, id string, data []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("put ticket: ttl must be positive, got %v", ttl)
	}
	return s.exec(ctx, "put ticket", `
INSERT INTO tickets (id, expires_at, data) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, data = excluded.data`,
		id, expiry(s.now(), ttl), data)
}

// Ticket reads a live ticket.
func (s *Store) Ticket(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, "SELECT data FROM tickets WHERE id = ? AND expires_at > ?", id, s.now().UnixNano()).Scan(&b)
	if err != nil {
		return nil, wrap("load ticket", err)
	}
	return b, nil
}

// TakeTicket deletes a ticket and returns it in one statement (DELETE …
// RETURNING), inside the write transaction every writer queues for.
func (s *Store) TakeTicket(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	var exp int64
	err := s.write(ctx, "take ticket", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "DELETE FROM tickets WHERE id = ? RETURNING expires_at, data", id).Scan(&exp, &b)
		if err != nil {
			return wrap("take ticket", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if exp <= s.now().UnixNano() {
		return nil, fmt.Errorf("take ticket: %w", store.ErrNotFound)
	}
	return b, nil
}

// DeleteTicket removes a ticket.
func (s *Store) DeleteTicket(ctx context.Context, id string) error {
	return s.exec(ctx, "delete ticket", "DELETE FROM tickets WHERE id = ?", id)
}
