package tests

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gatehouse/auth"
	"gatehouse/store/redisstore"
)

// End-to-end tests of the help-desk JSON API (/api/helpdesk/…) and of
// changing one's password through /api/account/password.

// helpdeskSignIn makes hana, with roles helpdesk and employee and a
// certificate from the CLI, and returns her client signed in with it:
// effective role helpdesk.
func (p *portal) helpdeskSignIn(t *testing.T) *client {
	t.Helper()
	p.addUser(t, "hana", passphrase("hana"), "helpdesk", "employee")
	cert, _, _ := p.issueCert(t, "hana")
	c := p.signIn(t, &cert, "hana", passphrase("hana"))
	wantEffective(t, "hana with her certificate", c.session(t), "employee", "helpdesk")
	return c
}

// helpdesk posts a help-desk action on name with a reason.
func (c *client) helpdesk(t *testing.T, name, action, reason string) response {
	t.Helper()
	return c.jsonRequest(t, "POST", "/api/helpdesk/users/"+name+"/"+action, map[string]string{"reason": reason})
}

// findUser is the one account GET /api/helpdesk/users?q=name finds
// under that exact name.
func (c *client) findUser(t *testing.T, name string) apiUser {
	t.Helper()
	users := c.users(t, "/api/helpdesk/users?q="+url.QueryEscape(name))
	i := slices.IndexFunc(users, func(u apiUser) bool { return u.Name == name })
	if i < 0 {
		t.Fatalf("GET /api/helpdesk/users?q=%s does not find %s: %+v", name, name, users)
	}
	return users[i]
}

// enrollTOTP switches TOTP on for c's account through the JSON API, as
// a script would, and returns the secret, the recovery codes and the
// time whose code confirmed the enrollment (that time step is spent).
func enrollTOTP(t *testing.T, c *client, password string) (secret string, recovery []string, used time.Time) {
	t.Helper()
	r := c.jsonRequest(t, "POST", "/api/account/totp", nil)
	wantStatus(t, r, http.StatusOK)
	var start struct {
		Secret string `json:"secret"`
	}
	decodeJSON(t, r, &start)
	if start.Secret == "" {
		t.Fatalf("POST /api/account/totp gave no secret: %s", r.Body)
	}
	used = time.Now()
	r = c.jsonRequest(t, "POST", "/api/account/totp/confirm", map[string]string{"code": totpCode(t, start.Secret, used), "password": password})
	wantStatus(t, r, http.StatusOK)
	var done struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	decodeJSON(t, r, &done)
	if len(done.RecoveryCodes) != 10 {
		t.Fatalf("%d recovery codes, want 10: %s", len(done.RecoveryCodes), r.Body)
	}
	return start.Secret, done.RecoveryCodes, used
}

// freshCode is a code for secret from a time step after used's and
// within the portal's ±1 step skew of now.
func freshCode(t *testing.T, secret string, used time.Time) string {
	t.Helper()
	at := time.Now()
	if at.Unix()/30 <= used.Unix()/30 {
		at = used.Add(30 * time.Second)
	}
	return totpCode(t, secret, at)
}

// wrongCode is six digits that no time step near now accepts for secret.
func wrongCode(t *testing.T, secret string) string {
	t.Helper()
	now := time.Now()
	near := map[string]bool{}
	for d := -3; d <= 3; d++ {
		near[totpCode(t, secret, now.Add(time.Duration(d)*30*time.Second))] = true
	}
	for _, c := range []string{"000000", "111111", "222222", "333333", "444444", "555555", "666666", "777777", "888888"} {
		if !near[c] {
			return c
		}
	}
	t.Fatal("no wrong code found")
	return ""
}

