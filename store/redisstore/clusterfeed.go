package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store/cached"
)

// The cache's feed on a Redis Cluster.
//
// The rule: on a Cluster the cache never answers staler than a read
// through the store's own ClusterClient would at that moment, and a
// write completed on any master before a request began counts for that
// request.
//
// Tracking is per server, so the feed is one trackingFeed per master
// (CLIENT TRACKING BCAST PREFIX on that master, redirected to itself),
// and a round is a PING on every one of them: the round vouches only
// when every PONG has come back, each PING sent after the request
// began (each member keeps its own sharing of rounds and its timeout).
// Three things keep the masters it listens to the ones the store's
// client sends commands to:
//
//   - The masters are those of the client's own layout: the feed is
//     built from ForEachMaster, which reloads it. A hook on each of the
//     client's node connections (clusterLayouts) records every CLUSTER
//     SLOTS answer the client reads; after the PONGs the masters it last
//     read must be the feed's, or the waiting requests are told the feed
//     cannot vouch (they read Redis) and the feed is built again. The
//     feed also listens to the masters that serve no slot yet (CLUSTER
//     SHARDS), which slots may be moved onto.
//   - The same hook sees every command the client runs on a node,
//     before the caller gets its answer. On a node the feed does not
//     listen to, it drops the cache, the feed stops vouching and is
//     built again, and the new build must listen to that node (see
//     clusterFeed.used).
//   - Each member also subscribes to one shard channel per slot its
//     master serves (guards, SSUBSCRIBE). Redis ends those subscriptions
//     (sunsubscribe) when the server stops serving the slot: a failover
//     that demotes it, a slot handed over (CLUSTER SETSLOT … NODE). The
//     message reaches the feed before the PONG of any PING the server
//     answers after that, and the member's connection is given up.
//   - A member whose connection fails, or whose PING is not answered in
//     syncTimeout, is not replaced on its own: the whole feed is built
//     again from the client's layout, and the cache is dropped when
//     every member has subscribed (each drops it on subscribing, and
//     nothing is served until all have).
//
// A slot moving between two masters the feed listens to is safe: a
// write goes to whichever master serves the slot at the time, and both
// report it. (The old master's guard still ends, so the feed is built
// again and the cache dropped: the cost of a resharding, not a risk.)
//
// The failover window. Between the moment a replica is promoted and the
// moment the store's client learns of it (a MOVED answer, its periodic
// reload), the client sends reads to the old master. If the old master
// already knows, it answers such a read with MOVED and the client
// follows to the new one, so the read is current: the old master's
// guards ended when it learnt, and the feed refuses. (Without the
// guards it would vouch: the demoted master, now a replica, reports the
// new master's writes only after they are replicated, or never when cut
// off from it, and the cache hides reads from the client, so the client
// may not learn for a minute.) If the old master does not know yet (cut
// off from the others), a read through the client goes to it and is as
// stale as the cache. If the client learns first (its reload asked
// another node), the layout check refuses. This is the Sentinel rule
// (see tracking.go): the cache is never staler than the client's own
// read. A master that crashes ends its member's connection: the feed
// refuses until it is built on the masters the client then names. A
// guard protects only through the subscription Redis ends: a demoted
// master accepts a new SSUBSCRIBE for slots it no longer serves (Redis
// 7.0), so a feed built again from a stale layout is caught by the
// layout check and by used (the client's MOVED to a master the feed
// does not listen to), not by its guards.
//
// A slot moving onto a master added after the feed was built. While it
// migrates, a key already moved is written on the new master through
// ASK, and nothing the feed listens to reports it; the old master's
// guard ends only at the hand-over. But the client reaches such a key
// only through the new master (ASK, then MOVED), so no instance can
// read and keep it before its own client has sent that master a
// command, and that command drops the cache before its answer is
// returned (the read in flight is not kept: its generation moved) and
// takes the feed down until it listens there too. The move itself
// (MIGRATE deletes the keys on the old master) is reported by the old
// master. No restart of the portal is needed after adding a master.
//
// Answers kept because a key is absent. A key first created on the new
// master through ASK during the migration is reported to no one, and an
// instance that kept an answer from its absence sends the new master
// nothing. So the one such answer that grants anything, "not revoked",
// never rests on an absent key: Watch keeps the revocation set in
// existence (keepRevocationSet). The others only withhold: an app
// registered, or a role created, while its slot moves shows on another
// instance once the hand-over ends the old master's guard (an unknown
// app is refused, an undefined role counts for nothing).

