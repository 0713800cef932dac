package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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
//   - An instance whose feed is connected holds a lease: a key of its
//     own (fence:lease:ID, a new ID each time it takes one), listed in
//     the set fence:holders. Its value, a mark ERA:N, says: this
//     instance has handled the reports of every write fenced up to N in
//     that era (fenceMark).
//   - Every process that writes through a Store made by Open (instances,
//     the command line) fences each write that touches a cached record
//     (fenceHook; in a transaction, once it is over: Store.watch): it
//     takes the next mark (HINCRBY on fence:seq, in the same
//     transaction as the listing of leases), publishes it on the
//     database's fenceChannel, and returns only once every listed lease
//     covers it, or once no listed instance can still rely on its lease.
//     The write completed before the count, so its report reached each
//     feed's connection before the published mark did: a feed that read
//     the mark has handled the write, and confirms by setting its lease
//     to it.
//   - An instance takes or renews its lease in three steps: it lists the
//     lease (creating the key if new) and reads the current mark S; it
//     waits for a read barrier; it sets the key to S, or a later mark it
//     has read, in a transaction that checks the lease is still listed.
//     Only then does it answer from memory without a PING, for
//     leaseTTL - leaseMargin from when it sent that transaction. It
//     gives up a renewal whose third step would leave more than
//     leaseStep after its first. A writer that did not find the lease
//     listed finished before the listing, hence before the barrier.
//   - So a renewal that left a value short of a writer's mark had read S
//     before the writer's count, and sent its third step within
//     leaseStep of that: the instance relies on it until before the
//     count + leaseStep + leaseTTL - leaseMargin, by its own clock. A
//     writer that has not seen a listed lease confirm its mark waits
//     until the count + leaseStep + leaseTTL by its own clock, and then
//     unlists it unless it changed meanwhile; a writer also stops
//     waiting for a lease it finds unlisted. The instance's next
//     renewal lists it again, after the count, so it reads a later
//     mark. Redis's clock (a key's expiry) decides nothing: a missing
//     key is waited out as one that does not confirm.
//   - When the feed's connection is lost or the feed closes, the
//     instance stops relying on its lease at once, and gives it up: the
//     key is set to releasedLease (it covers every mark) and unlisted,
//     so writers stop waiting for it.
//   - Marks never seem to go back: a counter that is lost (a flush)
//     starts under a new era, and so does one after every restart of
//     the server, which may bring it back lower from a snapshot
//     (rollEra, on every new connection).
//   - No lease is held on a Redis that may evict keys without an expiry
//     (an allkeys-* policy): it could drop the listing.
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
	// releasedLease is the value of a lease given up: it covers every
	// mark, so a writer need not wait for it. noMark, a new lease's
	// value, covers none.
	releasedLease = "released"
	noMark        = "-"
)

// fenceChannel is where the fence marks of writes to database db are
// published: pub/sub is shared by a server's databases, and a mark of
// another one must not count.
func fenceChannel(db int) string { return keyPrefix + "fence:" + strconv.Itoa(db) }

// fenceMark is a write's place in the order of fenced writes: n counts
// them within era, a name the counter is given when it is made and at
// each restart of the server (rollEra). A counter lost, or brought back
// lower from a snapshot, counts on under another era, so that marks
// never seem to go back: a mark covers another only within one era.
type fenceMark struct {
	era string
	n   int64
}

func (m fenceMark) String() string { return m.era + ":" + strconv.FormatInt(m.n, 10) }

// covers reports whether a lease whose value is v has confirmed w.
func covers(v string, w fenceMark) bool {
	if v == releasedLease {
		return true
	}
	m, ok := parseMark(v)
	return ok && m.era == w.era && m.n >= w.n
}

func parseMark(v string) (fenceMark, bool) {
	i := strings.LastIndexByte(v, ':')
	if i <= 0 {
		return fenceMark{}, false
	}
	n, err := strconv.ParseInt(v[i+1:], 10, 64)
	return fenceMark{v[:i], n}, err == nil
}

// later returns the later of two marks of one era; of two eras, b.
func later(a, b fenceMark) fenceMark {
	if a.era == b.era && a.n > b.n {
		return a
	}
	return b
}

// fenceSeq is a hash: the counter's era and n, and the run_id of the
// server that named the era (rollEra).
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
	if deferred, ok := ctx.Value(fenceLaterKey{}).(*fenceLater); ok {
		deferred.due = true // Store.watch fences once the transaction is over
		return err
	}
	if ferr := h.s.fence(ctx); ferr != nil && err == nil {
		return ferr
	}
	return err
}

// fenceLaterKey marks the context of a transaction's commands
// (Store.watch): their fence waits until the transaction is over.
type fenceLaterKey struct{}