func TestHelpdeskAPI_Boundaries(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	hana := p.helpdeskSignIn(t)
	p.addUser(t, "hal", passphrase("hal"), "helpdesk", "employee")
	hal := p.signIn(t, nil, "hal", passphrase("hal"))
	p.addUser(t, "ivan", passphrase("ivan"), "employee")
	ivan := p.signIn(t, nil, "ivan", passphrase("ivan"))
	actions := []string{"reset-password", "reset-totp", "unlock"}

	t.Run("search", func(t *testing.T) {
		r := hana.get(t, "/api/helpdesk/users?q=iv")
		wantStatus(t, r, http.StatusOK)
		var out struct {
			Users []apiUser `json:"users"`
		}
		decodeJSON(t, r, &out)
		if diff := cmp.Diff([]string{"ivan"}, userNames(out.Users)); diff != "" {
			t.Errorf("q=iv (-want +got):\n%s", diff)
		}
		for _, secret := range []string{"$2a$", "$2b$", "password_hash", "totp_secret", passphrase("ivan")} {
			if strings.Contains(r.Body, secret) {
				t.Errorf("the search answer contains %q:\n%s", secret, r.Body)
			}
		}
	})

	t.Run("privileged targets", func(t *testing.T) {
		for _, target := range []string{"admin", "hal"} {
			for _, action := range actions {
				r := hana.helpdesk(t, target, action, "INC-100 "+target+" "+action)
				wantAPIError(t, r, http.StatusForbidden, "privileged_target", target, "administrator")
			}
		}
		// Nothing happened to them: their sessions and passwords stand.
		wantEffective(t, "the admin after refused resets", admin.session(t), "admin", "employee")
		hal.session(t)
		p.signIn(t, nil, "admin", p.AdminPassword)
		p.signIn(t, nil, "hal", passphrase("hal"))

		// Each refused attempt is in the audit trail as a failure.
		page, raw := admin.auditQuery(t, url.Values{"actor": {"hana"}, "limit": {"1000"}})
		type attempt struct{ Action, Target, Reason string }
		var got []attempt
		for _, e := range page.Events {
			if e.Target != "admin" && e.Target != "hal" {
				continue
			}
			got = append(got, attempt{e.Action, e.Target, e.Reason})
			if e.Outcome != "failure" || !slices.Contains(e.ActorFactors, "certificate") || e.ClientAddr == "" || e.Time.IsZero() {
				t.Errorf("refused attempt event %+v: want outcome failure, actor factors with certificate, client_addr and time", e)
			}
		}
		var want []attempt
		for _, target := range []string{"hal", "admin"} { // newest first
			for _, action := range slices.Backward(actions) {
				want = append(want, attempt{"helpdesk." + strings.ReplaceAll(action, "-", "_"), target, "INC-100 " + target + " " + action})
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("refused attempts in the audit trail (-want +got):\n%s\n%s", diff, raw)
		}
	})

	t.Run("self", func(t *testing.T) {
		for _, action := range actions {
			wantAPIError(t, hana.helpdesk(t, "hana", action, "INC-101"), http.StatusForbidden, "self", "your own account")
			wantAPIError(t, admin.helpdesk(t, "admin", action, "INC-101"), http.StatusForbidden, "self", "your own account")
		}
		hana.session(t)
		admin.session(t)
	})

	t.Run("reason", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body any
			code string
		}{
			{"no body field", map[string]string{}, "reason_required"},
			{"empty", map[string]string{"reason": ""}, "reason_required"},
			{"blank", map[string]string{"reason": " \t "}, "reason_required"},
			{"too long", map[string]string{"reason": strings.Repeat("x", 201)}, "reason_too_long"},
			{"control characters", map[string]string{"reason": "INC-1\x1b[2J"}, "bad_reason"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, action := range actions {
					r := hana.jsonRequest(t, "POST", "/api/helpdesk/users/ivan/"+action, tc.body)
					wantAPIError(t, r, http.StatusBadRequest, tc.code)
				}
			})
		}
		wantAPIError(t, hana.jsonRequest(t, "POST", "/api/helpdesk/users/ivan/unlock", nil), http.StatusBadRequest, "reason_required", "reason")
		ivan.session(t) // nothing was done to him
	})

	t.Run("unknown target or action", func(t *testing.T) {
		wantAPIError(t, hana.helpdesk(t, "nobody", "reset-password", "INC-102"), http.StatusNotFound, "no_such_user", "nobody")
		wantAPIError(t, hana.helpdesk(t, "ivan", "delete", "INC-102"), http.StatusNotFound, "not_found")
		ivan.session(t)
	})

	t.Run("without the certificate", func(t *testing.T) {
		phone := p.signIn(t, nil, "hana", passphrase("hana"))
		wantAPIError(t, phone.get(t, "/api/helpdesk/users?q=ivan"), http.StatusForbidden, "factor_required", "certificate")
		for _, action := range actions {
			wantAPIError(t, phone.helpdesk(t, "ivan", action, "INC-103"), http.StatusForbidden, "factor_required", "certificate")
		}
		ivan.session(t)
	})

	t.Run("others", func(t *testing.T) {
		wantAPIError(t, hana.get(t, "/api/admin/audit"), http.StatusForbidden, "forbidden", "admin")
		wantAPIError(t, hana.jsonRequest(t, "PATCH", "/api/admin/users/hana", map[string]any{"roles": []string{"admin", "helpdesk"}}), http.StatusForbidden, "forbidden")
		wantAPIError(t, ivan.get(t, "/api/helpdesk/users"), http.StatusForbidden, "forbidden", "helpdesk")
		wantAPIError(t, ivan.helpdesk(t, "hal", "reset-password", "INC-104"), http.StatusForbidden, "forbidden")
		anonymous := p.client(t, nil)
		wantAPIError(t, anonymous.get(t, "/api/helpdesk/users"), http.StatusUnauthorized, "unauthenticated")
		wantAPIError(t, anonymous.helpdesk(t, "ivan", "reset-password", "INC-104"), http.StatusUnauthorized, "unauthenticated")
		hal.session(t)
		ivan.session(t)
	})

	// An admin may act on help-desk staff; the target's sessions end.
	t.Run("admin on a privileged target", func(t *testing.T) {
		r := admin.helpdesk(t, "hal", "reset-password", "INC-105")
		wantStatus(t, r, http.StatusOK)
		wantUnauthenticated(t, hal.get(t, "/api/session"))
	})
}

