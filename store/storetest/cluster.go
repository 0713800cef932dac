package storetest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of three masters (no replicas) that belongs
// to one test: three redis-server processes in cluster mode on free
// ports of 127.0.0.1, joined by "redis-cli --cluster create".
type Cluster struct {
	// URL is the store URL of the cluster:
	// redis+cluster://127.0.0.1:P1?addr=127.0.0.1:P2&addr=127.0.0.1:P3.
	URL string
	// Addrs are the host:port of the three masters the cluster was
	// created with. Nodes added later (AddEmptyMaster, AddReplica) are
	// not in Addrs, and after a Failover one of them may be a replica:
	// it still answers CLUSTER SLOTS, so the URL still finds the
	// cluster, but Flush, which empties Addrs, then fails on it.
	Addrs []string

	t     testing.TB
	bin   string
	extra []string
	nodes []*Redis
}

// clusterReadyWait bounds how long StartCluster waits for the cluster to
// come up (a limit on polling, not an expected duration).
const clusterReadyWait = 30 * time.Second

// StartCluster starts a three-master Redis Cluster for this test and
// stops it when the test ends. Without redis-server and redis-cli the
// test skips, or fails under CI=true. Extra arguments go to every
// redis-server.
func StartCluster(t testing.TB, extra ...string) *Cluster {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		NeedService(t, "redis-server is not installed (apt-get install redis-server): the Redis Cluster tests start their own cluster")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		NeedService(t, "redis-cli is not installed (apt-get install redis-tools): the Redis Cluster tests create their cluster with redis-cli --cluster create")
	}
	c := &Cluster{t: t, bin: bin, extra: extra}
	for range 3 {
		r := c.startNode()
		c.Addrs = append(c.Addrs, r.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyWait)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.URL = "redis+cluster://" + c.Addrs[0] + "?addr=" + c.Addrs[1] + "&addr=" + c.Addrs[2]
	c.waitReady(ctx)
	return c
}

// AnnounceHostNames returns StartCluster's extra arguments for a cluster
// whose nodes announce a host name (localhost) and name each other by
// it in CLUSTER SLOTS, CLUSTER SHARDS and redirections, as clusters in
// Kubernetes do.
func AnnounceHostNames() []string {
	return []string{"--cluster-announce-hostname", "localhost", "--cluster-preferred-endpoint-type", "hostname"}
}

// startNode starts one more redis-server in cluster mode, stopped when
// the test ends.
func (c *Cluster) startNode() *Redis {
	t := c.t
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	r := &Redis{t: t, bin: c.bin, dir: t.TempDir(), port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	r.URL = "redis://" + r.Addr
	r.args = []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--logfile", "",
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(r.dir, "nodes.conf"),
		"--cluster-node-timeout", "2000",
	}
	r.extra = c.extra
	r.Start()
	t.Cleanup(r.Stop)
	c.nodes = append(c.nodes, r)
	return r
}

// AddEmptyMaster starts a new node, joins it to the cluster (CLUSTER
// MEET) as a master serving no slot, waits until every node knows it,
// and returns its address. The cluster's URL does not name it, and it is
// not in Addrs: a store opened earlier learns of it only as slots move
// onto it.
func (c *Cluster) AddEmptyMaster() string {
	c.t.Helper()
	r := c.startNode()
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyWait)
	defer cancel()
	host, port, _ := net.SplitHostPort(r.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: c.Addrs[0]})
	err := rdb.ClusterMeet(ctx, host, port).Err()
	rdb.Close()
	if err != nil {
		c.t.Fatalf("CLUSTER MEET %s: %v", r.Addr, err)
	}
	c.waitKnown(ctx, c.nodeAddrs())
	return r.Addr
}