// clusterRebuildDelay is the pause before the feed is built again.
// Building costs a CLUSTER SLOTS and a SSUBSCRIBE per slot, so while
// a master is down the feed tries at this pace, not faster.
const clusterRebuildDelay = 500 * time.Millisecond

// clusterFeed is the feed on a Cluster: one trackingFeed per master.
type clusterFeed struct {
	cc      *redis.ClusterClient
	layouts *clusterLayouts
	h       cached.Handler
	cancel  context.CancelFunc
	done    chan struct{}
	// rebuild asks run to build the feed again.
	rebuild chan struct{}

	// listening is the set of addresses of the masters the last
	// installed build listens to (read on every command of the store's
	// client: see used).
	listening atomic.Pointer[map[string]bool]

	mu sync.Mutex
	// members are the feeds of the current build, nil while none is up;
	// masters is the layout's key they were built for.
	members []*trackingFeed
	masters string
	// strangers are the nodes the store's client sent a command to,
	// since the last build was installed, that it did not listen to:
	// the next build must listen to each of them.
	strangers map[string]bool
}

func (s *Store) watchCluster(cc *redis.ClusterClient, h cached.Handler) *clusterFeed {
	ctx, cancel := context.WithCancel(context.Background())
	f := &clusterFeed{cc: cc, layouts: s.layout, h: h, cancel: cancel, done: make(chan struct{}), rebuild: make(chan struct{}, 1),
		strangers: map[string]bool{}}
	s.layout.feed.Store(f)
	go f.run(ctx)
	return f
}

// askRebuild asks for the feed to be built again.
func (f *clusterFeed) askRebuild() {
	select {
	case f.rebuild <- struct{}{}:
	default:
	}
}

func (f *clusterFeed) run(ctx context.Context) {
	defer close(f.done)
	for ctx.Err() == nil {
		members, masters, err := f.build(ctx)
		if err == nil {
			err = f.install(members, masters)
		}
		if err == nil {
			select {
			case <-ctx.Done():
			case <-f.rebuild:
			}
		}
		f.mu.Lock()
		f.members, f.masters = nil, ""
		f.mu.Unlock()
		for _, m := range members {
			m.Close()
		}
		f.h.Reset()
		select {
		case <-ctx.Done():
		case <-time.After(clusterRebuildDelay):
		}
		select { // what the members said while closing
		case <-f.rebuild:
		default:
		}
	}
}

