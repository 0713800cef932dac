package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
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
//   - An instance whose feed is connected holds a lease: a key of its
//     own (fence:lease:ID, a new ID each time it takes one), listed in
//     the set fence:holders. Its value V says: this instance has handled
//     the reports of every write whose fence number is V or less.
//   - Every process that writes through a Store made by Open (instances,
//     the command line) fences each write that touches a cached record
//     (fenceHook): it takes the next fence number n (INCR fence:seq),
//     publishes it on fenceChannel, and returns only once every listed
//     lease's value is n or more, or once no listed instance can still
//     rely on its lease. The write completed before the INCR, so its
//     report reached each feed's connection before the published number
//     did: a feed that read n has handled the write, and confirms by
//     setting its lease to n.
//   - An instance takes or renews its lease in three steps: it lists the
//     lease (creating the key if new) and reads fence:seq as S; it waits
//     for a read barrier; it sets the key to the larger of S and what it
//     confirmed, in a transaction that checks the lease is still listed.
//     Only then does it answer from memory without a PING, for
//     leaseTTL - leaseMargin from when it sent that transaction. It
//     gives up a renewal whose third step would leave more than
//     leaseStep after its first. A writer that did not find the lease
//     listed finished before the listing, hence before the barrier.
//   - So a renewal that left a value under n had read S before the
//     writer's INCR, and sent its third step within leaseStep of that:
//     the instance relies on it until before INCR + leaseStep + leaseTTL
//   - leaseMargin, by its own clock. A writer that has not seen a
//     listed lease confirm n waits until INCR + leaseStep + leaseTTL by
//     its own clock, and then no longer lists it: the instance takes a
//     new lease. Redis's clock (a key's expiry) decides nothing: a
//     missing key is waited out as one that does not confirm.
//   - When the feed's connection is lost or the feed closes, the
//     instance stops relying on its lease at once, and gives it up: the
//     key is set to releasedLease ("confirms everything") and unlisted,
//     so writers stop waiting for it.
//
// So after a write that touches a cached record returns, no instance
// answers from memory that the write made stale: the guarantee of the
// read barrier, for writes made by this version's store. A process that
// writes without fencing (an earlier version during an upgrade,
// redis-cli) is seen once its report arrives, a fraction of a
// millisecond later. A writer waits at most about leaseStep + leaseTTL,
// for an instance that stopped without giving up its lease.
//
// What the lease assumes, unlike the barrier: that each instance's
// monotonic clock runs at the rate of the writer's, within leaseMargin
// over leaseStep + leaseTTL. A machine whose clocks stop while it is
// paused (a virtual machine suspended or restored from a snapshot) could
// answer one request from memory, on waking, before reading a report
// that waits in its socket; held checks the wall clock as well, which a
// hypervisor or NTP sets right on waking. serve --store-lease=false
// keeps the read barrier on every request for such hosts.
const (
	// leaseTTL is how long after its renewal an instance relies on a
	// lease (less leaseMargin) and its key lives in Redis; leaseRenew
	// is how often it is renewed; leaseStep bounds a renewal from its
	// first step to its third.
	leaseTTL    = 3 * time.Second
	leaseRenew  = time.Second
	leaseStep   = time.Second
	leaseMargin = 500 * time.Millisecond
	// releasedLease is the value of a lease given up: a writer need not
	// wait for it.
	releasedLease = math.MaxInt64
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
// process completed before the call, or can no longer rely on its lease
// (see the top of this file).
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
	// The INCR ran before this moment: every lease that will not
	// confirm n is relied on until before deadline.
	deadline := time.Now().Add(leaseStep + leaseTTL)
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
	pause := 50 * time.Microsecond
	for {
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return wrap("confirm the change with the portal instances", err)
		}
		waiting, waitingKeys := ids[:0:0], keys[:0:0]
		for i, v := range vals {
			str, _ := v.(string) // a missing key confirms nothing
			if got, err := strconv.ParseInt(str, 10, 64); err != nil || got < n {
				waiting, waitingKeys = append(waiting, ids[i]), append(waitingKeys, keys[i])
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			// None of them relies on its lease any more, and with it
			// unlisted none can renew it: each takes a new one, listed
			// before its barrier.
			gone := make([]any, len(waiting))
			for i, id := range waiting {
				gone[i] = id
			}
			if err := s.rdb.SRem(ctx, s.k.fenceHolders(), gone...).Err(); err != nil {
				return wrap("confirm the change with the portal instances", err)
			}
			return nil
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
	base, baseWall time.Time
	// until is when the lease stops being relied on, in nanoseconds
	// since base; 0 when it is not held. It is set under the feed's mu
	// (with the feed's epoch checked) and cleared there too.
	until atomic.Int64
	// seen is the highest fence number read on the feed.
	seen atomic.Int64
	// ack and renew wake the keeper (one-place buffers).
	ack, renew chan struct{}
}

func newLease() *lease {
	now := time.Now()
	return &lease{base: now, baseWall: now.Round(0), ack: make(chan struct{}, 1), renew: make(chan struct{}, 1)}
}

// held reports whether the cache may answer without a read barrier: by
// the monotonic clock and by the wall clock, which a hypervisor or NTP
// moves on when a paused machine wakes.
func (l *lease) held() bool {
	u := l.until.Load()
	if u == 0 {
		return false
	}
	now := time.Now()
	return int64(now.Sub(l.base)) < u && int64(now.Round(0).Sub(l.baseWall)) < u
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

// keep takes, renews and gives up the lease, and confirms the fence
// numbers the feed reads, until the feed closes. It alone writes the
// lease's keys.
func (f *trackingFeed) keep() {
	defer close(f.kept)
	l := f.lease
	tick := time.NewTicker(leaseRenew)
	defer tick.Stop()
	id := rand.Text()
	var confirmed int64
	f.mu.Lock()
	epoch := f.epoch
	f.mu.Unlock()
	for {
		select {
		case <-f.ctx.Done():
			f.giveUp(id)
			return
		case <-l.ack:
			if v := l.seen.Load(); v > confirmed {
				ctx, cancel := context.WithTimeout(f.ctx, writeTimeout)
				// XX: a confirmation never makes a key; KEEPTTL: nor
				// does it keep one alive.
				if err := f.client.SetXX(ctx, f.k.lease(id), v, redis.KeepTTL).Err(); err == nil {
					confirmed = v
				}
				cancel()
			}
			continue
		case <-l.renew:
		case <-tick.C:
		}
		f.mu.Lock()
		dropped := f.epoch != epoch
		epoch = f.epoch
		f.mu.Unlock()
		if dropped {
			// The feed was replaced since (or the lease not renewed in
			// time): give this lease up, and take a new one.
			f.giveUp(id)
			id = rand.Text()
		}
		if v, ok := f.renew(id, epoch, confirmed); ok {
			confirmed = v
		} else if v == 0 {
			// Not listed any more (a writer waited it out): a new one.
			f.giveUp(id)
			id = rand.Text()
		}
	}
}

// renew runs the three steps that take or renew lease id (see the top of
// this file). ok is false when the lease is not held afterwards; v is
// then 0 if the lease cannot be renewed and must be replaced, and 1 if
// it may be tried again.
func (f *trackingFeed) renew(id string, epoch uint64, confirmed int64) (v int64, ok bool) {
	l := f.lease
	f.mu.Lock()
	alive := f.alive && f.epoch == epoch
	f.mu.Unlock()
	if !alive {
		return 1, false
	}
	ctx, cancel := context.WithTimeout(f.ctx, leaseStep)
	defer cancel()
	key := f.k.lease(id)
	first := time.Now()
	var seq *redis.StringCmd
	if _, err := f.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, f.k.fenceHolders(), id)
		p.SetNX(ctx, key, max(confirmed, l.seen.Load()), leaseTTL)
		seq = p.Get(ctx, f.k.fenceSeq())
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return 1, false
	}
	s, _ := strconv.ParseInt(seq.Val(), 10, 64)
	if err := f.Barrier(ctx); err != nil {
		return 1, false
	}
	v = max(confirmed, l.seen.Load(), s)
	third := time.Now()
	if third.Sub(first) > leaseStep {
		return 1, false
	}
	var listed, set *redis.BoolCmd
	if _, err := f.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		listed = p.SIsMember(ctx, f.k.fenceHolders(), id)
		set = p.SetXX(ctx, key, v, leaseTTL)
		return nil
	}); err != nil {
		return 1, false
	}
	if !listed.Val() || !set.Val() {
		return 0, false
	}
	f.mu.Lock()
	if f.alive && f.epoch == epoch {
		l.until.Store(int64(third.Sub(l.base) + leaseTTL - leaseMargin))
	}
	f.mu.Unlock()
	return v, true
}

// giveUp marks lease id given up, so that writers stop waiting for it,
// and unlists it. The lease is no longer relied on (dropLeaseLocked ran
// before, or it never was), and id is not used again.
func (f *trackingFeed) giveUp(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	f.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, f.k.lease(id), int64(releasedLease), leaseTTL)
		p.SRem(ctx, f.k.fenceHolders(), id)
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
