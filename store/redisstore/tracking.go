package redisstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store/cached"
)

// The cache's feed: Redis's own client-side caching support (CLIENT
// TRACKING, broadcasting mode). One dedicated connection asks Redis to
// report every write to a key under keyPrefix, by anyone, and receives
// the reports on the same connection (REDIRECT to itself, subscribed to
// __redis__:invalidate in RESP2). Key names are read by changeOf only:
// a key it does not know drops the whole cache, so renamed keys cost
// speed, never correctness.
//
// Barrier is a read barrier: it sends PING on that connection and waits
// for the answer. Sync waits for one, except on one server while the
// instance holds its lease (fence.go), when writers wait instead. Redis
// runs commands one at a time and writes the reports of a write to the
// connection when the write runs, so by the time the PONG arrives every
// write that completed before the PING was sent has been reported.
// Requests that arrive while a PING is out wait for the next one, so
// one round trip serves many of them; a request never shares a PING
// sent before it began.
//
// Behind Sentinel the rule is: the cache never answers staler than a
// read through the store's own client would at that moment. The feed
// vouches for the server it is subscribed on, so its PONG counts only
// while that is the server the store's client reads from: the server
// its newest connection reached, with a connection there still open
// (connWatch). After a failover the client (go-redis's failover client)
// closes its connections to the old master on +switch-master, or its
// connections die when Sentinel reconfigures the old master, and it
// dials the new one. The feed's connection may stay behind: Sentinel
// (Redis 7) ends normal and pub/sub clients on a server it turns into a
// replica (CLIENT KILL TYPE normal, then TYPE pubsub, in the
// transaction that sends REPLICAOF), but only once it reaches the old
// master, which keeps taking writes until then (Sentinel waits some
// seconds before converting it), and never if it cannot reach it. So
// after the PONG the feed checks where the store's client is: if not
// on the feed's server, the waiting requests are told the feed cannot
// vouch (they read Redis), and the feed connects again, through
// Sentinel, hence to the current master, dropping the cache when it has
// subscribed there. (The feed's client is made from the store client's
// options, so it dials through the same go-redis failover object: its
// own dial also makes the store's client drop connections to a master
// Sentinel no longer names.)
//
// On a Cluster, tracking is per server: the feed is one such connection
// per master, and a round waits for every master's PONG (clusterFeed,
// in clusterfeed.go, which also states the rule there).

// trackingChannel is where Redis sends a redirected client its reports.
const trackingChannel = "__redis__:invalidate"

// syncTimeout bounds the wait for a PONG; past it the request reads
// Redis itself and the connection is replaced.
const syncTimeout = readTimeout

// reconnectDelay is the pause before a lost feed connects again.
const reconnectDelay = 100 * time.Millisecond

var errFeedDown = errors.New("invalidation feed not connected")

// Watch starts the cache's feed on a connection of its own (on a
// Cluster, one per master: see clusterFeed). On one server the feed
// holds a lease (fence.go).
func (s *Store) Watch(h cached.Handler) (cached.Feed, error) { return s.startFeed(h, true) }

// BarrierOnly returns s as the source of a cache whose feed never holds
// a lease: every request waits for a read barrier, which assumes nothing
// about clocks (fence.go says what the lease assumes). On one server the
// store's writes are fenced all the same, for the other instances.
// (Behind Sentinel and on a Cluster no feed holds a lease anyway.)
func (s *Store) BarrierOnly() cached.Source { return barrierOnly{s} }

type barrierOnly struct{ s *Store }

var _ cached.Source = barrierOnly{}

func (b barrierOnly) Watch(h cached.Handler) (cached.Feed, error) { return b.s.startFeed(h, false) }

func (s *Store) startFeed(h cached.Handler, lease bool) (cached.Feed, error) {
	switch c := s.rdb.(type) {
	case *redis.Client:
		f := newTrackingFeed(c.Options(), h, nil, nil)
		if s.sentinel != nil {
			f.store, f.own = s.sentinel, newConnWatch()
			f.client.AddHook(f.own)
		} else if s.fences && lease {
			// One server, whose writers fence their writes: the cache
			// may answer under a lease (fence.go).
			f.lease, f.k, f.kept = newLease(), s.k, make(chan struct{})
			go f.keep()
		}
		go f.run()
		return f, nil
	case *redis.ClusterClient:
		if s.layout == nil {
			return nil, errors.New("redis: the cache's invalidation feed on a Cluster needs a store made by Open")
		}
		if err := s.keepRevocationSet(); err != nil {
			return nil, err
		}
		return s.watchCluster(c, h), nil
	}
	return nil, fmt.Errorf("redis: the cache's invalidation feed does not know a %T", s.rdb)
}

// revocationPlaceholder is a member of the revocation set that no
// certificate can match (revokedMember always holds a "/").
const revocationPlaceholder = "-"

