// Package cached keeps, in the portal's memory, what a request on a
// session reads from the store (the session, its account, the role and
// app definitions, certificate revocations), so that /auth/verify does
// not go to the store every time.
//
// Revocation must take effect at once on every instance, so an entry is
// served only after the backend's Feed has vouched that every write
// completed before the request is known here (Feed.Sync): a write by any
// instance or process invalidates the entries it touches before anyone
// answers from them again, and when the feed cannot vouch (disconnected,
// too slow) the request reads the store as if there were no cache. A
// feed vouches by a read barrier per request, or, on one Redis server,
// by a lease: there the writer waits until every instance has handled
// its write (store/redisstore/fence.go).
package cached

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"gatehouse/store"
)

// Kind is the kind of record a Change touched.
type Kind int

// The kinds of record the cache keeps.
const (
	// Session: the session with ID Name.
	Session Kind = iota + 1
	// Account: the account named Name.
	Account
	// Roles: any role definition.
	Roles
	// Apps: any app definition.
	Apps
	// Revocations: any certificate revocation.
	Revocations
)

// Change is a write the feed reports.
type Change struct {
	Kind Kind
	Name string
}

// Handler receives what a Feed learns.
type Handler interface {
	// Invalidate drops what the change may have made stale.
	Invalidate(Change)
	// Reset drops everything: the feed may have missed writes (it
	// reconnected, or cannot tell which records a write touched).
	Reset()
}

// Feed tells the cache about writes made by any process sharing the
// backend.
type Feed interface {
	// Sync returns nil once every write that completed before the call
	// has been handed to the Handler, or an error when the feed cannot
	// vouch for that; the cache is then not used for the request. (Under
	// a lease, a write completes once every lease holder has handled it.)
	Sync(ctx context.Context) error
	// Close stops the feed.
	Close() error
}

// Source is a backend that can feed a cache.
type Source interface {
	// Watch starts a feed that reports to h.
	Watch(h Handler) (Feed, error)
}

// sessionMaxAge bounds how long a session record is served from memory
// without being read again. The store forgets a session after its ttl
// without a write, so no invalidation need come; the server checks the
// record's own idle and absolute limits on every request, and this bound
// keeps the cache from outliving the store's ttl by more than a second
// for any other caller.
const sessionMaxAge = time.Second

// maxEntries bounds the sessions, accounts and revocation answers kept;
// beyond it the map is emptied and fills again.
const maxEntries = 100_000

// Store is a store.Store that answers View, Roles, Apps and IsRevoked
// from memory when its feed allows, and passes everything else through
// to the backend.
type Store struct {
	store.Store
	feed Feed
	now  func() time.Time
	log  *slog.Logger

	mu sync.Mutex
	// gen counts invalidations: a read from the backend is kept only if
	// none came between its start and its end.
	gen      uint64
	sessions map[string]sessionEntry
	accounts map[string]store.Account
	roles    []store.Role
	rolesOK  bool
	apps     []store.App
	appsOK   bool
	revoked  map[[2]string]bool
	// keys are every account's AccountKeys while keysOK; keysGen counts
	// the invalidations that drop them (account changes and resets only:
	// a session written during their long read does not void it).
	keys    []store.AccountKeys
	keysOK  bool
	keysGen uint64
	// keysLoad is the read of every account's keys in progress, if any:
	// callers that find no invalidation since it began wait for it
	// instead of reading every account too.
	keysLoad *keysLoad
	// unsynced is set while the feed cannot vouch, so that its error is
	// logged once per outage.
	unsynced bool
}

type sessionEntry struct {
	s       store.Session
	fetched time.Time
}

var (
	_ store.Store = (*Store)(nil)
	_ Handler     = (*Store)(nil)
)

// New wraps backend with a cache fed by src. now is the clock (time.Now
// when nil) and log where a feed's failure is reported.
func New(backend store.Store, src Source, now func() time.Time, log *slog.Logger) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	c := &Store{Store: backend, now: now, log: log}
	c.Reset()
	feed, err := src.Watch(c)
	if err != nil {
		return nil, err
	}
	c.feed = feed
	return c, nil
}

