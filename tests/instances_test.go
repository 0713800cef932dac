package tests

import (
	"crypto/tls"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Two portal instances on one Redis, each with its store cache: what an
// admin changes on one instance takes effect on the other's very next
// request (SPEC "Performance": caching only with invalidation that keeps
// revocation immediate across instances). Each check first makes the
// other instance answer the same session a few times, so that it is
// served from memory when the change comes.
func TestTwoInstances_ChangeOnOneTakesEffectOnTheOthersNextRequest(t *testing.T) {
	t.Parallel()
	a := startPortal(t)
	b := &portal{Data: a.Data, Redis: a.Redis, bin: a.bin, logDir: t.TempDir()}
	b.start(t)
	// Both answer from memory under their leases (docs/decisions.md,
	// "Leases and write fences"): what follows is the writers' wait.
	waitForLeases(t, a.Redis.Addr, 2)

	adminCert := a.adminCert(t)
	admin := a.client(t, &adminCert)
	wantRedirect(t, admin.login(t, "admin", a.AdminPassword), "/")
	a.cli(t, "", "role", "set", "ops", "--require-certificate")
	a.cli(t, danaPassword+"\n", "user", "add", "dana", "--role", "employee", "--role", "ops", "--password-stdin")
	danaCert, danaFP, danaSerial := a.issueCert(t, "dana")

	// signIn signs dana in on instance a (with her certificate when
	// cert) and returns her client on instance b with that session.
	signIn := func(t *testing.T, cert bool) (*client, string) {
		t.Helper()
		var onA, onB *client
		if cert {
			onA, onB = a.client(t, &danaCert), b.client(t, &danaCert)
		} else {
			onA, onB = a.client(t, nil), b.client(t, nil)
		}
		wantRedirect(t, onA.login(t, "dana", danaPassword), "/")
		cookie := onA.cookieValue(t)
		for range 3 {
			onB.sessionWithCookie(t, cookie)
		}
		return onB, cookie
	}

	t.Run("RoleRequirementChanged", func(t *testing.T) {
		onB, cookie := signIn(t, false)
		wantEffective(t, "dana before", onB.sessionWithCookie(t, cookie), "employee")
		r := admin.jsonRequest(t, "PUT", "/api/admin/roles/employee", map[string]any{"require_certificate": true})
		wantStatus(t, r, http.StatusOK)
		if s := onB.sessionWithCookie(t, cookie); len(s.EffectiveRoles) != 0 {
			t.Errorf("dana on b right after employee needs a certificate: effective roles %q, want none", s.EffectiveRoles)
		}
		r = admin.jsonRequest(t, "PUT", "/api/admin/roles/employee", map[string]any{"require_certificate": false})
		wantStatus(t, r, http.StatusOK)
		wantEffective(t, "dana on b right after the requirement was lifted", onB.sessionWithCookie(t, cookie), "employee")
	})

	// b looks for a certificate's owners in memory (store/cached,
	// AccountKeys): a pin made through a the moment before counts there.
	t.Run("CertificatePinnedOnAnotherAccount", func(t *testing.T) {
		a.cli(t, "a long passphrase for erin, 2026\n", "user", "add", "erin", "--role", "employee", "--password-stdin")
		// Sign-ins on b after erin exists: b's accounts are in memory
		// when the pin comes.
		for range 2 {
			onB := b.client(t, &danaCert)
			wantRedirect(t, onB.login(t, "dana", danaPassword), "/")
			wantEffective(t, "dana on b with her certificate", onB.session(t), "employee", "ops")
		}
		a.cli(t, "", "user", "pin", "erin", "--fingerprint", danaFP)
		onB := b.client(t, &danaCert)
		wantRedirect(t, onB.login(t, "dana", danaPassword), "/")
		if s := onB.session(t); slices.Contains(s.EffectiveRoles, "ops") {
			t.Errorf("dana on b with a certificate now pinned on erin too: effective roles %q, want no ops (it names two accounts)", s.EffectiveRoles)
		}
		a.cli(t, "", "user", "unpin", "erin", danaFP)
	})

	t.Run("CertificateRevoked", func(t *testing.T) {
		onB, cookie := signIn(t, true)
		if s := onB.sessionWithCookie(t, cookie); !slices.Contains(s.EffectiveRoles, "ops") {
			t.Fatalf("dana with her certificate: effective roles %q, want ops", s.EffectiveRoles)
		}
		r := admin.jsonRequest(t, "POST", "/api/admin/certificates/"+danaSerial+"/revoke", map[string]string{"reason": "laptop lost"})
		wantStatus(t, r, http.StatusOK)
		r = onB.withCookie(t, http.MethodGet, "/api/session", nil, cookie)
		if r.Status == http.StatusOK {
			var s sessionInfo
			decodeJSON(t, r, &s)
			if slices.Contains(s.EffectiveRoles, "ops") {
				t.Errorf("dana on b right after her certificate was revoked: effective roles %q, want no ops", s.EffectiveRoles)
			}
		}
	})

	t.Run("SessionEnded", func(t *testing.T) {
		onB, cookie := signIn(t, false)
		r := admin.jsonRequest(t, "DELETE", "/api/admin/users/dana/sessions", nil)
		wantStatus(t, r, http.StatusOK)
		wantUnauthenticated(t, onB.withCookie(t, http.MethodGet, "/api/session", nil, cookie))
	})

	t.Run("AccountDisabled", func(t *testing.T) {
		onB, cookie := signIn(t, false)
		r := admin.jsonRequest(t, "PATCH", "/api/admin/users/dana", map[string]any{"disabled": true})
		wantStatus(t, r, http.StatusOK)
		wantUnauthenticated(t, onB.withCookie(t, http.MethodGet, "/api/session", nil, cookie))
	})
}

// The embedded store: the command line writes to the file while the
// server runs, and the server's next request sees it, cache or not.
func TestEmbeddedStore_CLIChangeTakesEffectOnTheServersNextRequest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := &portal{Data: filepath.Join(dir, "data"), bin: gatehouseBinary(t), logDir: dir}
	p.start(t)
	p.cli(t, "", "role", "set", "ops", "--require-certificate")
	p.cli(t, danaPassword+"\n", "user", "add", "dana", "--role", "employee", "--role", "ops", "--password-stdin")
	danaCert, _, danaSerial := p.issueCert(t, "dana")

	signIn := func(t *testing.T, cert *tls.Certificate) (*client, string) {
		t.Helper()
		c := p.client(t, cert)
		wantRedirect(t, c.login(t, "dana", danaPassword), "/")
		cookie := c.cookieValue(t)
		for range 3 {
			c.sessionWithCookie(t, cookie)
		}
		return c, cookie
	}

	t.Run("RoleRequirementChanged", func(t *testing.T) {
		c, cookie := signIn(t, nil)
		p.cli(t, "", "role", "set", "employee", "--require-certificate")
		if s := c.sessionWithCookie(t, cookie); len(s.EffectiveRoles) != 0 {
			t.Errorf("right after employee needs a certificate: effective roles %q, want none", s.EffectiveRoles)
		}
		p.cli(t, "", "role", "set", "employee", "--require-certificate=false")
		wantEffective(t, "right after the requirement was lifted", c.sessionWithCookie(t, cookie), "employee")
	})
	t.Run("CertificateRevoked", func(t *testing.T) {
		c, cookie := signIn(t, &danaCert)
		if s := c.sessionWithCookie(t, cookie); !slices.Contains(s.EffectiveRoles, "ops") {
			t.Fatalf("with her certificate: effective roles %q, want ops", s.EffectiveRoles)
		}
		p.cli(t, "", "cert", "revoke", danaSerial, "--reason", "laptop lost")
		if r := c.withCookie(t, http.MethodGet, "/api/session", nil, cookie); r.Status == http.StatusOK {
			var s sessionInfo
			decodeJSON(t, r, &s)
			if slices.Contains(s.EffectiveRoles, "ops") {
				t.Errorf("right after the certificate was revoked: effective roles %q, want no ops", s.EffectiveRoles)
			}
		}
	})
	t.Run("SessionsEnded", func(t *testing.T) {
		c, cookie := signIn(t, nil)
		p.cli(t, "", "session", "end", "dana")
		wantUnauthenticated(t, c.withCookie(t, http.MethodGet, "/api/session", nil, cookie))
	})
	t.Run("AccountDisabled", func(t *testing.T) {
		c, cookie := signIn(t, nil)
		p.cli(t, "", "user", "disable", "dana")
		wantUnauthenticated(t, c.withCookie(t, http.MethodGet, "/api/session", nil, cookie))
	})
}

// waitForLeases waits, within a bound, until the Redis at addr lists n
// store cache leases.
func waitForLeases(t *testing.T, addr string, n int64) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	var got int64
	var err error
	for range 100 {
		if got, err = rdb.SCard(t.Context(), "gatehouse:fence:holders").Result(); err == nil && got == n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("Redis lists %d store cache leases (%v), want %d: an instance answers with a read barrier", got, err, n)
}