// keepRevocationSet makes sure the revocation set exists, so that on a
// Cluster a "not revoked" answer is never kept because the set is
// absent: the first revocation could then be written on a master the
// feed does not listen to yet (through ASK, while the set's slot moves
// onto a master added later), where nobody would report it. A set that
// exists is moved by MIGRATE, which its old master reports, and read
// afterwards only through the new master, which drops the cache
// (clusterfeed.go).
func (s *Store) keepRevocationSet() error {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	if err := s.rdb.SAdd(ctx, s.k.revoked, revocationPlaceholder).Err(); err != nil {
		return wrap("keep the revocation set for the cache", err)
	}
	return nil
}

// newTrackingFeed returns a feed on the server opt names, not yet
// running. guards are shard channels it subscribes to after turning
// tracking on (see clusterFeed); onLost, when set, is called when its
// connection is lost, and the feed then stops instead of connecting
// again.
func newTrackingFeed(opt *redis.Options, h cached.Handler, guards []string, onLost func()) *trackingFeed {
	o := *opt
	o.Protocol = 2 // reports arrive as pub/sub messages
	ctx, cancel := context.WithCancel(context.Background())
	f := &trackingFeed{h: h, ctx: ctx, cancel: cancel, done: make(chan struct{}), guards: guards, onLost: onLost}
	o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		if f.lease != nil {
			// Its renewals read the fence counter: no lease without
			// knowing the server's run.
			info, err := cn.Info(ctx, "server").Result()
			if err != nil {
				return fmt.Errorf("read the server's run: %w", err)
			}
			run := infoField(info, "run_id")
			if run == "" {
				return errors.New("read the server's run: INFO server names no run_id")
			}
			if err := rollEra(ctx, cn, f.k.fenceSeq(), run); err != nil {
				return err
			}
		}
		id, err := cn.ClientID(ctx).Result()
		if err != nil {
			return err
		}
		return cn.Do(ctx, "CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST", "PREFIX", keyPrefix).Err()
	}
	f.client = redis.NewClient(&o)
	return f
}

// trackingFeed is the connection that receives reports of writes.
type trackingFeed struct {
	client *redis.Client
	h      cached.Handler
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// On a Cluster, guards are the shard channels of the slots the
	// server serves, one per slot, subscribed after tracking is on:
	// Redis ends those subscriptions (sunsubscribe) when the server stops
	// serving the slot, and the connection is then given up; onLost
	// tells the clusterFeed of a lost connection, and the feed stops.
	guards []string
	onLost func()
	// Behind Sentinel, store follows the store client's connections and
	// own the feed's (nil otherwise: one server, nothing to follow).
	store, own *connWatch
	// On one server whose writers fence, lease is the instance's lease
	// (fence.go), kept by a goroutine that closes kept when it ends; k
	// names the lease's keys. nil elsewhere.
	lease *lease
	k     keyspace
	kept  chan struct{}

	mu sync.Mutex
	ps *redis.PubSub
	// alive is set once the current connection is subscribed (tracking
	// is on from before that) and cleared when it fails. epoch counts
	// the times the lease was dropped: a renewal begun before a drop is
	// not relied on (fence.go).
	alive bool
	epoch uint64
	// server is the address of the server the current connection is
	// subscribed on (behind Sentinel only).
	server string
	// seq numbers the PINGs; out is the round whose PING is on its way
	// (seq is its number), next the round of the requests that came
	// since and wait for the following one. Either may be nil.
	seq       uint64
	out, next *round
	// holding is set while answered yields before sending the next
	// PING: requests arriving meanwhile join next without sending it.
	holding bool
}

// round is one PING and the requests waiting for its answer: they share
// one channel, closed when the PONG arrives or the feed fails, and one
// timer, so a request costs the feed no allocation of its own.
type round struct {
	done  chan struct{}
	err   error
	timer *time.Timer
}

// finish releases the round's requests with err (nil: vouched for).
func (r *round) finish(err error) {
	if r.timer != nil {
		r.timer.Stop()
	}
	r.err = err
	close(r.done)
}

func (f *trackingFeed) run() {
	defer close(f.done)
	ctx := f.ctx
	for ctx.Err() == nil {
		channels := []string{trackingChannel}
		if f.lease != nil {
			channels = append(channels, fenceChannel(f.client.Options().DB))
		}
		ps := f.client.Subscribe(ctx, channels...)
		f.mu.Lock()
		if ctx.Err() != nil { // Close ran meanwhile
			f.mu.Unlock()
			ps.Close()
			return
		}
		f.ps = ps
		f.mu.Unlock()
		// The guards go out before any PING (alive is set only once the
		// subscription is confirmed, after they were written), so a slot
		// the server no longer serves fails the connection before any
		// PONG of it can vouch.
		var err error
		for _, g := range f.guards {
			if err = ps.SSubscribe(ctx, g); err != nil {
				break
			}
		}
		if err == nil {
			err = f.receive(ctx, ps)
		}
		f.lost(err)
		ps.Close()
		if f.onLost != nil {
			f.onLost()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(reconnectDelay):
		}
	}
}

