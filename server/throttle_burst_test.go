package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/server"
	"gatehouse/store"
)

// burstStore lets a test line requests up the way a burst does on a
// busy portal: the first failure of the watched counter is written only
// once `want` requests have passed the throttle's check (or after two
// seconds), as happens when many requests arrive within one store round
// trip.
type burstStore struct {
	store.Store
	counter string
	want    int64
	reads   atomic.Int64
	ready   chan struct{}
	once    sync.Once
}

func (b *burstStore) Failures(ctx context.Context, key string) (int, error) {
	n, err := b.Store.Failures(ctx, key)
	// The hold marker is the last thing check reads.
	if key == auth.HoldCounter(b.counter) && b.reads.Add(1) >= b.want {
		b.once.Do(func() { close(b.ready) })
	}
	return n, err
}

func (b *burstStore) AddFailure(ctx context.Context, key string, ttl time.Duration) (int, error) {
	if key == b.counter {
		select {
		case <-b.ready:
		case <-time.After(2 * time.Second):
		}
	}
	return b.Store.AddFailure(ctx, key, ttl)
}

// Codes sent at one moment before the first delay starts all pass the
// throttle's check before the first of them has failed; no more of them
// are checked than MaxConsecutiveFailures, the most wrong codes (or
// passwords) an account may see before it locks.
func TestThrottle_ABurstOfCodesIsNotCheckedPastTheLock(t *testing.T) {
	const guesses = 150
	bs := &burstStore{counter: auth.FailureCounter(auth.CounterTOTP, "alice"), want: guesses, ready: make(chan struct{})}
	p := newPortalWith(t, func(c *server.Config) { bs.Store = c.Store; c.Store = bs })
	p.addAccount("alice", "correct horse battery staple", "employee")
	enroll(t, p, p.browser(), "alice", "correct horse battery staple")

	b := p.browser()
	b.login("alice", "correct horse battery staple")
	cookie := b.cookie()
	clients := make([]*browser, guesses)
	for i := range clients {
		clients[i] = p.browser()
		clients[i].setCookie(cookie)
		clients[i].get("/healthz") // connected before the burst
	}
	var checked atomic.Int64
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.post("/login/totp", url.Values{"code": {fmt.Sprintf("%06d", 100000+i)}})
			if r.Status == http.StatusUnauthorized {
				checked.Add(1)
			}
		}()
	}
	wg.Wait()
	n, _ := p.store.Failures(t.Context(), bs.counter)
	t.Logf("%d of %d simultaneous codes were checked; failure count %d", checked.Load(), guesses, n)
	if checked.Load() > auth.MaxConsecutiveFailures {
		t.Errorf("%d wrong codes were checked in one burst, more than the %d after which the account's codes must be locked", checked.Load(), auth.MaxConsecutiveFailures)
	}
}
