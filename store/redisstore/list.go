package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
)

// Listings page through sorted sets whose members all have the score 0,
// so that Redis orders them by their bytes and ZRANGE BYLEX finds the
// member after a position in O(log n): a page costs the same whatever
// comes before it. A member that sorts by time starts with timeHex.

// timeHex is t as 16 hex digits of Unix nanoseconds, which sort like the
// times (from 1970 to 2262; earlier times, the zero time among them, sort
// first).
func timeHex(t time.Time) string {
	n := int64(0)
	if t.After(time.Unix(0, 0)) {
		n = t.UnixNano()
		if t.After(time.Unix(0, math.MaxInt64)) {
			n = math.MaxInt64
		}
	}
	return fmt.Sprintf("%016x", n)
}

// parseTimeHex splits a member made with timeHex into its time and the
// rest.
func parseTimeHex(member string) (time.Time, string, error) {
	if len(member) < 16 {
		return time.Time{}, "", fmt.Errorf("index member %q is too short", member)
	}
	n, err := strconv.ParseUint(member[:16], 16, 63)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("index member %q: %w", member, err)
	}
	return time.Unix(0, int64(n)).UTC(), member[16:], nil
}

// sessionMember is a session's member of its user's sessionsOf set.
func sessionMember(s store.Session) string { return timeHex(s.CreatedAt) + s.ID }

// issueMember is a certificate's member of certsByIssue and certsOf.
func issueMember(c store.Certificate) string { return timeHex(c.IssuedAt) + c.Serial }

// after is the ZRANGE BYLEX start just past member, or the beginning.
func after(member string) string {
	if member == "" {
		return "-"
	}
	return "(" + member
}

// rangeLex returns up to n members of the sorted set at key after the
// member start (see after).
func rangeLex(ctx context.Context, rdb redis.Cmdable, key, start string, n int) *redis.StringSliceCmd {
	return rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: key, Start: start, Stop: "+", ByLex: true, Count: int64(n)})
}

// getRecords reads the JSON records at keys in one pipeline (the keys
// may live on different servers of a Cluster): vals[i] is the record at
// keys[i] when found[i]. A record can be gone: expired, or deleted since
// its index was read.
func getRecords[T any](ctx context.Context, rdb redis.Cmdable, op string, keys []string) (vals []T, found []bool, err error) {
	if len(keys) == 0 {
		return nil, nil, nil
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, wrap(op, err)
	}
	found = make([]bool, len(keys))
	vals = make([]T, len(keys))
	for i, c := range cmds {
		b, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, nil, wrap(op, err)
		}
		if err := json.Unmarshal(b, &vals[i]); err != nil {
			return nil, nil, fmt.Errorf("%s: decode %s: %w", op, keys[i], err)
		}
		found[i] = true
	}
	return vals, found, nil
}

// present is the records getRecords found, in order.
func present[T any](vals []T, found []bool) []T {
	out := make([]T, 0, len(vals))
	for i, ok := range found {
		if ok {
			out = append(out, vals[i])
		}
	}
	return out
}

// forget drops from the sorted set at key the members whose records
// getRecords did not find: best effort, the next page tries again.
func forget(ctx context.Context, rdb redis.Cmdable, key string, members []string, found []bool) {
	var gone []any
	for i, ok := range found {
		if !ok {
			gone = append(gone, members[i])
		}
	}
	if len(gone) > 0 {
		rdb.ZRem(ctx, key, gone...)
	}
}

