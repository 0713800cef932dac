package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"gatehouse/store"
)

// keyPrefix starts every key Gatehouse writes, so that a Redis shared with
// other software stays readable.
const keyPrefix = "gatehouse:"

// keyspace names every key the store writes, in one place.
//
// On one server or behind Sentinel the names are those earlier versions
// wrote. On a Cluster every key that is written or read together with
// others carries a hash tag ({…}, which alone decides the key's slot), so
// that each transaction and each script touches one slot:
//
//   - {SHARD} (store.Shard of the account name, 1,024 of them): the
//     account, its sessions (whose IDs name the shard, store.SessionID),
//     its session indexes and a marker. Load spreads over the cluster
//     by account.
//   - {config}: roles and apps, with their indexes (read together on
//     every request).
//   - {certs}: certificate records, their indexes and the revocation
//     sets (a revocation writes the record and the set together).
//   - {accounts}: the sorted set of account names, for listing.
//   - {e:HASH}: one email's claim and lease (see claims.go).
//
// Keys used alone (counters, marks, meta, the audit stream) need no tag.
type keyspace struct {
	cluster bool
	// accounts is the set of account names (kept for instances of
	// earlier versions; not on a Cluster); accountNames the same names
	// in a sorted set (all scores 0), which lists them in order a page
	// at a time.
	accounts, accountNames string
	// emails is a hash from store.EmailKey of an account's email to the
	// account's name, written in the same transaction as the account
	// record; it is what makes emails unique on one server. A Cluster
	// uses claims instead.
	emails string
	roles  string
	apps   string
	// certs is the set of serials; certsByIssue the sorted set of
	// issueMember of every certificate, for paging.
	certs, certsByIssue string
	// revoked is the set of revoked certificates as "issuer/serial";
	// legacyRevoked the set of fingerprints earlier versions kept.
	revoked, legacyRevoked string
	audit                  string
	// rolePrefix and appPrefix are role and app keys without the name,
	// for the session view's scripts (made once: they run on every
	// request).
	rolePrefix, appPrefix string
}

// newKeyspace returns the names of a store on one server or behind
// Sentinel, or on a Cluster.
func newKeyspace(cluster bool) keyspace {
	k := keyspace{cluster: cluster}
	k.accounts = k.global("accounts", "accounts")
	k.accountNames = k.global("accounts", "account-names")
	k.emails = k.global("accounts", "account-emails")
	k.roles = k.global("config", "roles")
	k.apps = k.global("config", "apps")
	k.certs = k.global("certs", "certs")
	k.certsByIssue = k.global("certs", "certs-by-issue")
	k.revoked = k.global("certs", "revoked-certs")
	k.legacyRevoked = k.global("certs", "revoked")
	k.audit = keyPrefix + "audit"
	k.rolePrefix = k.global("config", "role:")
	k.appPrefix = k.global("config", "app:")
	return k
}

// global names a key of group (the hash tag on a Cluster).
func (k keyspace) global(group, name string) string {
	if k.cluster {
		return keyPrefix + "{" + group + "}:" + name
	}
	return keyPrefix + name
}

// inShard names a key of the shard (the hash tag on a Cluster).
func (k keyspace) inShard(shard, name string) string {
	if k.cluster {
		return keyPrefix + "{" + shard + "}:" + name
	}
	return keyPrefix + name
}

func (k keyspace) account(name string) string { return k.inShard(store.Shard(name), "account:"+name) }
func (k keyspace) role(name string) string    { return k.global("config", "role:"+name) }
func (k keyspace) app(name string) string     { return k.global("config", "app:"+name) }
func (k keyspace) cert(serial string) string  { return k.global("certs", "cert:"+serial) }

// session is in the shard its ID names; an ID of another form (made
// before IDs named shards) in a shard of its own.
func (k keyspace) session(id string) string {
	shard, ok := store.SessionShard(id)
	if !ok {
		shard = store.Shard(id)
	}
	return k.inShard(shard, "session:"+id)
}

// accountPrefix is account(name) without the name, for the session
// script, which reads the account of the session it finds; the shard is
// the session's.
func (k keyspace) accountPrefix(sessionID string) string {
	if !k.cluster {
		return keyPrefix + "account:"
	}
	shard, ok := store.SessionShard(sessionID)
	if !ok {
		shard = store.Shard(sessionID)
	}
	return k.inShard(shard, "account:")
}

// userSessions is the set of a user's session IDs: what
// DeleteUserSessions ends. sessionsOf is the sorted set of sessionMember
// of the same sessions, for paging in order.
func (k keyspace) userSessions(name string) string {
	return k.inShard(store.Shard(name), "user-sessions:"+name)
}
func (k keyspace) sessionsOf(name string) string {
	return k.inShard(store.Shard(name), "sessions-of:"+name)
}

// certsOf is the sorted set of issueMember of a user's certificates.
func (k keyspace) certsOf(name string) string { return k.global("certs", "certs-of:"+name) }

// marker is the marker of a shard (store.Store.Mark). One server or
// Sentinel has one marker for everything; a Cluster one per shard, so
// that a server that lost its data is noticed for the shards it held.
func (k keyspace) marker(shard string) string {
	if k.cluster {
		return keyPrefix + "{" + shard + "}:marker"
	}
	return keyPrefix + "marker"
}

// emailClaim and emailLease are the keys of one email's claim (the name
// of the account that has it) and lease (a claim being changed): see
// claims.go. Their tag is a hash of the email, so that any email makes a
// valid tag.
func (k keyspace) emailClaim(email string) string { return k.emailKey(email, "email:") }
func (k keyspace) emailLease(email string) string { return k.emailKey(email, "email-lease:") }

func (k keyspace) emailKey(email, kind string) string {
	sum := sha256.Sum256([]byte(email))
	return keyPrefix + "{e:" + hex.EncodeToString(sum[:8]) + "}:" + kind + email
}

func (k keyspace) totpStep(user string, step int64) string {
	return fmt.Sprintf("%stotp-used:%s:%d", keyPrefix, user, step)
}
func (k keyspace) failure(key string) string { return keyPrefix + "failures:" + key }
func (k keyspace) meta(name string) string   { return keyPrefix + "meta:" + name }
func (k keyspace) counter(name string) string {
	return keyPrefix + "counter:" + name
}
func (k keyspace) claim(key string) string { return keyPrefix + "claim:" + key }
