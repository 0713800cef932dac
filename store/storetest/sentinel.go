package storetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name the Sentinel started by StartSentinel
// watches its master under.
const SentinelMaster = "gatehouse"

// sentinelWait bounds each wait for Sentinel: to answer, to see the
// replicas, to finish a failover.
const sentinelWait = 30 * time.Second

// Sentinel is a redis-server in Sentinel mode that belongs to one test.
// It watches one master (SentinelMaster) with a quorum of one, so it
// fails over on its own say.
type Sentinel struct {
	// URL is the redis+sentinel:// URL that finds the master through it.
	URL string
	// Addr is its host:port.
	Addr string

	t      testing.TB
	client *redis.SentinelClient
}

// StartSentinel starts a Sentinel for master on a free port of
// 127.0.0.1 and returns once it knows the master and each of replicas
// as a replica in sync, ready to take over. It stops when the test
// ends. It needs servers of its own (StartRedis without
// GATEHOUSE_TEST_REDIS); without redis-server the test skips, or fails
// under CI=true.
func StartSentinel(t testing.TB, master *Redis, replicas ...*Redis) *Sentinel {
	t.Helper()
	if master.External() {
		t.Skip("GATEHOUSE_TEST_REDIS is set: a Sentinel test must start its own Redis servers")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		NeedService(t, "redis-server is not installed (apt-get install redis-server)")
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	host, masterPort, _ := net.SplitHostPort(master.Addr)
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\n", port, dir, SentinelMaster, host, masterPort)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sentinel: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := &Sentinel{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		t:    t,
	}
	s.URL = fmt.Sprintf("redis+sentinel://%s/0?master_name=%s", s.Addr, SentinelMaster)
	s.client = redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { s.client.Close() })

	var want []string
	for _, r := range replicas {
		want = append(want, r.Addr)
	}
	s.waitFor(fmt.Sprintf("the sentinel to see master %s with replicas %v in sync", master.Addr, want), func(ctx context.Context) bool {
		if s.Master(ctx) != master.Addr {
			return false
		}
		rs, err := s.client.Replicas(ctx, SentinelMaster).Result()
		if err != nil {
			return false
		}
		var ready []string
		for _, r := range rs {
			if r["flags"] == "slave" && r["master-link-status"] == "ok" {
				ready = append(ready, net.JoinHostPort(r["ip"], r["port"]))
			}
		}
		for _, addr := range want {
			if !slices.Contains(ready, addr) {
				return false
			}
		}
		return true
	})
	return s
}

// Master returns the address of the master as the sentinel names it
// now ("" when it does not answer).
func (s *Sentinel) Master(ctx context.Context) string {
	addr, err := s.client.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil || len(addr) != 2 {
		return ""
	}
	return net.JoinHostPort(addr[0], addr[1])
}

// Failover makes the sentinel promote a replica (SENTINEL FAILOVER) and
// returns once it names to as the master.
func (s *Sentinel) Failover(to *Redis) {
	s.t.Helper()
	if err := s.client.Failover(s.t.Context(), SentinelMaster).Err(); err != nil {
		s.t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	s.waitFor("the sentinel to name "+to.Addr+" as the master", func(ctx context.Context) bool {
		return s.Master(ctx) == to.Addr
	})
}

// waitFor polls cond until it holds, failing the test after sentinelWait.
func (s *Sentinel) waitFor(what string, cond func(ctx context.Context) bool) {
	s.t.Helper()
	deadline := time.Now().Add(sentinelWait)
	for !cond(s.t.Context()) {
		if time.Now().After(deadline) {
			s.t.Fatalf("waited %v for %s", sentinelWait, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