func TestHelpdeskAPI_ResetPassword(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	hana := p.helpdeskSignIn(t)
	oldPassword := passphrase("ivan")
	p.addUser(t, "ivan", oldPassword, "employee")
	ivan := p.signIn(t, nil, "ivan", oldPassword)

	r := hana.helpdesk(t, "ivan", "reset-password", "INC-3001 locked out")
	wantStatus(t, r, http.StatusOK)
	var out struct {
		TemporaryPassword string `json:"temporary_password"`
	}
	decodeJSON(t, r, &out)
	temp := out.TemporaryPassword
	if n := len([]rune(temp)); n < 15 {
		t.Fatalf("temporary_password %q has %d characters, want at least 15", temp, n)
	}
	wantUnauthenticated(t, ivan.get(t, "/api/session"))
	wantStatus(t, p.client(t, nil).login(t, "ivan", oldPassword), http.StatusUnauthorized)
	if !hana.findUser(t, "ivan").MustChangePassword {
		t.Errorf("after the reset: must_change_password = false")
	}

	// The temporary password opens a session that can only change it.
	ivan = p.client(t, nil)
	wantRedirect(t, ivan.login(t, "ivan", temp), "/account/password")
	wantAPIError(t, ivan.get(t, "/api/session"), http.StatusUnauthorized, "incomplete", "password")
	newPassword := "ivan's own new passphrase, chosen today"
	wantAPIError(t, ivan.jsonRequest(t, "POST", "/api/account/password", map[string]string{"current": oldPassword, "new": newPassword, "confirm": newPassword}),
		http.StatusUnauthorized, "bad_password")
	wantStatus(t, ivan.jsonRequest(t, "POST", "/api/account/password", map[string]string{"current": temp, "new": newPassword, "confirm": newPassword}),
		http.StatusNoContent)
	s := ivan.session(t)
	if s.User != "ivan" || !slices.Equal(s.Factors, []string{"password"}) {
		t.Errorf("after choosing a new password: %+v", s)
	}
	wantEffective(t, "ivan after choosing a new password", s, "employee")
	if hana.findUser(t, "ivan").MustChangePassword {
		t.Errorf("after the change: must_change_password = true")
	}

	// The temporary password served once; the new one works.
	wantStatus(t, p.client(t, nil).login(t, "ivan", temp), http.StatusUnauthorized)
	wantStatus(t, p.client(t, nil).login(t, "ivan", oldPassword), http.StatusUnauthorized)
	p.signIn(t, nil, "ivan", newPassword)

	page, raw := admin.auditQuery(t, url.Values{"action": {"helpdesk.reset_password"}})
	if len(page.Events) != 1 {
		t.Fatalf("%d helpdesk.reset_password events, want 1:\n%s", len(page.Events), raw)
	}
	e := page.Events[0]
	if e.Actor != "hana" || e.Target != "ivan" || e.Reason != "INC-3001 locked out" || e.Outcome != "success" ||
		!slices.Contains(e.ActorFactors, "certificate") || e.ClientAddr != "127.0.0.1" {
		t.Errorf("reset event = %+v", e)
	}
	_, all := admin.auditQuery(t, url.Values{"limit": {"1000"}})
	for name, secret := range map[string]string{"temporary": temp, "old": oldPassword, "new": newPassword} {
		if strings.Contains(all, secret) {
			t.Errorf("the audit trail contains the %s password", name)
		}
	}
}