// receive handles one connection's messages until it fails.
func (f *trackingFeed) receive(ctx context.Context, ps *redis.PubSub) error {
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "sunsubscribe" {
				return fmt.Errorf("the server no longer serves the slot of %s", m.Channel)
			}
			if m.Kind == "subscribe" && m.Channel == trackingChannel {
				// Tracking was turned on before the subscription: from
				// here on no write goes unreported. What was kept before
				// may have missed some.
				f.h.Reset()
				f.mu.Lock()
				f.alive = true
				if f.own != nil {
					f.server = f.own.server()
				}
				if f.lease != nil {
					wake(f.lease.renew)
				}
				f.mu.Unlock()
			}
		case *redis.Message:
			if f.lease != nil && m.Channel != trackingChannel {
				// Every report sent before this mark was published has
				// been handled above.
				if mark, ok := parseMark(m.Payload); ok {
					f.lease.saw(mark)
				}
				continue
			}
			if m.Channel != trackingChannel {
				continue
			}
			if m.PayloadSlice == nil {
				// FLUSHALL, FLUSHDB: the lease's keys went too.
				f.mu.Lock()
				f.dropLeaseLocked()
				f.mu.Unlock()
				f.h.Reset()
				continue
			}
			for _, key := range m.PayloadSlice {
				if ch, ok := changeOf(key); ok {
					f.h.Invalidate(ch)
				}
			}
		case *redis.Pong:
			if err := f.answered(m.Payload); err != nil {
				return err
			}
		}
	}
}

// answered releases the requests waiting for the PING numbered payload
// and sends the next one if more are waiting. Behind Sentinel it first
// checks that the store's client still reads from the feed's server;
// if not, it fails them and returns an error: the connection is then
// replaced by one to the server Sentinel names now.
//
// Before sending the next PING it yields its processor once
// (runtime.Gosched): the goroutines that are ready to run (requests
// just read, and the ones this PONG released) run first, and those that
// reach Sync join the round about to be sent. Under load a PING then
// serves more requests (a fifth fewer PINGs, and less of Redis's CPU);
// with nothing else to run the yield returns at once, so a client that
// sends one request after another waits no longer. (Holding the PING
// back on a timer instead was tried and taken out: Go's timers wake late
// on an idle core; docs/benchmarks.md.)
func (f *trackingFeed) answered(payload string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.out == nil || payload != strconv.FormatUint(f.seq, 10) {
		return nil
	}
	if f.store != nil && !f.store.uses(f.server) {
		err := fmt.Errorf("%w: it is subscribed on %s, the store's client now reads from %s", errFeedDown, f.server, f.store.server())
		f.alive = false
		f.dropLeaseLocked()
		f.failLocked(err)
		return err
	}
	f.out.finish(nil)
	f.out = nil
	if f.next == nil {
		return nil
	}
	// No PING is out, so nothing can be answered or time out meanwhile
	// (only this goroutine reads the connection; a Close shows as a
	// failed PING below); Sync only joins f.next while holding is set.
	f.holding = true
	f.mu.Unlock()
	runtime.Gosched()
	f.mu.Lock()
	f.holding = false
	f.maySendLocked()
	return nil
}

// maySendLocked sends the PING of the waiting round next when no PING is
// out and the feed is not holding it back (answered).
func (f *trackingFeed) maySendLocked() {
	if f.out != nil || f.next == nil || f.holding {
		return
	}
	f.out, f.next = f.next, nil
	f.pingLocked()
}

// pingLocked sends the PING for the round f.out.
func (f *trackingFeed) pingLocked() {
	f.seq++
	seq := f.seq
	f.out.timer = time.AfterFunc(syncTimeout, func() { f.timedOut(seq) })
	if err := f.ps.Ping(context.Background(), strconv.FormatUint(seq, 10)); err != nil {
		// A connection a PING cannot be written to is replaced, as one
		// that does not answer: nothing is served from memory until a
		// new one has subscribed (and dropped what was kept).
		f.alive = false
		f.dropLeaseLocked()
		f.failLocked(fmt.Errorf("%w: %w", errFeedDown, err))
		go f.ps.Close()
	}
}

// timedOut replaces a connection that has not answered PING seq in
// time: its reports can no longer be relied on.
func (f *trackingFeed) timedOut(seq uint64) {
	f.mu.Lock()
	if f.out == nil || f.seq != seq {
		f.mu.Unlock()
		return
	}
	f.alive = false
	f.dropLeaseLocked()
	f.failLocked(fmt.Errorf("%w: no answer within %v", errFeedDown, syncTimeout))
	ps := f.ps
	f.mu.Unlock()
	ps.Close()
}

