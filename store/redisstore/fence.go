package redisstore

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
)

// Leases and write fences: on one Redis server (not behind Sentinel, not
// on a Cluster) the cache answers without a round trip to Redis, and
// revocation still takes effect at once on every instance, because the
// writer waits instead of the reader.
//
// The read barrier (tracking.go) costs every request on every instance
// a share of a PING round. A write that must be seen at once is rare, so
// the wait moves to it:
//
//   - Every instance whose feed is connected holds a lease: a key of its
//     own (fence:lease:ID) that expires after leaseTTL, listed in the set
//     fence:holders. Its value V says: this instance has handled the
//     reports of every write whose fence number is V or less.
//   - Every process that writes through a Store made by Open (instances,
//     the command line) fences each write that touches a cached record
//     (fenceHook): it takes the next fence number n (INCR fence:seq),
//     publishes it on fenceChannel, and returns only once every lease
//     holder's value is n or more, or its lease has gone. The write
//     completed before the INCR, so its report reached each feed's
//     connection before the published number did: a feed that read n has
//     handled the write, and confirms by setting its lease to n.
//   - An instance answers from memory without a PING only while its
//     lease is held, and stops leaseMargin before the key can expire in
//     Redis: a writer that found the key gone does not wait for an
//     instance that still answers from memory.
//   - A lease is renewed every leaseRenew: listed and created (if gone)
//     first, then the feed's read barrier, then the key's expiry is
//     extended, with the fence number read before the barrier, in one
//     transaction that also checks the listing. A writer that found no
//     holders had finished before that listing, hence before the
//     barrier that vouches for the renewal.
//   - When the feed's connection is lost, or Redis is flushed, the
//     lease is dropped at once and given up in Redis: until it is held
//     again the cache goes back to the read barrier.
//
// So after a write that touches a cached record returns, no instance
// answers from memory that the write made stale: the guarantee of the
// read barrier, for writes made by this version's store. A process that
// writes without fencing (an earlier version during an upgrade, redis-cli)
// is seen once its report arrives, a fraction of a millisecond later.
// A writer waits at most about leaseTTL for an instance that stopped
// without giving up its lease, and fails (store.ErrUnavailable) after
// fenceTimeout: the write is made, but not known to be in effect
// everywhere.
const (
	// leaseTTL is how long a lease key lives in Redis after its last
	// renewal; leaseRenew how often it is renewed; leaseMargin how long
	// before its expiry an instance stops relying on it (clock rates,
	// and the time its renewal took to reach Redis, which only makes
	// the key live longer).
	leaseTTL    = 3 * time.Second
	leaseRenew  = time.Second
	leaseMargin = 500 * time.Millisecond
	// fenceTimeout bounds a writer's wait for the instances.
	fenceTimeout = 10 * time.Second
	// fenceChannel is where fence numbers are published.
	fenceChannel = keyPrefix + "fence"
)

func (k keyspace) fenceSeq() string       { return keyPrefix + "fence:seq" }
func (k keyspace) fenceHolders() string   { return keyPrefix + "fence:holders" }
func (k keyspace) lease(id string) string { return keyPrefix + "fence:lease:" + id }

// fenceHook fences every command, pipeline or transaction that may have
// written a key a cached record is read from (writesCached).
type fenceHook struct{ s *Store }

func (h fenceHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h fenceHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !writesCached(cmd) {
			return err
		}
		return h.after(ctx, err)
	}
}

func (h fenceHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if writesCached(cmd) {
				return h.after(ctx, err)
			}
		}
		return err
	}
}

// after fences a write that returned err. A transaction that WATCH
// stopped wrote nothing; any other failure may have come after the
// write was made, so it is fenced too. A failed fence fails a write
// that succeeded.
func (h fenceHook) after(ctx context.Context, err error) error {
	if errors.Is(err, redis.TxFailedErr) {
		return err
	}
	if ferr := h.s.fence(ctx); ferr != nil && err == nil {
		return ferr
	}
	return err
}