func TestHelpdeskAPI_ResetTOTP(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	hana := p.helpdeskSignIn(t)
	password := passphrase("ivan")
	p.addUser(t, "ivan", password, "employee")
	ivan := p.signIn(t, nil, "ivan", password)
	secret, recovery, _ := enrollTOTP(t, ivan, password)
	if u := hana.findUser(t, "ivan"); !u.TOTPEnrolled || u.RecoveryCodesLeft != 10 {
		t.Fatalf("after enrollment: %+v, want totp_enrolled and 10 recovery codes", u)
	}
	pending := p.client(t, nil)
	if r := pending.login(t, "ivan", password); !strings.HasPrefix(r.location(), "/login/totp") {
		t.Fatalf("with TOTP enrolled the login goes to %q, want /login/totp", r.location())
	}

	r := hana.helpdesk(t, "ivan", "reset-totp", "INC-3002 new phone")
	wantStatus(t, r, http.StatusOK)
	wantUnauthenticated(t, ivan.get(t, "/api/session"))
	wantUnauthenticated(t, pending.get(t, "/api/session"))
	if u := hana.findUser(t, "ivan"); u.TOTPEnrolled || u.RecoveryCodesLeft != 0 {
		t.Errorf("after the reset: %+v, want no TOTP and no recovery codes", u)
	}

	// The password alone signs in now.
	ivan = p.signIn(t, nil, "ivan", password)
	if s := ivan.session(t); !slices.Equal(s.Factors, []string{"password"}) {
		t.Errorf("factors after the reset: %q, want password", s.Factors)
	}

	// A new enrollment: the old recovery codes and the old secret count
	// for nothing.
	newSecret, _, _ := enrollTOTP(t, ivan, password)
	if newSecret == secret {
		t.Fatal("the new enrollment reuses the old secret")
	}
	c := p.client(t, nil)
	if r := c.login(t, "ivan", password); !strings.HasPrefix(r.location(), "/login/totp") {
		t.Fatalf("after re-enrolling the login goes to %q, want /login/totp", r.location())
	}
	for _, code := range []string{recovery[0], recovery[9]} {
		if r := c.post(t, "/login/totp", url.Values{"code": {code}}); r.Status != http.StatusUnauthorized {
			t.Errorf("an old recovery code after the reset: status %d, want 401", r.Status)
		}
	}
	if old, current := totpCode(t, secret, time.Now()), totpCode(t, newSecret, time.Now()); old != current {
		if r := c.post(t, "/login/totp", url.Values{"code": {old}}); r.Status != http.StatusUnauthorized {
			t.Errorf("a code of the old secret after the reset: status %d, want 401", r.Status)
		}
	}
	wantAPIError(t, c.get(t, "/api/session"), http.StatusUnauthorized, "incomplete")

	page, raw := admin.auditQuery(t, url.Values{"action": {"helpdesk.reset_totp"}})
	if len(page.Events) != 1 || page.Events[0].Actor != "hana" || page.Events[0].Target != "ivan" ||
		page.Events[0].Reason != "INC-3002 new phone" || page.Events[0].Outcome != "success" {
		t.Errorf("reset_totp events:\n%s", raw)
	}
}

