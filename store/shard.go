package store

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
)

// Shards is how many parts a store spread over several servers (Redis
// Cluster) divides accounts into. An account's records, its sessions and
// its indexes live in its shard, so that what is written or read
// together is on one server, and 1,024 shards spread the accounts over
// any number of servers a login portal would use.
const Shards = 1024

// Shard returns the shard of the account name: three hex digits.
func Shard(name string) string {
	sum := sha256.Sum256([]byte("gatehouse shard:" + name))
	return fmt.Sprintf("%03x", binary.BigEndian.Uint16(sum[:2])%Shards)
}

// ShardNumber is shard i of Shards in Shard's form.
func ShardNumber(i int) string { return fmt.Sprintf("%03x", i%Shards) }

// SessionID returns the ID of a session of user made from random (URL-safe
// text with at least 128 bits of randomness): user's shard, a dot, and
// random. The shard in the ID lets a store find the session's server, and
// the account's beside it, from the ID alone: one read serves a request.
func SessionID(user, random string) string { return Shard(user) + "." + random }

// SessionShard returns the shard an ID made by SessionID names, and
// false for an ID of another form.
func SessionShard(id string) (string, bool) {
	shard, rest, ok := strings.Cut(id, ".")
	if !ok || len(shard) != 3 || rest == "" || strings.Trim(shard, "0123456789abcdef") != "" || shard > ShardNumber(Shards-1) {
		return "", false
	}
	return shard, true
}