// readCommands write nothing: their keys need no fence.
var readCommands = map[string]bool{
	"get": true, "mget": true, "exists": true, "type": true, "ttl": true, "pttl": true, "strlen": true,
	"hget": true, "hmget": true, "hgetall": true, "hexists": true, "hlen": true, "hkeys": true, "hvals": true,
	"smembers": true, "sismember": true, "smismember": true, "scard": true, "srandmember": true,
	"zrange": true, "zrangebyscore": true, "zrangebylex": true, "zrevrange": true, "zrevrangebyscore": true,
	"zrevrangebylex": true, "zscore": true, "zmscore": true, "zcard": true, "zcount": true, "zlexcount": true,
	"zrank": true, "zrevrank": true, "lrange": true, "llen": true, "lindex": true,
	"xrange": true, "xrevrange": true, "xlen": true, "scan": true, "sscan": true, "hscan": true, "zscan": true,
	"watch": true, "unwatch": true, "dump": true,
}

// readScripts are the hashes of the scripts that only read.
var readScripts = map[string]bool{viewScript.Hash(): true, sessionScript.Hash(): true, configScript.Hash(): true}

// writesCached reports whether cmd may write a key that a cached record
// is read from (changeOf). Any command that is not known to only read
// counts, with any argument that names such a key: a value that looks
// like a key name costs a fence, never a missed one.
func writesCached(cmd redis.Cmder) bool {
	args := cmd.Args()
	name := cmd.Name()
	if len(args) < 2 || readCommands[name] {
		return false
	}
	switch name {
	case "evalsha", "evalsha_ro":
		if h, ok := args[1].(string); ok && readScripts[h] {
			return false
		}
	case "eval", "eval_ro":
		if src, ok := args[1].(string); ok && readScripts[fmt.Sprintf("%x", sha1.Sum([]byte(src)))] {
			return false
		}
	}
	for _, a := range args[1:] {
		key, ok := a.(string)
		if !ok || !strings.HasPrefix(key, keyPrefix) {
			continue
		}
		if _, cached := changeOf(key); cached {
			return true
		}
	}
	return false
}

// fence returns once every lease holder has handled the writes this
// process completed before the call (see the top of this file).
func (s *Store) fence(ctx context.Context) error {
	var holders *redis.StringSliceCmd
	var seq *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		holders = p.SMembers(ctx, s.k.fenceHolders())
		seq = p.Incr(ctx, s.k.fenceSeq())
		return nil
	})
	if err != nil {
		return wrap("confirm the change with the portal instances", err)
	}
	ids := holders.Val()
	if len(ids) == 0 {
		return nil
	}
	n := seq.Val()
	if err := s.rdb.Publish(ctx, fenceChannel, n).Err(); err != nil {
		return wrap("confirm the change with the portal instances", err)
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.k.lease(id)
	}
	deadline := time.Now().Add(fenceTimeout)
	pause := 50 * time.Microsecond
	for {
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return wrap("confirm the change with the portal instances", err)
		}
		waiting, gone := ids[:0:0], []any(nil)
		waitingKeys := keys[:0:0]
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				gone = append(gone, ids[i])
				continue
			}
			if got, err := strconv.ParseInt(str, 10, 64); err != nil || got < n {
				waiting, waitingKeys = append(waiting, ids[i]), append(waitingKeys, keys[i])
			}
		}
		if len(gone) > 0 {
			// A holder whose lease expired stopped answering from
			// memory before it did; it lists itself again when it
			// renews. Best effort: a stale entry only costs a GET.
			s.rdb.SRem(ctx, s.k.fenceHolders(), gone...)
		}
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("confirm the change with the portal instances: %w: %d of them did not confirm within %v (%s)",
				store.ErrUnavailable, len(waiting), fenceTimeout, strings.Join(waiting, ", "))
		}
		ids, keys = waiting, waitingKeys
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// lease is an instance's lease (see the top of this file).
type lease struct {
	id   string
	base time.Time
	// until is when the lease stops being relied on, in nanoseconds
	// since base; 0 when it is not held. It is set under the feed's mu
	// (with the feed's epoch checked) and cleared there too.
	until atomic.Int64
	// seen is the highest fence number read on the feed.
	seen atomic.Int64
	// ack and renew wake the keeper (one-place buffers).
	ack, renew chan struct{}
}

