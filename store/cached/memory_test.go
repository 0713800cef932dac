package cached_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store/cached"
)

// failoverWait bounds each wait for the clients to follow a failover,
// or for a cache to serve from memory.
const failoverWait = 30 * time.Second

// waitServedFromMemory waits until a View of sid through c is answered
// from memory: the masters count no key read for it.
func waitServedFromMemory(t *testing.T, c *cached.Store, sid string, masters ...*redis.Client) {
	t.Helper()
	ctx := t.Context()
	waitUntil(t, "a View served from the cache", func() bool {
		if _, err := c.View(ctx, sid); err != nil {
			return false
		}
		before := keyReads(ctx, masters...)
		if _, err := c.View(ctx, sid); err != nil {
			return false
		}
		return before >= 0 && keyReads(ctx, masters...) == before
	})
}

// keyReads returns how many key lookups the servers have counted (hits
// and misses), or -1.
func keyReads(ctx context.Context, servers ...*redis.Client) int64 {
	var n int64
	for _, c := range servers {
		r := serverKeyReads(ctx, c)
		if r < 0 {
			return -1
		}
		n += r
	}
	return n
}

func serverKeyReads(ctx context.Context, c *redis.Client) int64 {
	info, err := c.Info(ctx, "stats").Result()
	if err != nil {
		return -1
	}
	var n int64
	for line := range strings.Lines(info) {
		for _, field := range []string{"keyspace_hits:", "keyspace_misses:"} {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), field); ok {
				i, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return -1
				}
				n += i
			}
		}
	}
	return n
}

// waitUntil polls cond until it holds, failing the test after
// failoverWait.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failoverWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", failoverWait, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
