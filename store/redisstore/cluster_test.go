package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
	"gatehouse/store/redisstore"
	"gatehouse/store/storetest"
)

// openCluster opens a store on c's URL, closed when t ends.
func openCluster(t *testing.T, c *storetest.Cluster) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(t.Context(), c.URL)
	if err != nil {
		t.Fatalf("redisstore.Open(%s): %v", c.URL, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The contract suite on a real three-master Redis Cluster: every
// transaction, script and multi-key command touches one slot (the
// client refuses a transaction across slots, and Redis refuses the
// rest with CROSSSLOT), and emails stay unique across slots.
func TestRedisStore_ClusterContract(t *testing.T) {
	c := storetest.StartCluster(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		c.Flush()
		return openCluster(t, c)
	})
}

// On a Cluster, View is still one pipeline: the session script on the
// server of the session's shard (which holds the account), the roles and
// apps script on the server of {config}, at once.
func TestRedisStore_ClusterViewIsOnePipeline(t *testing.T) {
	c := storetest.StartCluster(t)
	opts, err := redis.ParseClusterURL("redis://" + strings.TrimPrefix(c.URL, "redis+cluster://"))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClusterClient(opts)
	defer rdb.Close()
	hook := &countingHook{}
	rdb.AddHook(hook)
	s := redisstore.New(rdb)
	ctx := t.Context()
	if err := s.CreateAccount(ctx, store.Account{Name: "alice", Roles: []string{"employee"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRole(ctx, store.Role{Name: "employee"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutApp(ctx, store.App{Name: "wiki", URL: "https://wiki.example.com/", Roles: []string{"employee"}}); err != nil {
		t.Fatal(err)
	}
	id := store.SessionID("alice", "s1")
	if err := s.PutSession(ctx, store.Session{ID: id, User: "alice", ExpiresAt: time.Now().Add(time.Hour)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.View(ctx, id); err != nil { // loads the scripts
		t.Fatal(err)
	}
	before := hook.n.Load()
	v, err := s.View(ctx, id)
	if err != nil || v.Account.Name != "alice" || len(v.Roles) != 1 || len(v.Apps) != 1 {
		t.Fatalf("View = %+v, %v", v, err)
	}
	if n := hook.n.Load() - before; n != 1 {
		t.Errorf("one View sent %d commands or pipelines, want 1", n)
	}
}

// A session whose ID does not name its account's shard cannot be kept
// beside the account on a Cluster: it is refused, not split over slots.
func TestRedisStore_ClusterSessionIDMustNameTheShard(t *testing.T) {
	c := storetest.StartCluster(t)
	s := openCluster(t, c)
	for _, id := range []string{"s1", store.SessionID("bob", "s1")} {
		err := s.PutSession(t.Context(), store.Session{ID: id, User: "alice"}, time.Hour)
		if err == nil || !strings.Contains(err.Error(), "store.SessionID") {
			t.Errorf("PutSession with ID %q for alice on a Cluster: %v, want a refusal", id, err)
		}
	}
	if _, err := s.Session(t.Context(), "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Session(s1) = %v, want store.ErrNotFound", err)
	}
}

// A cluster URL that names a database is refused in plain words (a
// Cluster has only database 0).
func TestRedisStore_ClusterURLHasNoDatabase(t *testing.T) {
	_, err := redisstore.Open(t.Context(), "redis+cluster://127.0.0.1:1/3")
	if err == nil || !strings.Contains(err.Error(), "only database 0") {
		t.Errorf("Open of a cluster URL with database 3: %v, want an error saying only database 0", err)
	}
}

// When a master is down, Ping says which one.
func TestRedisStore_ClusterPingNamesTheServerThatIsDown(t *testing.T) {
	c := storetest.StartCluster(t)
	s := openCluster(t, c)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	c.Kill(1)
	err := s.Ping(t.Context())
	var se *store.ServerError
	if !errors.As(err, &se) || se.Server != c.Addrs[1] || !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping with %s down = %v, want a store.ServerError naming it, wrapping store.ErrUnavailable", c.Addrs[1], err)
	}
}

// A master that comes back from a restart without its data has lost the
// markers of its shards: CheckMarker says so for everything and for the
// accounts it held, names the server, and still finds the markers of
// the other servers' accounts.
func TestRedisStore_ClusterNoticesAServerThatLostItsData(t *testing.T) {
	c := storetest.StartCluster(t)
	s := openCluster(t, c)
	ctx := t.Context()
	if err := s.Mark(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckMarker(ctx, ""); err != nil {
		t.Fatalf("CheckMarker after Mark: %v", err)
	}
	// Accounts whose shards live on the server that will restart, and
	// on the others.
	var lost, kept string
	direct := redis.NewClient(&redis.Options{Addr: c.Addrs[1]})
	defer direct.Close()
	for i := 0; lost == "" || kept == ""; i++ {
		name := "user" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String()
		slot, err := direct.ClusterKeySlot(ctx, "{"+store.Shard(name)+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		owner, err := ownerOf(ctx, direct, slot)
		if err != nil {
			t.Fatal(err)
		}
		if owner == c.Addrs[1] && lost == "" {
			lost = name
		} else if owner != c.Addrs[1] && kept == "" {
			kept = name
		}
	}
	c.Node(1).Stop()
	c.Node(1).Start() // --save "" --appendonly no: its data is gone; nodes.conf keeps its slots
	deadline := time.Now().Add(20 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the cluster did not answer again: %v", s.Ping(ctx))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, account := range []string{"", lost} {
		err := s.CheckMarker(ctx, account)
		if !errors.Is(err, store.ErrDataLost) || !strings.Contains(err.Error(), c.Addrs[1]) {
			t.Errorf("CheckMarker(%q) after %s restarted empty = %v, want store.ErrDataLost naming it", account, c.Addrs[1], err)
		}
	}
	if err := s.CheckMarker(ctx, kept); err != nil {
		t.Errorf("CheckMarker of an account on a server that kept its data = %v, want nil", err)
	}
	// Opening the store again does not mark it: part of it is lost.
	again := openCluster(t, c)
	if err := again.CheckMarker(ctx, ""); !errors.Is(err, store.ErrDataLost) {
		t.Errorf("CheckMarker after opening the store again = %v, want store.ErrDataLost", err)
	}
}

// ownerOf returns the address of the master that serves slot.
func ownerOf(ctx context.Context, rdb *redis.Client, slot int64) (string, error) {
	ranges, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		return "", err
	}
	for _, r := range ranges {
		if int64(r.Start) <= slot && slot <= int64(r.End) {
			return r.Nodes[0].Addr, nil
		}
	}
	return "", errors.New("no server serves the slot")
}

// Opening a Cluster's store again (every command of the command line
// does) keeps what the listings show.
func TestRedisStore_ClusterOpenAgainKeepsListings(t *testing.T) {
	c := storetest.StartCluster(t)
	s := openCluster(t, c)
	ctx := t.Context()
	for _, name := range []string{"alice", "bob"} {
		if err := s.CreateAccount(ctx, store.Account{Name: name, Email: name + "@example.com"}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSession(ctx, store.Session{ID: store.SessionID(name, "s"), User: name}, time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCertificate(ctx, store.Certificate{Serial: name, User: name}); err != nil {
			t.Fatal(err)
		}
	}
	again := openCluster(t, c)
	accts, err := again.ListAccounts(ctx, store.ListQuery{})
	if err != nil || len(accts.Items) != 2 {
		t.Errorf("ListAccounts after opening again = %d accounts, %v; want 2", len(accts.Items), err)
	}
	if all, err := again.Accounts(ctx); err != nil || len(all) != 2 {
		t.Errorf("Accounts after opening again = %d, %v; want 2", len(all), err)
	}
	sessions, err := again.ListSessions(ctx, store.ListQuery{})
	if err != nil || len(sessions.Items) != 2 {
		t.Errorf("ListSessions after opening again = %d sessions, %v; want 2", len(sessions.Items), err)
	}
	certs, err := again.ListCertificates(ctx, store.ListQuery{})
	if err != nil || len(certs.Items) != 2 {
		t.Errorf("ListCertificates after opening again = %d, %v; want 2", len(certs.Items), err)
	}
	if err := again.CreateAccount(ctx, store.Account{Name: "carol", Email: "BOB@example.com"}); !errors.Is(err, store.ErrEmailTaken) {
		t.Errorf("CreateAccount with bob's email after opening again: %v, want store.ErrEmailTaken", err)
	}
}