func newLease(id string) *lease {
	return &lease{id: id, base: time.Now(), ack: make(chan struct{}, 1), renew: make(chan struct{}, 1)}
}

// held reports whether the cache may answer without a read barrier.
func (l *lease) held() bool {
	u := l.until.Load()
	return u != 0 && int64(time.Since(l.base)) < u
}

// saw records fence number n, read on the feed after the reports before
// it were handled, and wakes the keeper to confirm it.
func (l *lease) saw(n int64) {
	for {
		old := l.seen.Load()
		if n <= old || l.seen.CompareAndSwap(old, n) {
			break
		}
	}
	wake(l.ack)
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// keep confirms fence numbers and renews the lease until the feed
// closes, then gives the lease up.
func (f *trackingFeed) keep() {
	defer close(f.kept)
	l := f.lease
	tick := time.NewTicker(leaseRenew)
	defer tick.Stop()
	var confirmed int64
	for {
		select {
		case <-f.ctx.Done():
			f.giveUp()
			return
		case <-l.ack:
			if v := l.seen.Load(); v > confirmed {
				ctx, cancel := context.WithTimeout(f.ctx, writeTimeout)
				// XX: a confirmation never brings back a lease that
				// expired (a writer may already have stopped waiting for
				// it); KEEPTTL: nor does it extend one.
				if err := f.client.SetXX(ctx, f.k.lease(l.id), v, redis.KeepTTL).Err(); err == nil {
					confirmed = v
				}
				cancel()
			}
		case <-l.renew:
			if !f.held() {
				f.giveUp()
			}
			confirmed = max(confirmed, f.renew(confirmed))
		case <-tick.C:
			confirmed = max(confirmed, f.renew(confirmed))
		}
	}
}

// held reports whether the lease is held, under the feed's lock.
func (f *trackingFeed) held() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lease.held()
}

// renew lists the lease and creates its key if gone, waits for a read
// barrier, then extends the key with the fence number read before the
// barrier, checking in the same transaction that the lease is still
// listed; only then is it held until leaseMargin before the key can
// expire. It returns the value the key was given (0 if none).
func (f *trackingFeed) renew(confirmed int64) int64 {
	l := f.lease
	f.mu.Lock()
	epoch, alive := f.epoch, f.alive
	f.mu.Unlock()
	if !alive {
		return 0
	}
	ctx, cancel := context.WithTimeout(f.ctx, leaseRenew)
	defer cancel()
	key := f.k.lease(l.id)
	var seq *redis.StringCmd
	if _, err := f.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, f.k.fenceHolders(), l.id)
		p.SetNX(ctx, key, max(confirmed, l.seen.Load()), leaseTTL)
		seq = p.Get(ctx, f.k.fenceSeq())
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return 0
	}
	s, _ := strconv.ParseInt(seq.Val(), 10, 64)
	if err := f.Barrier(ctx); err != nil {
		return 0
	}
	v := max(confirmed, l.seen.Load(), s)
	start := time.Now()
	var listed, set *redis.BoolCmd
	if _, err := f.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		listed = p.SIsMember(ctx, f.k.fenceHolders(), l.id)
		set = p.SetXX(ctx, key, v, leaseTTL)
		return nil
	}); err != nil || !listed.Val() || !set.Val() {
		return 0
	}
	f.mu.Lock()
	if f.alive && f.epoch == epoch {
		l.until.Store(int64(start.Sub(l.base) + leaseTTL - leaseMargin))
	}
	f.mu.Unlock()
	return v
}

// giveUp removes the lease from Redis, so that writers stop waiting for
// it; it is no longer held (dropLeaseLocked ran before).
func (f *trackingFeed) giveUp() {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	f.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, f.k.lease(f.lease.id))
		p.SRem(ctx, f.k.fenceHolders(), f.lease.id)
		return nil
	})
}

// dropLeaseLocked stops relying on the lease at once, and keeps a
// renewal in flight from relying on it again (epoch); the keeper gives
// it up in Redis.
func (f *trackingFeed) dropLeaseLocked() {
	f.epoch++
	if f.lease == nil {
		return
	}
	f.lease.until.Store(0)
	wake(f.lease.renew)
}
