package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
	"gatehouse/store/redisstore"
	"gatehouse/store/storetest"
)

// reconnectWait bounds how long a test polls for the client to talk to a
// restarted Redis again.
const reconnectWait = 10 * time.Second

// openRedis starts a Redis for t (or empties the one GATEHOUSE_TEST_REDIS
// names) and opens a store on it, closed when t ends.
func openRedis(t *testing.T) (*storetest.Redis, *redisstore.Store) {
	t.Helper()
	r := storetest.StartRedis(t)
	s, err := redisstore.Open(t.Context(), r.URL)
	if err != nil {
		t.Fatalf("redisstore.Open(%s): %v", r.URL, err)
	}
	t.Cleanup(func() { s.Close() })
	return r, s
}

func TestRedisStore_Contract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		_, s := openRedis(t)
		return s
	})
}

func TestRedisStore_OutageIsErrUnavailable(t *testing.T) {
	r, s := openRedis(t)
	if r.External() {
		t.Skip("GATEHOUSE_TEST_REDIS is set: this test must stop and start its own Redis")
	}
	ctx := t.Context()
	sess := store.Session{ID: "s1", User: "alice", CreatedAt: time.Now(), LastSeen: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.PutSession(ctx, sess, time.Hour); err != nil {
		t.Fatalf("PutSession before the outage: %v", err)
	}

	r.Stop()
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"Account", func() error { _, err := s.Account(ctx, "alice"); return err }},
		{"Session", func() error { _, err := s.Session(ctx, "s1"); return err }},
		{"PutSession", func() error { return s.PutSession(ctx, sess, time.Hour) }},
		{"UpdateAccount", func() error {
			return s.UpdateAccount(ctx, "alice", func(*store.Account) error { return nil })
		}},
		{"Ping", func() error { return s.Ping(ctx) }},
	} {
		err := op.call()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with Redis down: error = %v, want store.ErrUnavailable", op.name, err)
		}
		if errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s with Redis down: error = %v, must not be store.ErrNotFound (that would fail open)", op.name, err)
		}
	}

	r.Start()
	if err := pollPing(ctx, s, reconnectWait); err != nil {
		t.Fatalf("Ping after Redis came back: %v (the client should reconnect by itself)", err)
	}
}

