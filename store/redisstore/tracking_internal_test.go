package redisstore

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"gatehouse/store/cached"
)

// TestChangeOf_EveryKeyIsKnown runs every key name the store writes on
// one server through changeOf: the keys cached records are read from
// name what changed, every other key is ignored. A key changeOf does
// not know empties every instance's whole cache on every write to it,
// which must never be the case for a key written on each sign-in.
func TestChangeOf_EveryKeyIsKnown(t *testing.T) {
	k := newKeyspace(false)
	shard := "0001"
	changes := map[string]cached.Kind{
		k.session(shard + ".abc"): cached.Session,
		k.account("alice"):        cached.Account,
		k.role("admin"):           cached.Roles,
		k.roles:                   cached.Roles,
		k.app("wiki"):             cached.Apps,
		k.apps:                    cached.Apps,
		k.revoked:                 cached.Revocations,
		k.legacyRevoked:           cached.Revocations,
	}
	for key, want := range changes {
		ch, ok := changeOf(key)
		if !ok || ch.Kind != want {
			t.Errorf("changeOf(%q) = %+v, %v; want kind %v", key, ch, ok, want)
		}
	}
	ignored := []string{
		k.accounts, k.accountNames, k.emails, k.certs, k.certsByIssue, k.audit,
		k.cert("ab"), k.certsOf("alice"), k.userSessions("alice"), k.sessionsOf("alice"),
		k.marker(""), k.emailClaim("a@example.com"), k.emailLease("a@example.com"),
		k.totpStep("alice", 7), k.failure("password:alice"), k.meta("x"), k.counter("x"), k.claim("x"),
		ticketKey("oidc-code:x"), oidcClientKey("grafana"), oidcClientsKey, oidcKeyKey("k1"), oidcKeysKey,
	}
	for _, key := range ignored {
		if ch, ok := changeOf(key); ok {
			t.Errorf("changeOf(%q) = %+v, true; want it ignored (no cached record is read from it)", key, ch)
		}
	}
}

// TestWatch_NotBehindSentinel: the cache's feed does not follow a
// failover yet, so a store behind Sentinel offers none (the portal then
// reads Redis on every request).
func TestWatch_NotBehindSentinel(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	s := &Store{rdb: rdb, k: newKeyspace(false), sentinel: true}
	if f, err := s.Watch(nil); err == nil {
		f.Close()
		t.Fatal("Watch behind Sentinel started a feed")
	}
}