// lockAfter is the number of consecutive wrong codes that locks them
// until the help desk unlocks (SPEC: at most 100, NIST SP 800-63B).
const lockAfter = 100

func TestHelpdeskAPI_Unlock(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	hana := p.helpdeskSignIn(t)
	password := passphrase("ivan")
	p.addUser(t, "ivan", password, "employee")
	secret, _, used := enrollTOTP(t, p.signIn(t, nil, "ivan", password), password)

	c := p.client(t, nil)
	if r := c.login(t, "ivan", password); !strings.HasPrefix(r.location(), "/login/totp") {
		t.Fatalf("login goes to %q, want /login/totp", r.location())
	}
	bad := wrongCode(t, secret)
	for i := 1; i <= 4; i++ { // below the free allowance: no delay yet
		if r := c.post(t, "/login/totp", url.Values{"code": {bad}}); r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: status %d, want 401", i, r.Status)
		}
	}
	if u := hana.findUser(t, "ivan"); u.TOTPFailures != 4 || u.Locked {
		t.Fatalf("after 4 wrong codes: totp_failures %d, locked %t; want 4, false", u.TOTPFailures, u.Locked)
	}

	// Reaching the lock through the portal would take hours of growing
	// delays, so the rest of the failures are counted through the store,
	// under the account's TOTP counter, as the portal counts them.
	addFailures(t, openStore(t, p), auth.FailureCounter(auth.CounterTOTP, "ivan"), lockAfter)
	if u := hana.findUser(t, "ivan"); u.TOTPFailures != lockAfter || !u.Locked {
		t.Fatalf("after %d failures: totp_failures %d, locked %t; want %d, true", lockAfter, u.TOTPFailures, u.Locked, lockAfter)
	}
	// Even the right code is refused while locked, saying why.
	r := c.post(t, "/login/totp", url.Values{"code": {freshCode(t, secret, used)}})
	if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "locked") || !strings.Contains(r.Body, "help desk") {
		t.Fatalf("right code while locked: status %d, want 403 saying the codes are locked and the help desk can unlock:\n%s", r.Status, r.Body)
	}

	r = hana.helpdesk(t, "ivan", "unlock", "INC-3003 phone clock was wrong")
	wantStatus(t, r, http.StatusOK)
	if u := hana.findUser(t, "ivan"); u.TOTPFailures != 0 || u.Locked {
		t.Errorf("after unlock: totp_failures %d, locked %t; want 0, false", u.TOTPFailures, u.Locked)
	}
	// Unlocking ends the waiting sign-in too; a new one gets through.
	wantUnauthenticated(t, c.get(t, "/api/session"))
	c = p.client(t, nil)
	if r := c.login(t, "ivan", password); !strings.HasPrefix(r.location(), "/login/totp") {
		t.Fatalf("login goes to %q, want /login/totp", r.location())
	}
	wantRedirect(t, c.post(t, "/login/totp", url.Values{"code": {freshCode(t, secret, used)}}), "/")
	if s := c.session(t); !slices.Equal(s.Factors, []string{"password", "totp"}) {
		t.Errorf("factors after unlock: %q, want password and totp", s.Factors)
	}

	page, raw := admin.auditQuery(t, url.Values{"action": {"helpdesk.unlock"}})
	if len(page.Events) != 1 || page.Events[0].Actor != "hana" || page.Events[0].Target != "ivan" ||
		page.Events[0].Reason != "INC-3003 phone clock was wrong" || page.Events[0].Outcome != "success" {
		t.Errorf("unlock events:\n%s", raw)
	}
}