// fenceLater says whether a transaction wrote a cached record.
type fenceLater struct{ due bool }

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
	var n *redis.IntCmd
	var era *redis.StringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		holders = p.SMembers(ctx, s.k.fenceHolders())
		p.HSetNX(ctx, s.k.fenceSeq(), "era", rand.Text())
		n = p.HIncrBy(ctx, s.k.fenceSeq(), "n", 1)
		era = p.HGet(ctx, s.k.fenceSeq(), "era")
		return nil
	})
	if err != nil {
		return wrap("confirm the change with the portal instances", err)
	}
	// The count ran before this moment: every lease that will not
	// confirm w is relied on until before deadline.
	deadline := time.Now().Add(leaseStep + leaseTTL)
	ids := holders.Val()
	if len(ids) == 0 {
		return nil
	}
	if s.noRun.Load() {
		return fmt.Errorf("confirm the change with the portal instances: %w: this Redis user may not run INFO, so a restart of Redis, which can bring the fence counter back, cannot be told (grant the user +info)", store.ErrUnavailable)
	}
	w := fenceMark{era.Val(), n.Val()}
	if err := s.rdb.Publish(ctx, s.fenceChannel, w.String()).Err(); err != nil {
		return wrap("confirm the change with the portal instances", err)
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.k.lease(id)
	}
	pause := 50 * time.Microsecond
	for {
		var vals *redis.SliceCmd
		listed := make([]*redis.BoolCmd, len(ids))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			vals = p.MGet(ctx, keys...)
			for i, id := range ids {
				listed[i] = p.SIsMember(ctx, s.k.fenceHolders(), id)
			}
			return nil
		})
		if err != nil {
			return wrap("confirm the change with the portal instances", err)
		}
		waiting, waitingKeys := ids[:0:0], keys[:0:0]
		for i, v := range vals.Val() {
			// A missing key confirms nothing. A lease no longer listed
			// was given up, or unlisted by a writer that waited it out:
			// it is not relied on, and listed again only by a renewal
			// that reads a mark from after this count.
			if str, _ := v.(string); !covers(str, w) && listed[i].Val() {
				waiting, waitingKeys = append(waiting, ids[i]), append(waitingKeys, keys[i])
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return s.unlist(ctx, waiting, waitingKeys, w)
		}
		ids, keys = waiting, waitingKeys
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return wrap("confirm the change with the portal instances", ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// unlist removes the leases that have not confirmed w by the deadline:
// none of them is relied on any more, and none can be renewed without
// being listed again, before a barrier, hence with a mark from after
// the count. A lease whose value changes meanwhile (WATCH) was renewed
// after the count, so it covers w, and stays.
func (s *Store) unlist(ctx context.Context, ids, keys []string, w fenceMark) error {
	for i, id := range ids {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			v, err := tx.Get(ctx, keys[i]).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			if covers(v, w) {
				return nil
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.SRem(ctx, s.k.fenceHolders(), id)
				return nil
			})
			return err
		}, keys[i])
		if err != nil && !errors.Is(err, redis.TxFailedErr) {
			return wrap("confirm the change with the portal instances", err)
		}
	}
	return nil
}