// Close stops the feed and closes the backend.
func (c *Store) Close() error {
	ferr := c.feed.Close()
	if err := c.Store.Close(); err != nil {
		return err
	}
	return ferr
}

// Invalidate drops the entries ch may have made stale.
func (c *Store) Invalidate(ch Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	switch ch.Kind {
	case Session:
		delete(c.sessions, ch.Name)
	case Account:
		delete(c.accounts, ch.Name)
		c.keys, c.keysOK = nil, false
		c.keysGen++
	case Roles:
		c.roles, c.rolesOK = nil, false
	case Apps:
		c.apps, c.appsOK = nil, false
	case Revocations:
		clear(c.revoked)
	default:
		c.resetLocked()
	}
}

// Reset drops every entry.
func (c *Store) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.resetLocked()
}

func (c *Store) resetLocked() {
	c.keys, c.keysOK = nil, false
	c.keysGen++
	c.sessions = map[string]sessionEntry{}
	c.accounts = map[string]store.Account{}
	c.revoked = map[[2]string]bool{}
	c.roles, c.rolesOK, c.apps, c.appsOK = nil, false, nil, false
}

// sync asks the feed to vouch for the cache and returns the generation
// to fill it under; ok is false when the cache must not be used.
func (c *Store) sync(ctx context.Context) (gen uint64, ok bool) {
	err := c.feed.Sync(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if !c.unsynced && c.log != nil {
			c.log.Warn("store cache not in use: invalidations cannot be confirmed", "err", err)
		}
		c.unsynced = true
		return 0, false
	}
	if c.unsynced && c.log != nil {
		c.log.Info("store cache in use again")
	}
	c.unsynced = false
	return c.gen, true
}

// View returns the session's view from memory when every part of it is
// there, else reads it from the backend and keeps it.
func (c *Store) View(ctx context.Context, id string) (store.SessionView, error) {
	gen, ok := c.sync(ctx)
	if !ok {
		return c.Store.View(ctx, id)
	}
	if v, hit := c.lookupView(id); hit {
		return v, nil
	}
	v, err := c.Store.View(ctx, id)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		if len(c.sessions) >= maxEntries {
			clear(c.sessions)
		}
		c.sessions[id] = sessionEntry{s: cloneSession(v.Session), fetched: c.now()}
		if v.Account.Name != "" {
			if len(c.accounts) >= maxEntries {
				clear(c.accounts)
			}
			c.accounts[v.Account.Name] = cloneAccount(v.Account)
		}
		c.roles, c.rolesOK = slices.Clone(v.Roles), true
		c.apps, c.appsOK = cloneApps(v.Apps), true
	}
	return v, nil
}

func (c *Store) lookupView(id string) (store.SessionView, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.sessions[id]
	if !ok || !c.rolesOK || !c.appsOK {
		return store.SessionView{}, false
	}
	if now := c.now(); now.Sub(e.fetched) >= sessionMaxAge || !now.Before(e.s.ExpiresAt) {
		delete(c.sessions, id)
		return store.SessionView{}, false
	}
	a, ok := c.accounts[e.s.User]
	if !ok {
		return store.SessionView{}, false
	}
	return store.SessionView{Session: cloneSession(e.s), Account: cloneAccount(a),
		Roles: slices.Clone(c.roles), Apps: cloneApps(c.apps)}, true
}

// Roles returns every role definition.
func (c *Store) Roles(ctx context.Context) ([]store.Role, error) {
	gen, ok := c.sync(ctx)
	if !ok {
		return c.Store.Roles(ctx)
	}
	c.mu.Lock()
	if c.rolesOK {
		defer c.mu.Unlock()
		return slices.Clone(c.roles), nil
	}
	c.mu.Unlock()
	roles, err := c.Store.Roles(ctx)
	if err != nil {
		return roles, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.roles, c.rolesOK = slices.Clone(roles), true
	}
	return roles, nil
}

