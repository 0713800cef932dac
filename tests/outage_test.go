package tests

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// wantUnavailable checks a clean 503: the status, Retry-After, the
// portal's own words (JSON or a page) and no internals.
func wantUnavailable(t *testing.T, what string, r response) {
	t.Helper()
	if r.Status != http.StatusServiceUnavailable {
		t.Errorf("%s during the outage: status %d, want 503; body:\n%s", what, r.Status, r.Body)
		return
	}
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("%s: 503 without Retry-After", what)
	}
	if c := r.SetCookies; len(c) != 0 {
		t.Errorf("%s: the 503 set cookies %v", what, c)
	}
	for _, leak := range []string{"goroutine", "panic", "dial tcp", "connection refused", "redis", ".go:"} {
		if strings.Contains(strings.ToLower(r.Body), leak) {
			t.Errorf("%s: the 503 shows internals (%q):\n%s", what, leak, r.Body)
		}
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var e apiError
		if err := json.Unmarshal([]byte(r.Body), &e); err != nil || e.Code != "unavailable" || e.Error == "" {
			t.Errorf("%s: 503 body %q, want {\"error\": ..., \"code\": \"unavailable\"}", what, r.Body)
		}
	} else if !strings.Contains(r.Body, "cannot reach its data store") {
		t.Errorf("%s: the 503 page does not say what is wrong:\n%s", what, r.Body)
	}
}

// With its store stopped, the portal grants nothing and says so plainly;
// once the store is back, it works again without a restart.
func TestStoreOutage_FailsClosedAndRecovers(t *testing.T) {
	t.Parallel()
	// Append-only persistence, so that the accounts survive the Redis
	// restart as they would in production.
	p := initPortal(t, "--appendonly", "yes", "--appendfsync", "always")
	if p.Redis.External() {
		t.Skip("GATEHOUSE_TEST_REDIS is a shared Redis that this test cannot stop")
	}
	p.start(t)
	p.cli(t, bobPassword+"\n", "user", "add", "bob", "--role", "employee", "--password-stdin")
	cert := p.adminCert(t)
	admin := p.client(t, &cert)
	wantRedirect(t, admin.login(t, "admin", p.AdminPassword), "/")
	bob := p.client(t, nil)
	wantRedirect(t, bob.login(t, "bob", bobPassword), "/")
	verify := func(c *client) response {
		req := c.newRequest(t, http.MethodGet, "/auth/verify", nil)
		req.Header.Set("X-Original-URL", "https://wiki.gatehouse.test/")
		return send(t, c.jar, req)
	}
	wantStatus(t, admin.jsonRequest(t, http.MethodPut, "/api/admin/apps/wiki", map[string]any{"url": "https://wiki.gatehouse.test/", "roles": []string{"employee"}}), http.StatusCreated)
	wantStatus(t, verify(bob), http.StatusOK)

	p.Redis.Stop()

	// The store cache answers from memory under its lease until the
	// portal notices the outage: at once here, where the feed's
	// connection closes with Redis, though the first request may come
	// before the feed has read that; at most the lease's life where
	// Redis just stops answering. No write can complete meanwhile
	// (docs/decisions.md, "Leases and write fences"), so nothing it
	// answers was revoked; and then the portal grants nothing.
	r := verify(bob)
	for deadline := time.Now().Add(3 * time.Second); r.Status == http.StatusOK && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		r = verify(bob)
	}
	wantUnavailable(t, "GET /auth/verify (bob)", r)

	wantUnavailable(t, "GET /readyz", bob.get(t, "/readyz"))
	wantStatus(t, bob.get(t, "/healthz"), http.StatusOK) // the process itself is alive
	wantUnavailable(t, "GET /api/session (admin)", admin.get(t, "/api/session"))
	wantUnavailable(t, "GET / (bob)", bob.get(t, "/"))
	wantUnavailable(t, "GET /admin", admin.get(t, "/admin"))
	wantUnavailable(t, "GET /api/admin/users", admin.get(t, "/api/admin/users"))
	wantUnavailable(t, "POST /login (right password)", p.client(t, nil).login(t, "bob", bobPassword))
	wantUnavailable(t, "POST /login (admin with certificate)", p.client(t, &cert).login(t, "admin", p.AdminPassword))
	wantUnavailable(t, "POST /logout", bob.post(t, "/logout", nil))
	// A planted or stolen cookie gets nothing either.
	wantUnavailable(t, "GET /api/session with bob's cookie elsewhere", p.client(t, nil).withCookie(t, http.MethodGet, "/api/session", nil, bob.cookieValue(t)))

	p.Redis.Start()

	// Back without a restart of the portal: the same sessions work, new
	// logins work, readiness is green.
	deadline := time.Now().Add(15 * time.Second)
	for bob.get(t, "/readyz").Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the portal did not become ready within 15s of the store coming back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := admin.session(t); !slices.Contains(s.EffectiveRoles, "admin") {
		t.Errorf("the admin's session after the outage: %+v, want admin in effect", s)
	}
	wantRedirect(t, p.client(t, nil).login(t, "bob", bobPassword), "/")
	wantStatus(t, verify(bob), http.StatusOK)
	if s := bob.session(t); s.User != "bob" {
		t.Errorf("bob's session after the outage: %+v", s)
	}
	if out := p.server.output(); strings.Contains(out, "goroutine ") || strings.Contains(out, "panic") {
		t.Errorf("the server log shows a panic:\n%s", out)
	}
	// The Redis client's own messages about the outage (failed dials)
	// are events of the log too.
	p.server.wantStructuredLog(t)
}