// failLocked fails every waiting request.
func (f *trackingFeed) failLocked(err error) {
	for _, r := range []*round{f.out, f.next} {
		if r != nil {
			r.finish(err)
		}
	}
	f.out, f.next = nil, nil
}

// lost marks the connection down: nothing is served from the cache until
// a new one has subscribed, and what was kept is dropped.
func (f *trackingFeed) lost(err error) {
	f.mu.Lock()
	f.alive = false
	f.dropLeaseLocked()
	f.failLocked(fmt.Errorf("%w: %w", errFeedDown, err))
	f.mu.Unlock()
	f.h.Reset()
}

// Sync returns once every write completed before the call has been
// reported, or an error when the feed cannot tell, within syncTimeout:
// at once while the instance holds its lease (fence.go), else after a
// read barrier.
func (f *trackingFeed) Sync(ctx context.Context) error {
	if f.lease != nil && f.lease.held() {
		return nil
	}
	return f.Barrier(ctx)
}

// Barrier returns once every write completed before the call has been
// reported, after a PING round, or an error when the feed cannot tell
// within syncTimeout.
func (f *trackingFeed) Barrier(context.Context) error {
	r, err := f.join()
	if err != nil {
		return err
	}
	// The wait needs no watch on ctx: the round's timer ends it within
	// syncTimeout, and watching would cost every request a channel of
	// its context's and a select.
	<-r.done
	return r.err
}

// join returns the round whose PING has not been sent yet, sending it
// if none is out: it is sent after this call began. Its done channel
// closes when the round is answered or failed.
func (f *trackingFeed) join() (*round, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.alive {
		return nil, errFeedDown
	}
	if f.next == nil {
		f.next = &round{done: make(chan struct{})}
	}
	r := f.next
	f.maySendLocked()
	return r, nil
}

// Close stops the feed.
func (f *trackingFeed) Close() error {
	f.cancel()
	f.mu.Lock()
	if f.ps != nil {
		f.ps.Close()
	}
	f.mu.Unlock()
	<-f.done
	if f.kept != nil {
		<-f.kept
	}
	return f.client.Close()
}

// changeOf says which cached records a write to key may have changed;
// ok is false for keys no cached record is read from. A key it does not
// recognise changes everything.
func changeOf(key string) (ch cached.Change, ok bool) {
	rest, found := strings.CutPrefix(key, keyPrefix)
	if !found {
		return cached.Change{}, true
	}
	// On a Cluster a key's name starts with its hash tag ({shard},
	// {config}, {certs}, {accounts}: see keyspace); the name after it is
	// the one a single server uses. The tags of email claims and OpenID
	// Connect records name keys no cached record is read from.
	if tag, name, found := strings.Cut(strings.TrimPrefix(rest, "{"), "}:"); found && strings.HasPrefix(rest, "{") {
		if tag == "oidc" || strings.HasPrefix(tag, "e:") {
			return cached.Change{}, false
		}
		rest = name
	}
	if name, found := strings.CutPrefix(rest, "session:"); found {
		return cached.Change{Kind: cached.Session, Name: name}, true
	}
	if name, found := strings.CutPrefix(rest, "account:"); found {
		return cached.Change{Kind: cached.Account, Name: name}, true
	}
	// The lists of account names: every account's keys (AccountKeys)
	// are read through them. They are written together with a record,
	// whose report would do; reporting them too keeps a write that lists
	// an existing record without rewriting it from going unseen.
	if rest == "accounts" || rest == "account-names" {
		return cached.Change{Kind: cached.Account}, true
	}
	switch {
	case rest == "roles", strings.HasPrefix(rest, "role:"):
		return cached.Change{Kind: cached.Roles}, true
	case rest == "apps", strings.HasPrefix(rest, "app:"):
		return cached.Change{Kind: cached.Apps}, true
	case rest == "revoked-certs", rest == "revoked":
		return cached.Change{Kind: cached.Revocations}, true
	}
	// Keys no cached record is read from: indexes, listings, counters,
	// the audit stream, the marker, email claims, OpenID Connect records
	// and tickets. (Every name the keyspace and the OIDC key helpers make
	// is listed here or above: TestChangeOf_EveryKeyIsKnown.)
	for _, p := range []string{"fence", "audit", "account-emails", "certs", "cert:", "certs-by-issue",
		"certs-of:", "user-sessions:", "sessions-of:", "totp-used:", "failures:", "meta:", "counter:", "claim:",
		"marker", "ticket:"} {
		if strings.HasPrefix(rest, p) {
			return cached.Change{}, false
		}
	}
	return cached.Change{}, true
}