// TestHelpdeskAPI_UnlockClearsPasswordThrottleAndLock checks the
// password side (SPEC, Security requirements): wrong passwords are
// counted, a throttled sign-in is refused even with the right password,
// 100 in a row lock the account, and the help desk unlocks it.
func TestHelpdeskAPI_UnlockClearsPasswordThrottleAndLock(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	hana := p.helpdeskSignIn(t)
	password := passphrase("ivan")
	p.addUser(t, "ivan", password, "employee")

	for i := 1; i <= 5; i++ { // the free allowance: no delay yet
		r := p.client(t, nil).login(t, "ivan", fmt.Sprintf("wrong guess number %d, 2026", i))
		wantStatus(t, r, http.StatusUnauthorized)
	}
	if u := hana.findUser(t, "ivan"); u.PasswordFailures != 5 || u.Locked {
		t.Fatalf("after 5 wrong passwords: password_failures %d, locked %t; want 5, false", u.PasswordFailures, u.Locked)
	}

	// Waiting out the growing delays would take minutes, so the further
	// failures and a running delay are set through the store.
	st := openStore(t, p)
	counter := auth.FailureCounter(auth.CounterPassword, "ivan")
	addFailures(t, st, counter, 9)
	addFailures(t, st, auth.HoldCounter(counter), 1)
	r := p.client(t, nil).login(t, "ivan", password)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || !strings.Contains(r.Body, "wait") || r.sessionCookie() != nil {
		t.Fatalf("the right password while throttled: status %d, Retry-After %q; want 429 with Retry-After, a wait in words and no session:\n%s",
			r.Status, r.Header.Get("Retry-After"), r.Body)
	}

	addFailures(t, st, counter, lockAfter)
	if u := hana.findUser(t, "ivan"); u.PasswordFailures != lockAfter || !u.Locked {
		t.Fatalf("after %d failures: password_failures %d, locked %t; want %d, true", lockAfter, u.PasswordFailures, u.Locked, lockAfter)
	}
	r = p.client(t, nil).login(t, "ivan", password)
	if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "locked") || !strings.Contains(r.Body, "help desk") || r.sessionCookie() != nil {
		t.Fatalf("the right password while locked: status %d; want 403 saying it is locked and the help desk can unlock:\n%s", r.Status, r.Body)
	}

	wantStatus(t, hana.helpdesk(t, "ivan", "unlock", "INC-3004 forgot caps lock"), http.StatusOK)
	if u := hana.findUser(t, "ivan"); u.PasswordFailures != 0 || u.Locked {
		t.Errorf("after unlock: password_failures %d, locked %t; want 0, false", u.PasswordFailures, u.Locked)
	}
	p.signIn(t, nil, "ivan", password)
}