// ListAccounts returns a page of accounts by name, from accountNames.
func (s *Store) ListAccounts(ctx context.Context, q store.ListQuery) (store.Page[store.Account], error) {
	var page store.Page[store.Account]
	var pos store.AccountPosition
	if q.Cursor != "" {
		if err := store.ParseCursor(store.AccountCursor, q.Cursor, &pos); err != nil {
			return page, fmt.Errorf("list accounts: %w", err)
		}
	}
	limit := q.PageLimit()
	names, err := rangeLex(ctx, s.rdb, s.k.accountNames, after(pos.Name), limit+1).Result()
	if err != nil {
		return page, wrap("list accounts", err)
	}
	if len(names) > limit {
		names = names[:limit]
		page.Next = store.Cursor(store.AccountCursor, store.AccountPosition{Name: names[limit-1]})
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = s.k.account(n)
	}
	vals, found, err := getRecords[store.Account](ctx, s.rdb, "list accounts", keys)
	if err != nil {
		return page, err
	}
	page.Items = present(vals, found)
	// On a Cluster an account's name is listed before its record is
	// written, on another server (createInCluster): a listing between
	// the two that dropped the name would hide the account from every
	// later listing and from Accounts. There a name without a record is
	// skipped, never dropped; DeleteAccount drops its own. On one server
	// both are written in one transaction.
	if !s.k.cluster {
		forget(ctx, s.rdb, s.k.accountNames, names, found)
	}
	return page, nil
}

// ListCertificates returns a page of certificates in the order (issued
// at, serial), from certsByIssue or the user's certsOf.
func (s *Store) ListCertificates(ctx context.Context, q store.ListQuery) (store.Page[store.Certificate], error) {
	var page store.Page[store.Certificate]
	var pos store.CertificatePosition
	start := "-"
	if q.Cursor != "" {
		if err := store.ParseCursor(store.CertificateCursor, q.Cursor, &pos); err != nil {
			return page, fmt.Errorf("list certificates: %w", err)
		}
		start = after(issueMember(store.Certificate{IssuedAt: pos.IssuedAt, Serial: pos.Serial}))
	}
	index := s.k.certsByIssue
	if q.User != "" {
		index = s.k.certsOf(q.User)
	}
	limit := q.PageLimit()
	members, err := rangeLex(ctx, s.rdb, index, start, limit+1).Result()
	if err != nil {
		return page, wrap("list certificates", err)
	}
	if len(members) > limit {
		members = members[:limit]
		issued, serial, err := parseTimeHex(members[limit-1])
		if err != nil {
			return page, fmt.Errorf("list certificates: %w", err)
		}
		page.Next = store.Cursor(store.CertificateCursor, store.CertificatePosition{IssuedAt: issued, Serial: serial})
	}
	keys := make([]string, len(members))
	for i, m := range members {
		_, serial, err := parseTimeHex(m)
		if err != nil {
			return page, fmt.Errorf("list certificates: %w", err)
		}
		keys[i] = s.k.cert(serial)
	}
	vals, found, err := getRecords[store.Certificate](ctx, s.rdb, "list certificates", keys)
	if err != nil {
		return page, err
	}
	// A member left behind by a record that was replaced (another issue
	// time or user) does not list it again.
	for i, ok := range found {
		if ok && (issueMember(vals[i]) != members[i] || q.User != "" && vals[i].User != q.User) {
			found[i] = false
		}
	}
	page.Items = present(vals, found)
	forget(ctx, s.rdb, index, members, found)
	return page, nil
}

// Bounds on the work of one page of every account's sessions: accounts
// are looked at sessionUsersBatch at a time (one pipeline), and at most
// maxSessionUsers of them per page, so that a page among many accounts
// without sessions ends early, short, with a Next.
const (
	sessionUsersBatch = 100
	maxSessionUsers   = 2000
)

// sessionEntry is a member of a user's sessionsOf set.
type sessionEntry struct{ user, member string }