// pollPing pings until it succeeds or wait has passed, and returns the
// last error.
func pollPing(ctx context.Context, s *redisstore.Store, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := s.Ping(ctx)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisStore_PersistenceIsReported(t *testing.T) {
	noConfig := []string{"--rename-command", "CONFIG", ""}
	for _, tc := range []struct {
		name string
		args []string
		want bool
		// warning is what PersistenceWarnings says ("" for nothing).
		warning string
		// unsure: the warning says Redis may keep its data after all.
		unsure bool
	}{
		{"nothing kept", nil, false, "Redis keeps nothing on disk", false},
		{"append-only file", []string{"--appendonly", "yes"}, true, "", false},
		{"RDB snapshots", []string{"--save", "60 1"}, true, "", false},
		// Managed services often disable CONFIG: the append-only file
		// still shows in INFO, snapshots do not, so the warning says what
		// could not be checked instead of that nothing is kept.
		{"CONFIG disabled, append-only file", append([]string{"--appendonly", "yes"}, noConfig...), true, "", false},
		{"CONFIG disabled, RDB snapshots", append([]string{"--save", "60 1"}, noConfig...), false, "Redis may keep nothing on disk: its append-only file is off, and its snapshot settings cannot be read", true},
		// A Redis that drops keys when full would lose revocations,
		// throttle counts and TOTP replay marks without a word.
		{"a memory limit that evicts", []string{"--appendonly", "yes", "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"}, true, "Redis drops keys when its memory is full (maxmemory-policy allkeys-lru", false},
		{"a memory limit that evicts keys with a lifetime", append([]string{"--appendonly", "yes", "--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru"}, noConfig...), true, "Redis drops keys when its memory is full (maxmemory-policy volatile-lru", false},
		{"a memory limit that refuses writes", []string{"--appendonly", "yes", "--maxmemory", "64mb", "--maxmemory-policy", "noeviction"}, true, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if os.Getenv("GATEHOUSE_TEST_REDIS") != "" {
				t.Skip("GATEHOUSE_TEST_REDIS is set: this test must start Redis with its own settings")
			}
			r := storetest.StartRedis(t, tc.args...)
			s, err := redisstore.Open(t.Context(), r.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ok, detail, err := s.Persistence(t.Context())
			if err != nil || ok != tc.want || detail == "" {
				t.Errorf("Persistence = %v, %q, %v; want %v with a detail", ok, detail, err, tc.want)
			}
			w := s.PersistenceWarnings()
			switch {
			case tc.warning == "" && len(w) != 0:
				t.Errorf("PersistenceWarnings = %+v, want none", w)
			case tc.warning != "" && (len(w) != 1 || !strings.HasPrefix(w[0].Text, tc.warning) || w[0].Unsure != tc.unsure):
				t.Errorf("PersistenceWarnings = %+v, want one starting %q with Unsure %v", w, tc.warning, tc.unsure)
			}
		})
	}
}

// A redis+sentinel:// URL finds the master through a real Sentinel.
func TestRedisStore_Sentinel(t *testing.T) {
	if os.Getenv("GATEHOUSE_TEST_REDIS") != "" {
		t.Skip("GATEHOUSE_TEST_REDIS is set: this test must start its own Redis and Sentinel")
	}
	master := storetest.StartRedis(t)
	sentinel := storetest.StartSentinel(t, master)
	s, err := redisstore.Open(t.Context(), sentinel.URL)
	if err != nil {
		t.Fatalf("Open(%s): %v", sentinel.URL, err)
	}
	defer s.Close()
	if err := s.PutRole(t.Context(), store.Role{Name: "employee"}); err != nil {
		t.Fatalf("PutRole through Sentinel: %v", err)
	}
	// The write reached the master the sentinel names.
	direct, err := redisstore.Open(t.Context(), master.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if _, err := direct.Role(t.Context(), "employee"); err != nil {
		t.Errorf("the role written through Sentinel is not on the master: %v", err)
	}
	if _, err := redisstore.Open(t.Context(), "redis+sentinel://"+sentinel.Addr+"/0"); err == nil || !strings.Contains(err.Error(), "master_name") {
		t.Errorf("a sentinel URL without master_name: %v, want an error naming master_name", err)
	}
}

// View is one round trip: the client sends Redis one command.
func TestRedisStore_ViewIsOneRoundTrip(t *testing.T) {
	r, _ := openRedis(t)
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	hook := &countingHook{}
	rdb.AddHook(hook)
	s := redisstore.New(rdb)
	ctx := t.Context()
	now := time.Now()
	if err := s.CreateAccount(ctx, store.Account{Name: "alice", Roles: []string{"employee"}}); err != nil {
		t.Fatal(err)
	}
	s.PutRole(ctx, store.Role{Name: "employee"})
	s.PutApp(ctx, store.App{Name: "wiki", URL: "https://wiki.example.com/", Roles: []string{"employee"}})
	if err := s.PutSession(ctx, store.Session{ID: "s1", User: "alice", ExpiresAt: now.Add(time.Hour)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.View(ctx, "s1"); err != nil { // loads the script into Redis
		t.Fatal(err)
	}
	before := hook.n.Load()
	v, err := s.View(ctx, "s1")
	if err != nil || v.Account.Name != "alice" || len(v.Roles) != 1 || len(v.Apps) != 1 {
		t.Fatalf("View = %+v, %v", v, err)
	}
	if n := hook.n.Load() - before; n != 1 {
		t.Errorf("one View sent %d commands or pipelines to Redis, want 1", n)
	}
}

// countingHook counts what a client sends: each command and each
// pipeline is one round trip.
type countingHook struct{ n atomic.Int32 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// With append-only persistence, what was written survives a restart of
// Redis (the portal warns when Redis has no persistence).
func TestRedisStore_DataSurvivesRedisRestartWithPersistence(t *testing.T) {
	if os.Getenv("GATEHOUSE_TEST_REDIS") != "" {
		t.Skip("GATEHOUSE_TEST_REDIS is set: this test must restart its own Redis")
	}
	r := storetest.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	s, err := redisstore.Open(t.Context(), r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.CreateAccount(ctx, store.Account{Name: "alice", Roles: []string{"employee"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSession(ctx, store.Session{ID: "s1", User: "alice", ExpiresAt: time.Now().Add(time.Hour)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RaiseCounter(ctx, "crl-number:x", big.NewInt(42)); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	r.Start()
	if err := pollPing(ctx, s, reconnectWait); err != nil {
		t.Fatalf("Ping after the restart: %v", err)
	}
	if _, err := s.Account(ctx, "alice"); err != nil {
		t.Errorf("the account after a Redis restart: %v", err)
	}
	if _, err := s.Session(ctx, "s1"); err != nil {
		t.Errorf("the session after a Redis restart: %v", err)
	}
	if n, err := s.RaiseCounter(ctx, "crl-number:x", big.NewInt(1)); err != nil || n.Int64() != 42 {
		t.Errorf("the counter after a Redis restart = %v, %v; want 42", n, err)
	}
}

// BenchmarkView is the session lookup of every request: one pipeline of
// two scripts returning the session, its account and the role and app
// definitions, on one server and on a three-master Cluster (where the
// two scripts go to two servers at once).
func BenchmarkView(b *testing.B) {
	b.Run("server", func(b *testing.B) {
		benchmarkView(b, storetest.StartRedis(b).URL)
	})
	b.Run("cluster", func(b *testing.B) {
		benchmarkView(b, storetest.StartCluster(b).URL)
	})
}

func benchmarkView(b *testing.B, url string) {
	s, err := redisstore.Open(b.Context(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	now := time.Now()
	s.CreateAccount(ctx, store.Account{Name: "alice", Email: "alice@example.com", PasswordHash: strings.Repeat("x", 60), Roles: []string{"admin", "employee"}})
	for _, role := range []string{"admin", "employee", "helpdesk"} {
		s.PutRole(ctx, store.Role{Name: role, RequireCertificate: role != "employee"})
	}
	s.PutApp(ctx, store.App{Name: "wiki", URL: "https://wiki.example.com/", Roles: []string{"employee"}})
	id := store.SessionID("alice", "s1")
	if err := s.PutSession(ctx, store.Session{ID: id, User: "alice", Factors: []string{"password", "certificate"}, CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.View(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A Redis that forbids scripts to Gatehouse's user still serves View,
// in separate reads.
func TestRedisStore_ViewWithoutScripting(t *testing.T) {
	r, s := openRedis(t)
	if r.External() {
		t.Skip("GATEHOUSE_TEST_REDIS is set: this test changes the server's users")
	}
	ctx := t.Context()
	admin := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer admin.Close()
	if err := admin.Do(ctx, "ACL", "SETUSER", "noscripts", "on", ">a long test password", "~*", "+@all", "-@scripting").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	if err := s.CreateAccount(ctx, store.Account{Name: "alice", Roles: []string{"employee"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSession(ctx, store.Session{ID: "s1", User: "alice", ExpiresAt: time.Now().Add(time.Hour)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	limited, err := redisstore.Open(ctx, "redis://noscripts:a%20long%20test%20password@"+r.Addr+"/0")
	if err != nil {
		t.Fatal(err)
	}
	defer limited.Close()
	v, err := limited.View(ctx, "s1")
	if err != nil || v.Account.Name != "alice" {
		t.Errorf("View without scripting = %+v, %v; want alice's session and account", v, err)
	}
}

// TestRedisStore_RevocationsByFingerprintAreKeptOnUpgrade writes data as
// earlier versions did, revocations kept by fingerprint, and checks that
// opening the store keeps the certificate revoked by serial.
func TestRedisStore_RevocationsByFingerprintAreKeptOnUpgrade(t *testing.T) {
	ctx := t.Context()
	r := storetest.StartRedis(t)
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	for _, cmd := range [][]any{
		{"SET", "gatehouse:cert:b1", `{"serial":"b1","fingerprint":"sha256:f1","user":"alice","revoked_at":"2026-01-02T03:04:05Z"}`},
		{"SET", "gatehouse:cert:b2", `{"serial":"b2","fingerprint":"sha256:f2","user":"alice"}`},
		{"SADD", "gatehouse:certs", "b1", "b2"},
		{"SADD", "gatehouse:revoked", "sha256:f1"},
	} {
		if err := rdb.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}

	s, err := redisstore.Open(ctx, r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if revoked, err := s.IsRevoked(ctx, "sha256:any-issuer", "b1"); err != nil || !revoked {
		t.Errorf("certificate revoked before the upgrade: IsRevoked = %v, %v; want true", revoked, err)
	}
	if revoked, err := s.IsRevoked(ctx, "sha256:any-issuer", "b2"); err != nil || revoked {
		t.Errorf("certificate never revoked: IsRevoked = %v, %v; want false", revoked, err)
	}
	// Instances of the earlier version still find new revocations.
	if _, err := s.RevokeCertificate(ctx, "b2", time.Now(), "lost"); err != nil {
		t.Fatal(err)
	}
	if ok, err := rdb.SIsMember(ctx, "gatehouse:revoked", "sha256:f2").Result(); err != nil || !ok {
		t.Errorf("fingerprint of a new revocation in the earlier set = %v, %v; want true", ok, err)
	}
}

// Accounts written before emails were unique (by an older gatehouse) are
// indexed when the store is opened, and an index entry that no longer
// says the truth does not hold an email hostage.
func TestRedisStore_EmailsWrittenBeforeTheIndexAreIndexed(t *testing.T) {
	r := storetest.StartRedis(t)
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := t.Context()
	for name, email := range map[string]string{"alice": "Alice@Example.com", "bob": "shared@example.com", "carol": "SHARED@example.com"} {
		b, err := json.Marshal(store.Account{Name: name, Email: email, Roles: []string{"employee"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, "gatehouse:account:"+name, b, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.SAdd(ctx, "gatehouse:accounts", name).Err(); err != nil {
			t.Fatal(err)
		}
	}

	s, err := redisstore.Open(ctx, r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, email := range []string{"alice@example.com", "Shared@Example.com"} {
		if err := s.CreateAccount(ctx, store.Account{Name: "erin", Email: email}); !errors.Is(err, store.ErrEmailTaken) {
			t.Errorf("CreateAccount with %q, an email written before the index: error = %v, want store.ErrEmailTaken", email, err)
		}
	}
	for _, name := range []string{"bob", "carol"} {
		err := s.UpdateAccount(ctx, name, func(a *store.Account) error {
			a.Disabled = true
			return nil
		})
		if err != nil {
			t.Errorf("UpdateAccount(%s), leaving the shared email alone: %v", name, err)
		}
	}

	// Entries for an account that is gone, or that has another email
	// now, are stale: the email is free.
	rdb.HSet(ctx, "gatehouse:account-emails", "ghost@example.com", "ghost", "old@example.com", "alice")
	if err := s.CreateAccount(ctx, store.Account{Name: "frank", Email: "ghost@example.com"}); err != nil {
		t.Errorf("CreateAccount with an email indexed for a missing account: %v", err)
	}
	err = s.UpdateAccount(ctx, "frank", func(a *store.Account) error {
		a.Email = "OLD@example.com"
		return nil
	})
	if err != nil {
		t.Errorf("UpdateAccount to an email indexed for an account that has another: %v", err)
	}
	if err := s.CreateAccount(ctx, store.Account{Name: "gina", Email: "old@example.com"}); !errors.Is(err, store.ErrEmailTaken) {
		t.Errorf("CreateAccount with frank's email: error = %v, want store.ErrEmailTaken", err)
	}
}

// A Redis restarted without persistence has lost the marker: the store
// says so (and never that an account does not exist, which the caller
// would otherwise hear).
func TestRedisStore_LostDataIsNoticed(t *testing.T) {
	r, s := openRedis(t)
	if r.External() {
		t.Skip("GATEHOUSE_TEST_REDIS is set: this test must restart its own Redis")
	}
	ctx := t.Context()
	if err := s.Mark(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, store.Account{Name: "alice", Roles: []string{"employee"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckMarker(ctx, "alice"); err != nil {
		t.Fatalf("CheckMarker before the restart: %v", err)
	}
	r.Stop()
	r.Start() // --save "" --appendonly no: everything is gone
	if err := pollPing(ctx, s, reconnectWait); err != nil {
		t.Fatalf("Ping after the restart: %v", err)
	}
	for _, account := range []string{"", "alice"} {
		err := s.CheckMarker(ctx, account)
		if !errors.Is(err, store.ErrDataLost) {
			t.Errorf("CheckMarker(%q) after Redis restarted empty = %v, want store.ErrDataLost", account, err)
		}
		if err != nil && strings.Contains(err.Error(), "alice") {
			t.Errorf("CheckMarker's error names the account (it may be a password typed as a name): %v", err)
		}
	}
	// Opening the empty store again does not mark it: it holds nothing.
	again, err := redisstore.Open(ctx, r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := again.CheckMarker(ctx, ""); !errors.Is(err, store.ErrDataLost) {
		t.Errorf("CheckMarker after opening the emptied store again = %v, want store.ErrDataLost", err)
	}
}

// A store written before markers existed holds accounts but no marker:
// opening it marks it.
func TestRedisStore_OlderStoreIsMarkedWhenItHoldsAccounts(t *testing.T) {
	r := storetest.StartRedis(t)
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := t.Context()
	if err := rdb.Set(ctx, "gatehouse:account:alice", `{"name":"alice","roles":["employee"]}`, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SAdd(ctx, "gatehouse:accounts", "alice").Err(); err != nil {
		t.Fatal(err)
	}
	s, err := redisstore.Open(ctx, r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CheckMarker(ctx, ""); err != nil {
		t.Errorf("CheckMarker of an older store with an account = %v, want it marked when opened", err)
	}
}

// Persistence is read again whenever the client reconnects: a Redis that
// comes back from a restart without persistence is noticed without a
// restart of the portal, and one that comes back with it is no longer
// warned about.
func TestRedisStore_PersistenceIsReadAgainAfterReconnecting(t *testing.T) {
	if os.Getenv("GATEHOUSE_TEST_REDIS") != "" {
		t.Skip("GATEHOUSE_TEST_REDIS is set: this test must restart its own Redis with its own settings")
	}
	r := storetest.StartRedis(t, "--appendonly", "yes")
	s, err := redisstore.Open(t.Context(), r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if w := s.PersistenceWarnings(); len(w) != 0 {
		t.Fatalf("PersistenceWarnings with an append-only Redis = %+v, want none", w)
	}
	r.Restart() // no persistence now
	if err := pollPing(ctx, s, reconnectWait); err != nil {
		t.Fatalf("Ping after the restart: %v", err)
	}
	if w := s.PersistenceWarnings(); len(w) != 1 || !strings.Contains(w[0].Text, "keeps nothing on disk") || w[0].Unsure {
		t.Errorf("PersistenceWarnings after Redis came back without persistence = %+v, want one saying it keeps nothing on disk", w)
	}
	r.Restart("--appendonly", "yes")
	if err := pollPing(ctx, s, reconnectWait); err != nil {
		t.Fatalf("Ping after the second restart: %v", err)
	}
	if w := s.PersistenceWarnings(); len(w) != 0 {
		t.Errorf("PersistenceWarnings after Redis came back with persistence = %+v, want none", w)
	}
}

// Ending many sessions of one user never sends Redis one huge command:
// Redis runs one command at a time, and a DEL of 50,000 keys held every
// other instance up for about 100 ms. The sessions go in batches.
func TestRedisStore_DeleteUserSessionsInBatches(t *testing.T) {
	r, _ := openRedis(t)
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	hook := &largestDelete{}
	rdb.AddHook(hook)
	s := redisstore.New(rdb)
	ctx := t.Context()
	const many = 1500
	for i := range many {
		if err := s.PutSession(ctx, store.Session{ID: fmt.Sprintf("a%d", i), User: "alice", ExpiresAt: time.Now().Add(time.Hour)}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutSession(ctx, store.Session{ID: "b1", User: "bob", ExpiresAt: time.Now().Add(time.Hour)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteUserSessions(ctx, "alice")
	if err != nil || n != many {
		t.Fatalf("DeleteUserSessions = %d, %v; want %d", n, err, many)
	}
	if left, err := s.Sessions(ctx, "alice"); err != nil || len(left) != 0 {
		t.Errorf("alice's sessions after DeleteUserSessions = %d, %v; want none", len(left), err)
	}
	if keys, _ := rdb.Keys(ctx, "gatehouse:session:a*").Result(); len(keys) != 0 {
		t.Errorf("%d of alice's session records are left", len(keys))
	}
	if _, err := s.Session(ctx, "b1"); err != nil {
		t.Errorf("bob's session: %v", err)
	}
	if got := hook.most.Load(); got > 500 || got == 0 {
		t.Errorf("the largest delete named %d keys, want at most 500 per command", got)
	}
	if got := hook.commands.Load(); got < many/500 {
		t.Errorf("%d delete commands for %d sessions, want batches of at most 500", got, many)
	}
}

// largestDelete records the most keys one DEL or UNLINK named, and how
// many there were.
type largestDelete struct{ most, commands atomic.Int32 }

func (h *largestDelete) note(cmd redis.Cmder) {
	if name := cmd.Name(); name != "del" && name != "unlink" {
		return
	}
	h.commands.Add(1)
	n := int32(len(cmd.Args()) - 1)
	for {
		old := h.most.Load()
		if n <= old || h.most.CompareAndSwap(old, n) {
			return
		}
	}
}

func (h *largestDelete) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *largestDelete) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.note(cmd)
		return next(ctx, cmd)
	}
}

func (h *largestDelete) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.note(c)
		}
		return next(ctx, cmds)
	}
}

// BenchmarkDeleteUserSessions ends 50,000 sessions of one user while
// another client pings Redis without pause, as other portal instances
// would use it meanwhile: max-ping-ms is the longest that client waited
// (Go's scheduling on a busy machine included), max-cmd-ms the longest
// one command ran inside Redis (its slow log), during which Redis
// answered nobody else. Run with -benchtime=3x (each round writes the
// 50,000 sessions first).
func BenchmarkDeleteUserSessions(b *testing.B) {
	r := storetest.StartRedis(b, "--slowlog-log-slower-than", "100", "--slowlog-max-len", "10000")
	admin := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer admin.Close()
	s, err := redisstore.Open(b.Context(), r.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	other, err := redisstore.Open(b.Context(), r.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer other.Close()
	ctx := b.Context()
	const sessions = 50_000
	var worst, longest time.Duration
	for range b.N {
		b.StopTimer()
		fill(b, s, "alice", sessions)
		admin.SlowLogReset(ctx)
		stop := make(chan struct{})
		done := make(chan time.Duration)
		go func() {
			var most time.Duration
			for {
				select {
				case <-stop:
					done <- most
					return
				default:
				}
				start := time.Now()
				if err := other.Ping(ctx); err != nil {
					b.Error(err)
				}
				most = max(most, time.Since(start))
			}
		}()
		b.StartTimer()
		n, err := s.DeleteUserSessions(ctx, "alice")
		b.StopTimer()
		close(stop)
		worst = max(worst, <-done)
		if err != nil || n != sessions {
			b.Fatalf("DeleteUserSessions = %d, %v", n, err)
		}
		slow, err := admin.SlowLogGet(ctx, -1).Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range slow {
			longest = max(longest, e.Duration)
		}
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ping-ms")
	b.ReportMetric(float64(longest.Microseconds())/1000, "max-cmd-ms")
}

// fill writes n sessions of user, as the portal writes them.
func fill(b *testing.B, s *redisstore.Store, user string, n int) {
	b.Helper()
	const writers = 16
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				now := time.Now()
				sess := store.Session{ID: fmt.Sprintf("%s-%d", user, i), User: user, Factors: []string{"password"}, CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}
				if err := s.PutSession(b.Context(), sess, time.Hour); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Records written by an earlier version, which kept only sets, are in
// the listings once the store is opened.
func TestRedisStore_ListsIncludeWhatAnEarlierVersionWrote(t *testing.T) {
	r := storetest.StartRedis(t)
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	write := func(key string, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, key, b, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"bob", "alice"} {
		write("gatehouse:account:"+n, store.Account{Name: n, Roles: []string{"employee"}})
		rdb.SAdd(ctx, "gatehouse:accounts", n)
	}
	write("gatehouse:cert:0b", store.Certificate{Serial: "0b", User: "bob", IssuedAt: now})
	write("gatehouse:cert:0a", store.Certificate{Serial: "0a", User: "alice", IssuedAt: now.Add(time.Minute)})
	rdb.SAdd(ctx, "gatehouse:certs", "0a", "0b")
	write("gatehouse:session:s2", store.Session{ID: "s2", User: "alice", CreatedAt: now.Add(time.Minute)})
	write("gatehouse:session:s1", store.Session{ID: "s1", User: "alice", CreatedAt: now})
	rdb.SAdd(ctx, "gatehouse:user-sessions:alice", "s1", "s2", "expired")
	rdb.Expire(ctx, "gatehouse:user-sessions:alice", time.Hour)

	s, err := redisstore.Open(ctx, r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	accts, err := s.ListAccounts(ctx, store.ListQuery{})
	if err != nil || len(accts.Items) != 2 || accts.Items[0].Name != "alice" {
		t.Errorf("ListAccounts = %+v, %v; want alice and bob", accts.Items, err)
	}
	certs, err := s.ListCertificates(ctx, store.ListQuery{})
	if err != nil || len(certs.Items) != 2 || certs.Items[0].Serial != "0b" {
		t.Errorf("ListCertificates = %+v, %v; want 0b then 0a", certs.Items, err)
	}
	mine, err := s.ListCertificates(ctx, store.ListQuery{User: "alice"})
	if err != nil || len(mine.Items) != 1 || mine.Items[0].Serial != "0a" {
		t.Errorf("ListCertificates of alice = %+v, %v; want 0a", mine.Items, err)
	}
	sessions, err := s.ListSessions(ctx, store.ListQuery{})
	if err != nil || len(sessions.Items) != 2 || sessions.Items[0].ID != "s1" {
		t.Errorf("ListSessions = %+v, %v; want s1 then s2", sessions.Items, err)
	}
	// The sessions an earlier version indexed are still ended.
	if n, err := s.DeleteUserSessions(ctx, "alice"); err != nil || n != 2 {
		t.Errorf("DeleteUserSessions = %d, %v; want 2", n, err)
	}
}
