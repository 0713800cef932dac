package redisstore

import (
	"context"
	"fmt"
	"time"

	"gatehouse/store"
)

// Keys of the OpenID Connect records: one key per client, per signing
// key and per ticket, and a set listing the clients and one listing the
// signing keys. Tickets expire by Redis's own TTL and are never listed.
// Clients, keys and their sets carry the hash tag {oidc}: on a Cluster a
// record and its set are written in one transaction, so they share a
// slot (tickets are used alone and need none).
func oidcClientKey(id string) string { return keyPrefix + "{oidc}:client:" + id }
func oidcKeyKey(id string) string    { return keyPrefix + "{oidc}:key:" + id }
func ticketKey(id string) string     { return keyPrefix + "ticket:" + id }

const (
	oidcClientsKey = keyPrefix + "{oidc}:clients"
	oidcKeysKey    = keyPrefix + "{oidc}:keys"
)

// OIDCClient returns the client with that ID.
func (s *Store) OIDCClient(ctx context.Context, id string) (store.OIDCClient, error) {
	return getJSON[store.OIDCClient](ctx, s.rdb, "load OIDC client", oidcClientKey(id))
}

// OIDCClients returns every client sorted by ID.
func (s *Store) OIDCClients(ctx context.Context) ([]store.OIDCClient, error) {
	return getAll[store.OIDCClient](ctx, s.rdb, "list OIDC clients", oidcClientsKey, oidcClientKey)
}

// PutOIDCClient creates or replaces a client.
func (s *Store) PutOIDCClient(ctx context.Context, c store.OIDCClient) error {
	return s.putIndexed(ctx, "put OIDC client", oidcClientKey(c.ID), oidcClientsKey, c.ID, c)
}

// DeleteOIDCClient removes a client.
func (s *Store) DeleteOIDCClient(ctx context.Context, id string) error {
	return s.deleteIndexed(ctx, "delete OIDC client", oidcClientKey(id), oidcClientsKey, id)
}

// OIDCKeys returns every signing key sorted by ID.
func (s *Store) OIDCKeys(ctx context.Context) ([]store.OIDCKey, error) {
	return getAll[store.OIDCKey](ctx, s.rdb, "list OIDC keys", oidcKeysKey, oidcKeyKey)
}

// PutOIDCKey creates or replaces a signing key.
func (s *Store) PutOIDCKey(ctx context.Context, k store.OIDCKey) error {
	return s.putIndexed(ctx, "put OIDC key", oidcKeyKey(k.ID), oidcKeysKey, k.ID, k)
}

// DeleteOIDCKey removes a signing key.
func (s *Store) DeleteOIDCKey(ctx context.Context, id string) error {
	return s.deleteIndexed(ctx, "delete OIDC key", oidcKeyKey(id), oidcKeysKey, id)
}

// PutTicket writes a ticket with Redis's own expiry.
func (s *Store) PutTicket(ctx context.Context, id string, data []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("put ticket: ttl must be positive, got %v", ttl)
	}
	if err := s.rdb.Set(ctx, ticketKey(id), data, ttl).Err(); err != nil {
		return wrap("put ticket", err)
	}
	return nil
}

// Ticket reads a live ticket.
func (s *Store) Ticket(ctx context.Context, id string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, ticketKey(id)).Bytes()
	if err != nil {
		return nil, wrap("load ticket", err)
	}
	return b, nil
}

// TakeTicket reads and deletes a ticket with GETDEL, one atomic command.
func (s *Store) TakeTicket(ctx context.Context, id string) ([]byte, error) {
	b, err := s.rdb.GetDel(ctx, ticketKey(id)).Bytes()
	if err != nil {
		return nil, wrap("take ticket", err)
	}
	return b, nil
}

// DeleteTicket removes a ticket.
func (s *Store) DeleteTicket(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, ticketKey(id)).Err(); err != nil {
		return wrap("delete ticket", err)
	}
	return nil
}