// ListSessions returns a page of live sessions in the order (user,
// created at, ID): one user's, from that user's sessionsOf set, or every
// account's, walking accountNames and each account's set in turn.
func (s *Store) ListSessions(ctx context.Context, q store.ListQuery) (store.Page[store.Session], error) {
	var page store.Page[store.Session]
	var pos store.SessionPosition
	if q.Cursor != "" {
		if err := store.ParseCursor(store.SessionCursor, q.Cursor, &pos); err != nil {
			return page, fmt.Errorf("list sessions: %w", err)
		}
		if q.User != "" && pos.User != q.User {
			return page, fmt.Errorf("list sessions: a cursor of another account's list: %w", store.ErrBadCursor)
		}
	}
	limit := q.PageLimit()
	var entries []sessionEntry // up to limit+1: the last one only says there is more
	add := func(user string, members []string) {
		for _, m := range members {
			if len(entries) > limit {
				return
			}
			entries = append(entries, sessionEntry{user, m})
		}
	}
	done := false // every session that comes after pos was seen
	if q.Cursor != "" && !pos.UserDone || q.User != "" && !pos.UserDone {
		user, start := pos.User, after(sessionMember(store.Session{CreatedAt: pos.CreatedAt, ID: pos.ID}))
		if q.Cursor == "" {
			user, start = q.User, "-"
		}
		members, err := rangeLex(ctx, s.rdb, s.k.sessionsOf(user), start, limit+1).Result()
		if err != nil {
			return page, wrap("list sessions", err)
		}
		add(user, members)
	}
	if q.User != "" {
		done = true
	}
	lastUser := pos.User
	for looked := 0; !done && len(entries) <= limit && looked < maxSessionUsers; {
		names, err := rangeLex(ctx, s.rdb, s.k.accountNames, after(lastUser), sessionUsersBatch).Result()
		if err != nil {
			return page, wrap("list sessions", err)
		}
		cmds := make([]*redis.StringSliceCmd, len(names))
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, n := range names {
				cmds[i] = rangeLex(ctx, p, s.k.sessionsOf(n), "-", limit+1-len(entries))
			}
			return nil
		})
		if err != nil {
			return page, wrap("list sessions", err)
		}
		for i, n := range names {
			if len(entries) > limit {
				break
			}
			add(n, cmds[i].Val())
			lastUser = n
			looked++
		}
		if len(names) < sessionUsersBatch && len(entries) <= limit {
			done = true
		}
	}
	switch {
	case len(entries) > limit:
		entries = entries[:limit]
		last := entries[limit-1]
		created, id, err := parseTimeHex(last.member)
		if err != nil {
			return page, fmt.Errorf("list sessions: %w", err)
		}
		page.Next = store.Cursor(store.SessionCursor, store.SessionPosition{User: last.user, CreatedAt: created, ID: id})
	case !done:
		page.Next = store.Cursor(store.SessionCursor, store.SessionPosition{User: lastUser, UserDone: true})
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = s.k.session(e.member[16:])
	}
	vals, found, err := getRecords[store.Session](ctx, s.rdb, "list sessions", keys)
	if err != nil {
		return page, err
	}
	// Sessions that expired leave their member behind, and a session
	// written again with another creation time leaves its old one: drop
	// them.
	for i, ok := range found {
		if ok && (sessionMember(vals[i]) != entries[i].member || vals[i].User != entries[i].user) {
			found[i] = false
		}
		if !found[i] {
			s.rdb.ZRem(ctx, s.k.sessionsOf(entries[i].user), entries[i].member)
		}
	}
	page.Items = present(vals, found)
	return page, nil
}

// sessionsListedMark is the meta record that says every user's
// sessionsOf set covers the sessions written before it existed.
const sessionsListedMark = "sessions-listed"

// indexForPaging brings the sorted sets that listings page through up
// to date with what earlier versions wrote, when the store is opened:
// account names and certificates whenever their counts differ from the
// sets earlier versions keep (instances of an earlier version may have
// written some during a rolling upgrade), users' sessions once per store.
// Until then, the only loss is that a listing leaves those records out.
// No earlier version ran on a Cluster, which keeps no set of account
// names: there only certificates (whose set it keeps) are checked.
func (s *Store) indexForPaging(ctx context.Context) error {
	var names, listed, certs, byIssue *redis.IntCmd
	var sessionsDone *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		names, listed = p.SCard(ctx, s.k.accounts), p.ZCard(ctx, s.k.accountNames)
		certs, byIssue = p.SCard(ctx, s.k.certs), p.ZCard(ctx, s.k.certsByIssue)
		sessionsDone = p.Exists(ctx, s.k.meta(sessionsListedMark))
		return nil
	})
	if err != nil {
		return wrap("check the listing indexes", err)
	}
	if names.Val() != listed.Val() && !s.k.cluster {
		if err := s.indexAccountNames(ctx); err != nil {
			return err
		}
	}
	if certs.Val() != byIssue.Val() {
		all, err := s.Certificates(ctx, "")
		if err != nil {
			return fmt.Errorf("index certificates: %w", err)
		}
		for batch := range slices.Chunk(all, indexBatch) {
			_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, c := range batch {
					p.ZAdd(ctx, s.k.certsByIssue, redis.Z{Member: issueMember(c)})
					p.ZAdd(ctx, s.k.certsOf(c.User), redis.Z{Member: issueMember(c)})
				}
				return nil
			})
			if err != nil {
				return wrap("index certificates", err)
			}
		}
	}
	if sessionsDone.Val() == 0 && !s.k.cluster {
		if err := s.indexSessions(ctx); err != nil {
			return err
		}
	}
	return nil
}

