package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