// install makes members the feed's, unless the store's client sent a
// command, since the last install, to a node they do not listen to.
func (f *clusterFeed) install(members []*trackingFeed, masters string) error {
	set := map[string]bool{}
	for _, m := range members {
		set[m.client.Options().Addr] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Cleared either way: a node that is gone from the cluster must not
	// keep the feed down for ever (a command on it tears the feed down
	// again).
	strangers := f.strangers
	f.strangers = map[string]bool{}
	for addr := range strangers {
		if !set[addr] {
			return fmt.Errorf("the store's client used %s, which the cluster did not name as a master", addr)
		}
	}
	f.listening.Store(&set)
	f.members, f.masters = members, masters
	return nil
}

// used is called after every command the store's client ran on the node
// at addr, before its result reaches the caller. A node the feed does not
// listen to may hold keys of a slot being moved onto it (a master added
// after the feed was built): the client reaches it only through ASK or
// MOVED, and the writes there are reported to no one. So the cache is
// dropped at once (a read through that node that is in flight is not
// kept: its generation has moved), the feed stops vouching, and it is
// built again, listening to that node too.
func (f *clusterFeed) used(addr string) {
	if set := f.listening.Load(); set != nil && (*set)[addr] {
		return
	}
	f.h.Reset()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.strangers[addr] = true
	if f.members != nil {
		f.members, f.masters = nil, ""
		f.askRebuild()
	}
}

// build starts one member per master of the cluster: those of the
// client's layout, with their slots guarded, and the masters that serve
// no slot yet (a node added empty), which a slot may be moved onto.
func (f *clusterFeed) build(ctx context.Context) ([]*trackingFeed, string, error) {
	var mu sync.Mutex
	opts := map[string]*redis.Options{}
	lctx, cancel := context.WithTimeout(ctx, dialTimeout+readTimeout)
	defer cancel()
	// ForEachMaster reloads the client's layout (the hook records it)
	// and calls back with the client of each master in it.
	// Each also names the masters it knows of (CLUSTER SHARDS): a node
	// just added may not be known to all of them yet.
	empty := map[string]bool{}
	err := f.cc.ForEachMaster(lctx, func(ctx context.Context, c *redis.Client) error {
		shards, err := c.ClusterShards(ctx).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		opts[c.Options().Addr] = c.Options()
		for _, sh := range shards {
			if len(sh.Slots) > 0 {
				continue
			}
			for _, n := range sh.Nodes {
				if n.Role == "master" && n.Health == "online" {
					empty[emptyMasterAddr(n, c.Options())] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	l := f.layouts.last.Load()
	if l == nil || len(l.slots) != len(opts) {
		return nil, "", errors.New("the cluster's layout changed while the feed was built")
	}
	members := make([]*trackingFeed, 0, len(opts))
	for _, addr := range l.order {
		o, ok := opts[addr]
		if !ok {
			for _, m := range members {
				m.Close()
			}
			return nil, "", errors.New("the cluster's layout changed while the feed was built")
		}
		m := newTrackingFeed(o, f.h, guardChannels(l.slots[addr]), f.askRebuild)
		go m.run()
		members = append(members, m)
	}
	if len(members) == 0 {
		return nil, "", errors.New("no master serves a slot")
	}
	for addr := range empty {
		if _, ok := l.slots[addr]; ok {
			continue // it got slots meanwhile: already a member
		}
		o := *members[0].client.Options()
		o.Addr = addr
		m := newTrackingFeed(&o, f.h, nil, f.askRebuild)
		go m.run()
		members = append(members, m)
	}
	return members, l.masters, nil
}

// emptyMasterAddr is the address the store's client would use for a
// master of a CLUSTER SHARDS answer from the server opt names, as it
// names the masters of CLUSTER SLOTS (newClusterLayout).
func emptyMasterAddr(n redis.Node, opt *redis.Options) string {
	host := n.Endpoint
	if host == "" || host == "?" {
		host = n.IP
	}
	port := n.Port
	if opt.TLSConfig != nil && n.TLSPort != 0 {
		port = n.TLSPort
	}
	return nodeAddr(net.JoinHostPort(host, strconv.FormatInt(port, 10)), opt.Addr)
}

// Sync returns once every master has answered a PING sent after the
// call began, and the store's client still sends its commands to those
// masters; else an error (errFeedDown).
func (f *clusterFeed) Sync(context.Context) error {
	f.mu.Lock()
	members, masters := f.members, f.masters
	f.mu.Unlock()
	if members == nil {
		return errFeedDown
	}
	var buf [8]*round
	rounds := buf[:0]
	for _, m := range members {
		r, err := m.join()
		if err != nil {
			return err
		}
		rounds = append(rounds, r)
	}
	var err error
	for _, r := range rounds {
		<-r.done
		if err == nil {
			err = r.err
		}
	}
	if err != nil {
		return err
	}
	if l := f.layouts.last.Load(); l == nil || l.masters != masters {
		f.askRebuild()
		now := ""
		if l != nil {
			now = l.masters
		}
		return fmt.Errorf("%w: it listens to %s, the store's client now uses %s", errFeedDown, masters, now)
	}
	return nil
}

// Close stops the feed.
func (f *clusterFeed) Close() error {
	f.layouts.feed.CompareAndSwap(f, nil)
	f.cancel()
	<-f.done
	return nil
}

// clusterLayout is one CLUSTER SLOTS answer as the store's client reads
// it: each master, by the address the client sends it commands at, and
// the slots it serves.
type clusterLayout struct {
	// masters is the sorted addresses, space-separated: what the feed
	// compares.
	masters string
	order   []string
	slots   map[string][][2]int
}

// clusterLayouts holds the layout the store's client read last, and the
// feed that is told of each node the client sends a command to.
type clusterLayouts struct {
	last atomic.Pointer[clusterLayout]
	feed atomic.Pointer[clusterFeed]
}

// used tells the feed, if one runs, that the client ran a command on the
// node at addr.
func (l *clusterLayouts) used(addr string) {
	if f := l.feed.Load(); f != nil {
		f.used(addr)
	}
}

// watch puts the hook on a node client of the store's ClusterClient
// (its OnNewNode: every node client, before its first command).
func (l *clusterLayouts) watch(c *redis.Client) {
	c.AddHook(layoutHook{layouts: l, origin: c.Options().Addr})
}

// layoutHook records the CLUSTER SLOTS answers of one node client, and
// tells the feed of each command run on it (after the answer is read,
// before the caller gets it).
type layoutHook struct {
	layouts *clusterLayouts
	origin  string
}

var _ redis.Hook = layoutHook{}

func (h layoutHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessPipelineHook: the client sends a command redirected by ASK in a
// pipeline (ASKING, then the command), and transactions as pipelines.
func (h layoutHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if slices.ContainsFunc(cmds, mayTouchKeys) {
			h.layouts.used(h.origin)
		}
		return err
	}
}

func (h layoutHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cs, ok := cmd.(*redis.ClusterSlotsCmd); ok && err == nil {
			h.layouts.last.Store(newClusterLayout(cs.Val(), h.origin))
		}
		if mayTouchKeys(cmd) {
			h.layouts.used(h.origin)
		}
		return err
	}
}

// mayTouchKeys is false for the commands the client sends any node, a
// replica too, to set up a connection or learn the cluster's layout:
// they read or write no record, and must not take the feed down.
func mayTouchKeys(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "cluster", "hello", "auth", "client", "config", "info", "ping", "command", "readonly", "select":
		return false
	}
	return true
}

// newClusterLayout reads a CLUSTER SLOTS answer from origin, naming the
// masters as go-redis does (its newClusterState): a loopback address
// becomes the origin's host unless that is loopback too, and port 0
// (a TLS-only server) the origin's port.
func newClusterLayout(ranges []redis.ClusterSlot, origin string) *clusterLayout {
	l := &clusterLayout{slots: map[string][][2]int{}}
	for _, r := range ranges {
		if len(r.Nodes) == 0 {
			continue
		}
		addr := nodeAddr(r.Nodes[0].Addr, origin)
		if _, ok := l.slots[addr]; !ok {
			l.order = append(l.order, addr)
		}
		l.slots[addr] = append(l.slots[addr], [2]int{int(r.Start), int(r.End)})
	}
	sorted := slices.Clone(l.order)
	slices.Sort(sorted)
	l.masters = strings.Join(sorted, " ")
	return l
}

// nodeAddr names a node at addr, as named by the server at origin, as
// go-redis does: a loopback address becomes the origin's host unless that
// is loopback too, and port 0 (a TLS-only server) the origin's port.
func nodeAddr(addr, origin string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	originHost, originPort, _ := net.SplitHostPort(origin)
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && !isLoopbackHost(originHost) {
		host = originHost
	}
	if port == "0" && originPort != "" {
		port = originPort
	}
	return net.JoinHostPort(host, port)
}

// isLoopbackHost is go-redis's isLoopback: a loopback IP or "localhost".
func isLoopbackHost(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	return host == "localhost"
}

// guardChannels returns one shard channel for each slot in ranges.
func guardChannels(ranges [][2]int) []string {
	tags := slotTags()
	var out []string
	for _, r := range ranges {
		for slot := r[0]; slot <= r[1] && slot < len(tags); slot++ {
			out = append(out, keyPrefix+"slot:{"+tags[slot]+"}")
		}
	}
	return out
}

// clusterSlots is how many hash slots a Redis Cluster has.
const clusterSlots = 16384

// slotTags returns, for each slot, a short hash tag whose key is in it
// (computed once; the same in every process).
var slotTags = sync.OnceValue(func() []string {
	tags := make([]string, clusterSlots)
	left := clusterSlots
	for i := 0; left > 0; i++ {
		tag := strconv.FormatInt(int64(i), 36)
		if s := keySlot(tag); tags[s] == "" {
			tags[s] = tag
			left--
		}
	}
	return tags
})

// keySlot is the slot of a key with no hash tag: CRC16 (XMODEM) of it,
// modulo the number of slots, as Redis Cluster computes it.
func keySlot(key string) int {
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % clusterSlots
}
