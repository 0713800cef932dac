package tests

import (
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// SIGTERM lets the sign-ins in flight finish (each one a bcrypt check,
// queued on the cores), refuses nothing half-way, and the process exits
// cleanly; the sessions it created are in the store afterwards.
func TestServe_SIGTERMFinishesRequestsInFlight(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	const logins = 4 // two rounds of bcrypt on two cores
	clients := make([]*client, logins)
	for i := range clients {
		clients[i] = p.client(t, nil)
		clients[i].get(t, "/login") // connected before the signal
	}
	first := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	results := make([]response, logins)
	var signalled atomic.Bool
	var afterSignal atomic.Int32
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.login(t, "admin", p.AdminPassword)
			if signalled.Load() {
				afterSignal.Add(1)
			}
			once.Do(func() { close(first) })
		}()
	}
	// bcrypt runs on at most one goroutine per core, so when the first
	// answer arrives the others are still being worked on.
	<-first
	signalled.Store(true)
	if err := p.server.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if afterSignal.Load() == 0 {
		t.Fatal("every login was answered before SIGTERM was sent; the test proved nothing")
	}
	for i, r := range results {
		// On a loaded machine a login may also be refused as busy (503),
		// which is a complete answer too; nothing may be cut off.
		if (r.Status != http.StatusSeeOther || r.location() != "/") && r.Status != http.StatusServiceUnavailable {
			t.Errorf("login %d during shutdown: %d %q, want 303 to / (or 503 busy)", i, r.Status, r.location())
		}
	}
	<-p.server.done
	if err := p.server.err; err != nil {
		t.Errorf("gatehouse serve exited with %v after SIGTERM, want a clean exit", err)
	}
	// Every session those logins made was written in full.
	var cookies []string
	for i, c := range clients {
		if results[i].Status == http.StatusSeeOther {
			cookies = append(cookies, c.cookieValue(t))
		}
	}
	p.serve(t) // on a new port: new clients
	for i, v := range cookies {
		if s := p.client(t, nil).sessionWithCookie(t, v); s.User != "admin" {
			t.Errorf("session %d after the restart: %+v", i, s)
		}
	}
}
