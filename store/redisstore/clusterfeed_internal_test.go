package redisstore

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store/storetest"
)

// watchTestCluster opens a store on a new cluster and starts its feed,
// vouching, reporting to h.
func watchTestCluster(t *testing.T, h *resetCounter) (*storetest.Cluster, *Store, *clusterFeed) {
	t.Helper()
	c := storetest.StartCluster(t)
	s, err := Open(t.Context(), c.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return c, s, watchVouching(t, s, h).(*clusterFeed)
}

// The guard channels name every slot once, as Redis computes slots.
func TestClusterFeed_GuardsNameEverySlot(t *testing.T) {
	c := storetest.StartCluster(t)
	rdb := redis.NewClient(&redis.Options{Addr: c.Addrs[0]})
	t.Cleanup(func() { rdb.Close() })
	guards := guardChannels([][2]int{{0, clusterSlots - 1}})
	if len(guards) != clusterSlots {
		t.Fatalf("%d guards, want %d", len(guards), clusterSlots)
	}
	for _, slot := range []int{0, 1, 5460, 5461, 12182, clusterSlots - 1} {
		got, err := rdb.ClusterKeySlot(t.Context(), guards[slot]).Result()
		if err != nil || got != int64(slot) {
			t.Errorf("CLUSTER KEYSLOT %s = %d, %v; want %d", guards[slot], got, err, slot)
		}
	}
}

// TestClusterFeed_ClientUsesOtherMasters_RefusesToVouchAndRebuilds: when
// the masters the store's client last read from CLUSTER SLOTS are not
// the ones the feed listens to (a failover promoted a replica, a node
// got slots), the feed must not vouch: a write on a master it does not
// listen to is never reported. It is built again from the client's
// layout, drops the cache, and vouches again.
func TestClusterFeed_ClientUsesOtherMasters_RefusesToVouchAndRebuilds(t *testing.T) {
	h := &resetCounter{}
	_, s, f := watchTestCluster(t, h)
	ctx := t.Context()
	real := s.layout.last.Load()
	// The client reads a layout with one more master.
	other := newClusterLayout([]redis.ClusterSlot{
		{Start: 0, End: 100, Nodes: []redis.ClusterNode{{Addr: "127.0.0.1:1"}}},
		{Start: 101, End: 200, Nodes: []redis.ClusterNode{{Addr: strings.Fields(real.masters)[0]}}},
	}, "127.0.0.1:1")
	s.layout.last.Store(other)
	resets := h.resets.Load()
	if err := f.Sync(ctx); !errors.Is(err, errFeedDown) {
		t.Fatalf("Sync with the client on other masters = %v, want errFeedDown", err)
	}
	if err := vouches(ctx, f); err != nil {
		t.Fatalf("after the rebuild: %v", err)
	}
	if got := s.layout.last.Load().masters; got != real.masters {
		t.Errorf("the rebuild did not read the client's layout again: %s, want %s", got, real.masters)
	}
	if h.resets.Load() <= resets {
		t.Error("the cache was not dropped when the feed was built again")
	}
}

// TestClusterFeed_UnansweredPingOnOneMaster_FailsEveryWaiterAndRebuilds:
// while one master answers nothing (CLIENT PAUSE), the feed cannot vouch
// for the writes on it: every request waiting for a round fails with
// errFeedDown, the feed is built again and the cache dropped, and once
// the master answers again the feed vouches again.
func TestClusterFeed_UnansweredPingOnOneMaster_FailsEveryWaiterAndRebuilds(t *testing.T) {
	h := &resetCounter{}
	c, _, f := watchTestCluster(t, h)
	ctx := t.Context()
	resets := h.resets.Load()
	pauseFailsEveryWaiter(t, f, c.Addrs[1])
	if err := vouches(ctx, f); err != nil {
		t.Fatalf("after the pause: %v", err)
	}
	if h.resets.Load() <= resets {
		t.Error("the cache was not dropped when the feed was built again")
	}
}

// TestClusterFeed_SlotMovesAway_FeedRebuilds: when a master stops
// serving a slot (here handed over to another master, as a resharding
// or a failover does), Redis ends the feed's guard for it and the feed
// is built again from the client's layout, dropping the cache.
func TestClusterFeed_SlotMovesAway_FeedRebuilds(t *testing.T) {
	h := &resetCounter{}
	c, _, f := watchTestCluster(t, h)
	ctx := t.Context()
	from := redis.NewClient(&redis.Options{Addr: c.Addrs[0]})
	t.Cleanup(func() { from.Close() })
	to := redis.NewClient(&redis.Options{Addr: c.Addrs[1]})
	t.Cleanup(func() { to.Close() })
	slot := -1
	ranges, err := from.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		if r.Nodes[0].Addr == c.Addrs[0] {
			slot = int(r.Start)
		}
	}
	if slot < 0 {
		t.Fatalf("%s serves no slot", c.Addrs[0])
	}
	fromID, err := from.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	toID, err := to.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	resets := h.resets.Load()
	// The hand-over redis-cli --cluster reshard makes (the slot is empty).
	for _, step := range []struct {
		rdb  *redis.Client
		args []any
	}{
		{to, []any{"CLUSTER", "SETSLOT", slot, "IMPORTING", fromID}},
		{from, []any{"CLUSTER", "SETSLOT", slot, "MIGRATING", toID}},
		{to, []any{"CLUSTER", "SETSLOT", slot, "NODE", toID}},
		{from, []any{"CLUSTER", "SETSLOT", slot, "NODE", toID}},
	} {
		if err := step.rdb.Do(ctx, step.args...).Err(); err != nil {
			t.Fatalf("%v: %v", step.args, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.resets.Load() <= resets {
		if time.Now().After(deadline) {
			t.Fatal("the feed was not built again when a master stopped serving a slot")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := vouches(ctx, f); err != nil {
		t.Fatalf("after the slot moved: %v", err)
	}
	f.mu.Lock()
	var guarded bool
	for _, m := range f.members {
		if m.client.Options().Addr == c.Addrs[1] {
			guarded = slices.Contains(m.guards, guardChannels([][2]int{{slot, slot}})[0])
		}
	}
	f.mu.Unlock()
	if !guarded {
		t.Errorf("after the rebuild, %s's member does not guard slot %d", c.Addrs[1], slot)
	}

}

// On a Cluster the revocation set always exists once the cache's feed
// runs, so that no "not revoked" answer rests on an absent key (see
// keepRevocationSet), and the member that keeps it matches no
// certificate.
func TestClusterFeed_RevocationSetIsNeverAbsent(t *testing.T) {
	var h resetCounter
	_, s, _ := watchTestCluster(t, &h)
	ctx := t.Context()
	if n, err := s.rdb.Exists(ctx, s.k.revoked).Result(); err != nil || n != 1 {
		t.Fatalf("the revocation set exists: %d, %v; want 1", n, err)
	}
	for _, serial := range []string{revocationPlaceholder, "", "01"} {
		if revoked, err := s.IsRevoked(ctx, "", serial); err != nil || revoked {
			t.Errorf("IsRevoked(any issuer, %q) = %v, %v; want false", serial, revoked, err)
		}
	}
}