// AddReplica starts a new node, joins it to the cluster (CLUSTER MEET)
// as a replica (CLUSTER REPLICATE) of master i (Addrs[i], which must
// still be a master), and returns its address once it has synced with
// the master (master_link_status:up) and every node knows it as that
// master's replica. Like AddEmptyMaster's nodes it is not in Addrs, and
// the URL does not name it; Node numbers it after the nodes started
// before it.
func (c *Cluster) AddReplica(i int) string {
	c.t.Helper()
	master := c.Addrs[i]
	r := c.startNode()
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyWait)
	defer cancel()
	host, port, _ := net.SplitHostPort(r.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: master})
	defer rdb.Close()
	masterID, err := rdb.ClusterMyID(ctx).Result()
	if err == nil {
		err = rdb.ClusterMeet(ctx, host, port).Err()
	}
	if err != nil {
		c.t.Fatalf("CLUSTER MEET %s on %s: %v", r.Addr, master, err)
	}
	replica := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer replica.Close()
	c.waitFor(r.Addr+" to replicate "+master, func(ctx context.Context) (bool, string) {
		// CLUSTER REPLICATE is refused until the new node has learnt
		// of the master through the cluster bus.
		if err := replica.ClusterReplicate(ctx, masterID).Err(); err != nil {
			return false, "CLUSTER REPLICATE: " + err.Error()
		}
		return true, ""
	})
	id, err := replica.ClusterMyID(ctx).Result()
	if err != nil {
		c.t.Fatalf("CLUSTER MYID on %s: %v", r.Addr, err)
	}
	c.waitFor(r.Addr+" to sync with "+master, func(ctx context.Context) (bool, string) {
		info, err := replica.Info(ctx, "replication").Result()
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(info, "master_link_status:up\r"), info
	})
	for _, addr := range c.nodeAddrs() {
		c.waitOn(addr, "to know "+r.Addr+" as a replica of "+master, func(ctx context.Context, rdb *redis.Client) (bool, string) {
			lines, err := rdb.ClusterSlaves(ctx, masterID).Result()
			if err != nil {
				return false, err.Error()
			}
			return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, id+" ") }), strings.Join(lines, "\n")
		})
	}
	return r.Addr
}

// Failover makes the replica at addr take over from its master, as an
// operator would (CLUSTER FAILOVER sent to the replica: the master stops
// taking writes until the replica has them all), and returns once the
// replica is a master serving every slot its master served, as every
// node's CLUSTER SLOTS says. The old master becomes its replica; Addrs,
// the URL and Node still name the nodes they named before.
func (c *Cluster) Failover(addr string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyWait)
	defer cancel()
	replica := redis.NewClient(&redis.Options{Addr: addr})
	defer replica.Close()
	id, masterID := c.replicaOf(ctx, replica)
	slots := ownedSlots(c.clusterSlots(ctx, replica), masterID)
	if len(slots) == 0 {
		c.t.Fatalf("the master of %s (%s) serves no slot: nothing to fail over", addr, masterID)
	}
	if err := replica.ClusterFailover(ctx).Err(); err != nil {
		c.t.Fatalf("CLUSTER FAILOVER on %s: %v", addr, err)
	}
	c.waitFor(addr+" to become a master", func(ctx context.Context) (bool, string) {
		info, err := replica.Info(ctx, "replication").Result()
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(info, "role:master\r"), info
	})
	for _, node := range c.nodeAddrs() {
		c.waitOn(node, fmt.Sprintf("to see %s serve the slots %v", addr, slots), func(ctx context.Context, rdb *redis.Client) (bool, string) {
			ranges, err := rdb.ClusterSlots(ctx).Result()
			if err != nil {
				return false, err.Error()
			}
			return slices.Equal(ownedSlots(ranges, id), slots), fmt.Sprint(ranges)
		})
	}
}

// replicaOf returns the node ID of the replica rdb is connected to and
// that of its master, from its CLUSTER NODES.
func (c *Cluster) replicaOf(ctx context.Context, rdb *redis.Client) (id, master string) {
	c.t.Helper()
	nodes, err := rdb.ClusterNodes(ctx).Result()
	if err != nil {
		c.t.Fatalf("CLUSTER NODES on %s: %v", rdb.Options().Addr, err)
	}
	for line := range strings.Lines(nodes) {
		// <id> <ip:port@cport> <flags> <master> …
		f := strings.Fields(line)
		if len(f) > 3 && slices.Contains(strings.Split(f[2], ","), "myself") {
			if f[3] == "-" {
				c.t.Fatalf("%s is not a replica: %s", rdb.Options().Addr, line)
			}
			return f[0], f[3]
		}
	}
	c.t.Fatalf("CLUSTER NODES on %s does not name the node itself:\n%s", rdb.Options().Addr, nodes)
	return "", ""
}

