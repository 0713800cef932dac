package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store/redisstore"
	"gatehouse/store/storetest"
)

// TestWithCache_StoreLeaseChoosesTheLeaseOrTheBarrier: on one Redis
// server the store cache holds a lease (listed in Redis) unless
// --store-lease=false, with which it never takes one and every request
// waits for a read barrier.
func TestWithCache_StoreLeaseChoosesTheLeaseOrTheBarrier(t *testing.T) {
	r := storetest.StartRedis(t)
	ctx := t.Context()
	admin := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { admin.Close() })
	const holders = "gatehouse:fence:holders"
	for _, lease := range []bool{false, true} {
		admin.Del(ctx, holders)
		st, err := redisstore.Open(ctx, r.URL)
		if err != nil {
			t.Fatal(err)
		}
		c := withCache(st, lease, slog.New(slog.DiscardHandler))
		var n int64
		for range 40 {
			if n, err = admin.SCard(ctx, holders).Result(); err != nil || n > 0 {
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := n > 0; got != lease {
			t.Errorf("--store-lease=%v: a lease was listed = %v", lease, got)
		}
	}
}