// lease is an instance's lease (see the top of this file).
type lease struct {
	base, baseWall time.Time
	// until is when the lease stops being relied on, in nanoseconds
	// since base; 0 when it is not held. It is set under the feed's mu
	// (with the feed's epoch checked) and cleared there too.
	until atomic.Int64
	// seen is the latest mark read on the feed.
	mu   sync.Mutex
	seen fenceMark
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

// saw records mark m, read on the feed after the reports before it were
// handled, and wakes the keeper to confirm it.
func (l *lease) saw(m fenceMark) {
	l.mu.Lock()
	l.seen = later(l.seen, m)
	l.mu.Unlock()
	wake(l.ack)
}

// forget drops the marks read so far: a new lease confirms only what
// its own feed connection brings.
func (l *lease) forget() {
	l.mu.Lock()
	l.seen = fenceMark{}
	l.mu.Unlock()
}

func (l *lease) lastSeen() fenceMark {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// keep takes, renews and gives up the lease, and confirms the marks the
// feed reads, until the feed closes. It alone writes the lease's keys.
func (f *trackingFeed) keep() {
	defer close(f.kept)
	l := f.lease
	tick := time.NewTicker(leaseRenew)
	defer tick.Stop()
	id, confirmed := rand.Text(), fenceMark{}
	// listed is set once a renewal may have listed id.
	listed := false
	f.mu.Lock()
	epoch := f.epoch
	f.mu.Unlock()
	// release stops relying on the lease, gives it up if it was listed,
	// and names the next one, which starts from no mark read.
	release := func() {
		f.mu.Lock()
		f.dropLeaseLocked()
		epoch = f.epoch
		f.mu.Unlock()
		select { // the wake-up dropLeaseLocked sent is for this very call
		case <-l.renew:
		default:
		}
		if listed {
			f.giveUp(id)
		}
		id, confirmed, listed = rand.Text(), fenceMark{}, false
		l.forget()
	}
	for {
		select {
		case <-f.ctx.Done():
			release()
			return
		case <-l.ack:
			if m := later(confirmed, l.lastSeen()); m != confirmed && listed {
				ctx, cancel := context.WithTimeout(f.ctx, writeTimeout)
				// XX: a confirmation never makes a key; KEEPTTL: nor
				// does it keep one alive.
				if err := f.client.SetXX(ctx, f.k.lease(id), m.String(), redis.KeepTTL).Err(); err == nil {
					confirmed = m
				}
				cancel()
			}
			continue
		case <-l.renew:
		case <-tick.C:
		}
		f.mu.Lock()
		dropped := f.epoch != epoch
		f.mu.Unlock()
		if dropped {
			// The feed's connection was lost or replaced since.
			release()
		}
		if f.evictsAnyKey() {
			if listed || l.held() {
				release()
			}
			continue
		}
		listed = true
		switch m, r := f.renew(id, epoch, confirmed); r {
		case renewed:
			confirmed = m
		case replace:
			release()
		}
	}
}

// renewal is what a renewal came to.
type renewal int

const (
	renewed renewal = iota // held until leaseTTL - leaseMargin after its third step
	retry                  // not held now (or no longer renewed); try again later
	replace                // no longer listed: give it up, take another
)

// renew runs the three steps that take or renew lease id (see the top of
// this file), and returns the lease's value when renewed.
func (f *trackingFeed) renew(id string, epoch uint64, confirmed fenceMark) (fenceMark, renewal) {
	l := f.lease
	f.mu.Lock()
	alive := f.alive && f.epoch == epoch
	f.mu.Unlock()
	if !alive {
		return fenceMark{}, retry
	}
	ctx, cancel := context.WithTimeout(f.ctx, leaseStep)
	defer cancel()
	key := f.k.lease(id)
	first := time.Now()
	var eraName, count *redis.StringCmd
	if _, err := f.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, f.k.fenceHolders(), id)
		p.SetNX(ctx, key, noMark, leaseTTL)
		p.HSetNX(ctx, f.k.fenceSeq(), "era", rand.Text())
		eraName = p.HGet(ctx, f.k.fenceSeq(), "era")
		count = p.HGet(ctx, f.k.fenceSeq(), "n")
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return fenceMark{}, retry
	}
	n, _ := strconv.ParseInt(count.Val(), 10, 64)
	if err := f.Barrier(ctx); err != nil {
		return fenceMark{}, retry
	}
	m := later(later(fenceMark{eraName.Val(), n}, confirmed), l.lastSeen())
	if m.era != eraName.Val() {
		m = fenceMark{eraName.Val(), n}
	}
	third := time.Now()
	if third.Sub(first) > leaseStep {
		return fenceMark{}, retry
	}
	var isListed, set *redis.BoolCmd
	if _, err := f.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		isListed = p.SIsMember(ctx, f.k.fenceHolders(), id)
		set = p.SetXX(ctx, key, m.String(), leaseTTL)
		return nil
	}); err != nil {
		return fenceMark{}, retry
	}
	if !isListed.Val() || !set.Val() {
		return fenceMark{}, replace
	}
	f.mu.Lock()
	if f.alive && f.epoch == epoch {
		l.until.Store(int64(third.Sub(l.base) + leaseTTL - leaseMargin))
	}
	f.mu.Unlock()
	return m, renewed
}

// evictsAnyKey reports whether the server may evict keys that have no
// expiry when full (an allkeys-* policy, read each time: it can be
// changed at run time), or cannot tell: such a server could drop the
// listing of leases, and no lease is held there.
func (f *trackingFeed) evictsAnyKey() bool {
	ctx, cancel := context.WithTimeout(f.ctx, readTimeout)
	defer cancel()
	info, err := f.client.Info(ctx, "memory").Result()
	return err != nil || evictsAnyKey(info)
}

// evictsAnyKey reports whether a Redis whose INFO memory is info may
// drop keys that have no expiry when full.
func evictsAnyKey(info string) bool {
	limit := infoField(info, "maxmemory")
	return limit != "" && limit != "0" && strings.HasPrefix(infoField(info, "maxmemory_policy"), "allkeys-")
}

// giveUp marks lease id given up, so that writers stop waiting for it,
// and unlists it. The lease is no longer relied on (dropLeaseLocked ran
// before), and id is not used again.
func (f *trackingFeed) giveUp(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	f.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, f.k.lease(id), releasedLease, leaseTTL)
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

// rollEra gives the fence counter (key) a new era when the server has
// restarted since the era was named (its run_id, run, changed): a
// restart from an older snapshot, or from an append-only file that lost
// its last second, brings the counter back lower in the same era, and
// marks would seem to go back. Every connection to a restarted server is
// new, and runs this before it counts a mark or reads one. The check is
// a transaction under WATCH: of two connections that find the era old,
// one renames it.
func rollEra(ctx context.Context, cn *redis.Conn, key, run string) error {
	if err := cn.Do(ctx, "WATCH", key).Err(); err != nil {
		return fmt.Errorf("check the fence counter's era: %w", err)
	}
	defer cn.Do(ctx, "UNWATCH")
	if cur, err := cn.HGet(ctx, key, "run").Result(); err == nil && cur == run {
		return nil
	} else if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("check the fence counter's era: %w", err)
	}
	_, err := cn.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "era", rand.Text(), "run", run)
		return nil
	})
	if err != nil && !errors.Is(err, redis.TxFailedErr) {
		return fmt.Errorf("name the fence counter's era: %w", err)
	}
	return nil
}