// indexBatch is how many records one pipeline of an index build writes.
const indexBatch = 1000

// indexAccountNames makes accountNames hold exactly the names in the
// accounts set.
func (s *Store) indexAccountNames(ctx context.Context) error {
	names, err := s.rdb.SMembers(ctx, s.k.accounts).Result()
	if err != nil {
		return wrap("index account names", err)
	}
	in := make(map[string]bool, len(names))
	for batch := range slices.Chunk(names, indexBatch) {
		z := make([]redis.Z, len(batch))
		for i, n := range batch {
			z[i], in[n] = redis.Z{Member: n}, true
		}
		if err := s.rdb.ZAdd(ctx, s.k.accountNames, z...).Err(); err != nil {
			return wrap("index account names", err)
		}
	}
	listed, err := s.rdb.ZRange(ctx, s.k.accountNames, 0, -1).Result()
	if err != nil {
		return wrap("index account names", err)
	}
	var gone []any
	for _, n := range listed {
		if !in[n] {
			gone = append(gone, n)
		}
	}
	for batch := range slices.Chunk(gone, indexBatch) {
		if err := s.rdb.ZRem(ctx, s.k.accountNames, batch...).Err(); err != nil {
			return wrap("index account names", err)
		}
	}
	return nil
}

// indexSessions adds the live sessions of every account, as earlier
// versions indexed them (a set of IDs per user), to the users' sorted
// sets, a batch of accounts at a time, and marks the store done.
func (s *Store) indexSessions(ctx context.Context) error {
	last := ""
	for {
		names, err := rangeLex(ctx, s.rdb, s.k.accountNames, after(last), sessionUsersBatch).Result()
		if err != nil {
			return wrap("index sessions", err)
		}
		sets := make([]*redis.StringSliceCmd, len(names))
		ttls := make([]*redis.DurationCmd, len(names))
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, n := range names {
				sets[i], ttls[i] = p.SMembers(ctx, s.k.userSessions(n)), p.PTTL(ctx, s.k.userSessions(n))
			}
			return nil
		})
		if err != nil {
			return wrap("index sessions", err)
		}
		for i, n := range names {
			if len(sets[i].Val()) == 0 {
				continue
			}
			keys := make([]string, len(sets[i].Val()))
			for j, id := range sets[i].Val() {
				keys[j] = s.k.session(id)
			}
			vals, found, err := getRecords[store.Session](ctx, s.rdb, "index sessions", keys)
			if err != nil {
				return err
			}
			var z []redis.Z
			for j, ok := range found {
				if ok {
					z = append(z, redis.Z{Member: sessionMember(vals[j])})
				}
			}
			if len(z) == 0 {
				continue
			}
			_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.ZAdd(ctx, s.k.sessionsOf(n), z...)
				if ttl := ttls[i].Val(); ttl > 0 {
					p.PExpire(ctx, s.k.sessionsOf(n), ttl)
				}
				return nil
			})
			if err != nil {
				return wrap("index sessions", err)
			}
		}
		if len(names) < sessionUsersBatch {
			break
		}
		last = names[len(names)-1]
	}
	if err := s.rdb.Set(ctx, s.k.meta(sessionsListedMark), "1", 0).Err(); err != nil {
		return wrap("index sessions", err)
	}
	return nil
}
