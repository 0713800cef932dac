package redisstore

import (
	"fmt"
)

// keyPrefix starts every key Gatehouse writes, so that a Redis shared with
// other software stays readable.
const keyPrefix = "gatehouse:"

// keyspace names every key the store writes. The names are those earlier
// versions wrote; each is made in one place so that a change of layout is
// a change here.
type keyspace struct {
	// accounts is the set of account names (kept for instances of
	// earlier versions); accountNames the same names in a sorted set
	// (all scores 0), which lists them in order a page at a time.
	accounts, accountNames string
	// emails is a hash from store.EmailKey of an account's email to the
	// account's name, written in the same transaction as the account
	// record; it is what makes emails unique.
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
	// marker: see Store.Mark.
	marker string
}

// newKeyspace returns the names of a store on one server or behind
// Sentinel.
func newKeyspace() keyspace {
	return keyspace{
		accounts:      keyPrefix + "accounts",
		accountNames:  keyPrefix + "account-names",
		emails:        keyPrefix + "account-emails",
		roles:         keyPrefix + "roles",
		apps:          keyPrefix + "apps",
		certs:         keyPrefix + "certs",
		certsByIssue:  keyPrefix + "certs-by-issue",
		revoked:       keyPrefix + "revoked-certs",
		legacyRevoked: keyPrefix + "revoked",
		audit:         keyPrefix + "audit",
		marker:        keyPrefix + "marker",
	}
}

func (k keyspace) account(name string) string { return keyPrefix + "account:" + name }
func (k keyspace) role(name string) string    { return keyPrefix + "role:" + name }
func (k keyspace) app(name string) string     { return keyPrefix + "app:" + name }
func (k keyspace) session(id string) string   { return keyPrefix + "session:" + id }
func (k keyspace) cert(serial string) string  { return keyPrefix + "cert:" + serial }

// userSessions is the set of a user's session IDs: what
// DeleteUserSessions ends. sessionsOf is the sorted set of sessionMember
// of the same sessions, for paging in order.
func (k keyspace) userSessions(name string) string { return keyPrefix + "user-sessions:" + name }
func (k keyspace) sessionsOf(name string) string   { return keyPrefix + "sessions-of:" + name }

// certsOf is the sorted set of issueMember of a user's certificates.
func (k keyspace) certsOf(name string) string { return keyPrefix + "certs-of:" + name }

func (k keyspace) totpStep(user string, step int64) string {
	return fmt.Sprintf("%stotp-used:%s:%d", keyPrefix, user, step)
}
func (k keyspace) failure(key string) string { return keyPrefix + "failures:" + key }
func (k keyspace) meta(name string) string   { return keyPrefix + "meta:" + name }
func (k keyspace) counter(name string) string {
	return keyPrefix + "counter:" + name
}
func (k keyspace) claim(key string) string { return keyPrefix + "claim:" + key }