// Apps returns every app definition.
func (c *Store) Apps(ctx context.Context) ([]store.App, error) {
	gen, ok := c.sync(ctx)
	if !ok {
		return c.Store.Apps(ctx)
	}
	c.mu.Lock()
	if c.appsOK {
		defer c.mu.Unlock()
		return cloneApps(c.apps), nil
	}
	c.mu.Unlock()
	apps, err := c.Store.Apps(ctx)
	if err != nil {
		return apps, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.apps, c.appsOK = cloneApps(apps), true
	}
	return apps, nil
}

// IsRevoked reports whether the certificate was revoked; both answers
// are kept until a revocation anywhere drops them.
func (c *Store) IsRevoked(ctx context.Context, issuer, serial string) (bool, error) {
	gen, ok := c.sync(ctx)
	if !ok {
		return c.Store.IsRevoked(ctx, issuer, serial)
	}
	key := [2]string{issuer, serial}
	c.mu.Lock()
	if r, hit := c.revoked[key]; hit {
		c.mu.Unlock()
		return r, nil
	}
	c.mu.Unlock()
	r, err := c.Store.IsRevoked(ctx, issuer, serial)
	if err != nil {
		return r, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		if len(c.revoked) >= maxEntries {
			clear(c.revoked)
		}
		c.revoked[key] = r
	}
	return r, nil
}

// AccountKeys returns every account's keys, sorted by name, from memory
// when the feed vouches for it. A sign-in with a certificate looks for
// every account the certificate names among them, so the accounts are
// read from the store once per account change instead of once per such
// sign-in. The slice is shared with other callers: it must not be
// changed.
func (c *Store) AccountKeys(ctx context.Context) ([]store.AccountKeys, error) {
	if _, ok := c.sync(ctx); !ok {
		return store.AccountKeysOf(ctx, c.Store)
	}
	c.mu.Lock()
	if c.keysOK {
		defer c.mu.Unlock()
		return c.keys, nil
	}
	// A read that began after every invalidation this call's barrier
	// delivered has seen every write completed before this call: its
	// answer will do.
	if l := c.keysLoad; l != nil && l.gen == c.keysGen {
		c.mu.Unlock()
		select {
		case <-l.done:
			if l.err == nil {
				return l.keys, nil
			}
			// Its caller's context may have ended: read for this one.
			return store.AccountKeysOf(ctx, c.Store)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	l := &keysLoad{gen: c.keysGen, done: make(chan struct{})}
	c.keysLoad = l
	c.mu.Unlock()
	l.keys, l.err = store.AccountKeysOf(ctx, c.Store)
	c.mu.Lock()
	if c.keysLoad == l {
		c.keysLoad = nil
	}
	if l.err == nil && c.keysGen == l.gen {
		c.keys, c.keysOK = l.keys, true
	}
	c.mu.Unlock()
	close(l.done)
	return l.keys, l.err
}

// keysLoad is one read of every account's keys, begun when keysGen was
// gen; done is closed when keys and err are set.
type keysLoad struct {
	gen  uint64
	done chan struct{}
	keys []store.AccountKeys
	err  error
}

// cloneSession, cloneAccount and cloneApps copy the slices a caller
// might change.
func cloneSession(s store.Session) store.Session {
	s.Factors, s.OtherCertOwners = slices.Clone(s.Factors), slices.Clone(s.OtherCertOwners)
	return s
}

func cloneAccount(a store.Account) store.Account {
	a.Roles, a.PinnedFingerprints, a.PinnedKeys = slices.Clone(a.Roles), slices.Clone(a.PinnedFingerprints), slices.Clone(a.PinnedKeys)
	a.RecoveryCodes, a.Renewed = slices.Clone(a.RecoveryCodes), slices.Clone(a.Renewed)
	a.Enrollments = slices.Clone(a.Enrollments)
	return a
}

func cloneApps(apps []store.App) []store.App {
	out := slices.Clone(apps)
	for i := range out {
		out[i].Roles = slices.Clone(out[i].Roles)
	}
	return out
}