// openStore opens the portal's Redis store, as the portal does, for
// setting throttle counts the portal would take too long to reach.
func openStore(t *testing.T, p *portal) *redisstore.Store {
	t.Helper()
	st, err := redisstore.Open(t.Context(), p.Redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// addFailures counts failures under counter until there are n.
func addFailures(t *testing.T, st *redisstore.Store, counter string, n int) {
	t.Helper()
	for got := 0; got < n; {
		var err error
		if got, err = st.AddFailure(t.Context(), counter, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAccountPassword_Rules(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	password := passphrase("kim")
	p.addUser(t, "kim", password, "employee")
	kim := p.signIn(t, nil, "kim", password)
	other := p.signIn(t, nil, "kim", password) // another device
	good := "kim's better passphrase for this year"

	wantAPIError(t, p.client(t, nil).jsonRequest(t, "POST", "/api/account/password", map[string]string{"current": password, "new": good, "confirm": good}),
		http.StatusUnauthorized, "unauthenticated")

	for _, tc := range []struct {
		name                  string
		current, new, confirm string
		status                int
		code                  string
		words                 []string
	}{
		{"wrong current password", "not my password at all, 2026", good, good, http.StatusUnauthorized, "bad_password", []string{"current password"}},
		{"no current password", "", good, good, http.StatusUnauthorized, "bad_password", []string{"current password"}},
		{"14 characters", password, "fourteen chars", "fourteen chars", http.StatusBadRequest, "weak_password", []string{"at least 15 characters"}},
		{"73 bytes", password, strings.Repeat("x", 30) + " and " + strings.Repeat("y", 38), "", http.StatusBadRequest, "weak_password", []string{"72 bytes"}},
		{"81 bytes in 45 characters", password, strings.Repeat("ключ ", 9), "", http.StatusBadRequest, "weak_password", []string{"72 bytes"}},
		{"common", password, "thisismypassword", "thisismypassword", http.StatusBadRequest, "weak_password", []string{"common"}},
		{"common with spaces", password, "Correct Horse Battery Staple", "Correct Horse Battery Staple", http.StatusBadRequest, "weak_password", []string{"common"}},
		{"confirmation differs", password, good, good + "!", http.StatusBadRequest, "mismatch", []string{"do not match"}},
		{"same as current", password, password, password, http.StatusBadRequest, "unchanged", []string{"differ"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			confirm := tc.confirm
			if confirm == "" {
				confirm = tc.new
			}
			r := kim.jsonRequest(t, "POST", "/api/account/password", map[string]string{"current": tc.current, "new": tc.new, "confirm": confirm})
			e := wantAPIError(t, r, tc.status, tc.code, tc.words...)
			for _, jargon := range []string{"bcrypt", "%!", "nil", "runtime", "hash"} {
				if strings.Contains(e.Error, jargon) {
					t.Errorf("message %q is not plain words (contains %q)", e.Error, jargon)
				}
			}
		})
	}
	// Nothing changed: both sessions live, the old password works.
	kim.session(t)
	other.session(t)
	p.signIn(t, nil, "kim", password)

	// A good change: this session continues on a new ID, every other
	// session of the account ends, only the new password works.
	before := kim.cookieValue(t)
	wantStatus(t, kim.jsonRequest(t, "POST", "/api/account/password", map[string]string{"current": password, "new": good, "confirm": good}), http.StatusNoContent)
	if kim.cookieValue(t) == before {
		t.Errorf("the session ID did not change with the password")
	}
	wantUnauthenticated(t, kim.withCookie(t, "GET", "/api/session", nil, before))
	if s := kim.session(t); s.User != "kim" {
		t.Errorf("after the change: user %q, want kim", s.User)
	}
	wantUnauthenticated(t, other.get(t, "/api/session"))
	wantStatus(t, p.client(t, nil).login(t, "kim", password), http.StatusUnauthorized)
	p.signIn(t, nil, "kim", good)

	// Scripts may send the new password once, without "confirm".
	third := "kim's third passphrase, for the audit"
	wantStatus(t, kim.jsonRequest(t, "POST", "/api/account/password", map[string]string{"current": good, "new": third}), http.StatusNoContent)
	p.signIn(t, nil, "kim", third)

	// Refused and accepted changes are audited, without any password.
	admin := p.adminSignIn(t)
	page, raw := admin.auditQuery(t, url.Values{"action": {"account.password"}, "user": {"kim"}})
	var outcomes []string
	for _, e := range page.Events {
		outcomes = append(outcomes, e.Outcome)
	}
	if diff := cmp.Diff([]string{"success", "success", "failure", "failure"}, outcomes); diff != "" {
		t.Errorf("account.password outcomes, newest first (-want +got):\n%s", diff)
	}
	for _, secret := range []string{password, good, third, "not my password at all, 2026"} {
		if strings.Contains(raw, secret) {
			t.Errorf("the audit trail contains the password %q", secret)
		}
	}
}