// Announced returns the host:port by which the cluster names master i
// (Addrs[i]) to its clients in CLUSTER SLOTS: its address, or the host
// name it announces (cluster-announce-hostname with
// cluster-preferred-endpoint-type hostname). The node must be up.
func (c *Cluster) Announced(i int) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyWait)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: c.Addrs[i]})
	defer rdb.Close()
	id, err := rdb.ClusterMyID(ctx).Result()
	if err != nil {
		c.t.Fatalf("CLUSTER MYID on %s: %v", c.Addrs[i], err)
	}
	for _, r := range c.clusterSlots(ctx, rdb) {
		if len(r.Nodes) > 0 && r.Nodes[0].ID == id {
			return r.Nodes[0].Addr
		}
	}
	c.t.Fatalf("CLUSTER SLOTS on %s does not name it as a master", c.Addrs[i])
	return ""
}

// clusterSlots returns rdb's CLUSTER SLOTS, failing the test on an error.
func (c *Cluster) clusterSlots(ctx context.Context, rdb *redis.Client) []redis.ClusterSlot {
	c.t.Helper()
	ranges, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		c.t.Fatalf("CLUSTER SLOTS on %s: %v", rdb.Options().Addr, err)
	}
	return ranges
}

// ownedSlots returns the ranges of slots the node with that ID serves
// as master in a CLUSTER SLOTS answer, sorted.
func ownedSlots(ranges []redis.ClusterSlot, id string) [][2]int {
	var out [][2]int
	for _, r := range ranges {
		if len(r.Nodes) > 0 && r.Nodes[0].ID == id {
			out = append(out, [2]int{r.Start, r.End})
		}
	}
	slices.SortFunc(out, func(a, b [2]int) int { return a[0] - b[0] })
	return out
}

// nodeAddrs returns the address of every node the test started, as
// Node numbers them.
func (c *Cluster) nodeAddrs() []string {
	var addrs []string
	for _, r := range c.nodes {
		addrs = append(addrs, r.Addr)
	}
	return addrs
}

// waitOn polls cond with a client on the node at addr until it holds;
// see waitFor.
func (c *Cluster) waitOn(addr, what string, cond func(context.Context, *redis.Client) (bool, string)) {
	c.t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	c.waitFor(addr+" "+what, func(ctx context.Context) (bool, string) { return cond(ctx, rdb) })
}

// waitFor polls cond (each call given a second) until it holds, failing
// the test with what cond last saw after clusterReadyWait (a limit on
// polling, not an expected duration).
func (c *Cluster) waitFor(what string, cond func(context.Context) (ok bool, saw string)) {
	c.t.Helper()
	deadline := time.Now().Add(clusterReadyWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok, saw := cond(ctx)
		cancel()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waited %v for %s; last saw: %s", clusterReadyWait, what, saw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady waits until every node sees the cluster as ok and knows all
// three masters.
func (c *Cluster) waitReady(ctx context.Context) {
	c.t.Helper()
	c.waitKnown(ctx, c.Addrs)
}

// waitKnown waits until each of addrs sees the cluster as ok and knows
// len(addrs) nodes.
func (c *Cluster) waitKnown(ctx context.Context, addrs []string) {
	c.t.Helper()
	known := "cluster_known_nodes:" + strconv.Itoa(len(addrs)) + "\r"
	for _, addr := range addrs {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		for {
			info, err := rdb.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, known) {
				break
			}
			if ctx.Err() != nil {
				rdb.Close()
				c.t.Fatalf("the cluster did not become ready (node %s: %v %q)", addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		rdb.Close()
	}
}

// Node returns the redis-server of node i (the masters 0, 1 and 2, then
// the nodes AddEmptyMaster and AddReplica added, in order), which the
// test may stop and start again.
func (c *Cluster) Node(i int) *Redis { return c.nodes[i] }

// Flush empties every master, so that one cluster can serve several
// subtests that each want an empty store.
func (c *Cluster) Flush() {
	c.t.Helper()
	for _, addr := range c.Addrs {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		err := rdb.FlushAll(context.Background()).Err()
		rdb.Close()
		if err != nil {
			c.t.Fatalf("flush %s: %v", addr, err)
		}
	}
}

// Kill stops node i (as Node numbers them) at once (SIGKILL), as a crash
// would.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	r := c.nodes[i]
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	r.cmd.Wait()
	r.cmd = nil
}

// String describes the cluster for a test's log.
func (c *Cluster) String() string {
	return fmt.Sprintf("Redis Cluster %s", strings.Join(c.Addrs, ", "))
}
