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
	// Addrs are the masters' host:port.
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
	c.waitKnown(ctx, append(slices.Clone(c.Addrs), r.Addr))
	return r.Addr
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

// Node returns the redis-server of master i (0, 1 or 2, then the masters
// AddEmptyMaster added), which the test may stop and start again.
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

// Kill stops master i at once (SIGKILL), as a crash would.
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
