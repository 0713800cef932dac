package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gatehouse/auth"
	"gatehouse/server"
	"gatehouse/store"
)

func TestLogin_DisabledAccountLooksLikeWrongPassword(t *testing.T) {
	t.Parallel()
	p := newPortal(t)

	// A session that is live before the account is disabled.
	live := p.browser()
	live.login("admin", adminPassword)
	liveID := live.sessionID()

	wrong := p.browser().post("/login", url.Values{"username": {"admin"}, "password": {"not the password"}})
	if wrong.Status == http.StatusSeeOther || wrong.Alert() == "" {
		t.Fatalf("wrong password: status %d alert %q, want a refusal with a message", wrong.Status, wrong.Alert())
	}

	err := p.store.UpdateAccount(t.Context(), "admin", func(a *store.Account) error {
		a.Disabled = true
		return nil
	})
	if err != nil {
		t.Fatalf("disable account: %v", err)
	}

	disabled := p.browser().post("/login", url.Values{"username": {"admin"}, "password": {adminPassword}})
	if disabled.Status != wrong.Status || disabled.Alert() != wrong.Alert() {
		t.Errorf("disabled account with the right password: status %d alert %q; wrong password: status %d alert %q; want them identical",
			disabled.Status, disabled.Alert(), wrong.Status, wrong.Alert())
	}
	if strings.Contains(strings.ToLower(disabled.Body), "disabled") {
		t.Errorf("the login page tells that the account is disabled")
	}
	if c := disabled.Header.Values("Set-Cookie"); len(c) != 0 {
		t.Errorf("a refused login set cookies %q", c)
	}

	wantUnauthenticated(t, "GET /api/session on a session of a disabled account", live.get("/api/session"))
	p.sessionGone(liveID)
}

func TestLogin_PasswordOver72BytesRefused(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	password := strings.Repeat("0123456789", 7) + "ab" // exactly 72 bytes
	if len(password) != auth.MaxPasswordBytes {
		t.Fatalf("test password is %d bytes, want %d", len(password), auth.MaxPasswordBytes)
	}
	p.addAccount("long", password, "employee")

	// bcrypt compares only the first 72 bytes, so without a check of our
	// own these extra bytes would be ignored and the login would succeed.
	b := p.browser()
	resp := b.post("/login", url.Values{"username": {"long"}, "password": {password + "x"}})
	wantStatus(t, "login with the 72-byte password plus one byte", resp, http.StatusBadRequest)
	if !strings.Contains(resp.Alert(), "72 bytes") {
		t.Errorf("alert %q, want it to say passwords are limited to 72 bytes", resp.Alert())
	}
	if b.cookie() != "" {
		t.Errorf("a refused login left a session cookie")
	}

	b.login("long", password)
	wantStatus(t, "GET /api/session after the 72-byte login", b.get("/api/session"), http.StatusOK)
}

func TestCrossOrigin_PostFromOtherSiteRefused(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	form := url.Values{"username": {"admin"}, "password": {adminPassword}}

	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"Sec-Fetch-Site cross-site", http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"Sec-Fetch-Site same-site", http.Header{"Sec-Fetch-Site": {"same-site"}}},
		{"Origin of another site", http.Header{"Origin": {"https://evil.example"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := p.browser()
			resp := b.post("/login", form, tc.header)
			wantStatus(t, "cross-origin POST /login", resp, http.StatusForbidden)
			if b.cookie() != "" {
				t.Errorf("a refused cross-origin login set a session cookie")
			}
		})
	}

	// A signed-in user's session cannot be ended from another site either.
	b := p.browser()
	b.login("admin", adminPassword)
	id := b.sessionID()
	wantStatus(t, "cross-site POST /logout", b.post("/logout", nil, http.Header{"Sec-Fetch-Site": {"cross-site"}}), http.StatusForbidden)
	p.session(id)

	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"Sec-Fetch-Site same-origin", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {p.srv.URL}}},
		{"Origin of the portal", http.Header{"Origin": {p.srv.URL}}},
		{"no browser headers", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := p.browser()
			resp := b.post("/login", form, tc.header)
			wantStatus(t, "same-origin POST /login", resp, http.StatusSeeOther)
		})
	}
}

func TestBodyLimit_OversizedFormGets413(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	b := p.browser()
	form := url.Values{"username": {"admin"}, "password": {strings.Repeat("a", 64<<10)}}
	resp := b.post("/login", form)
	wantStatus(t, "POST /login with a body over 64 KiB", resp, http.StatusRequestEntityTooLarge)

	api := b.post("/login", form, http.Header{"Accept": {"application/json"}})
	wantStatus(t, "POST /login (JSON) with a body over 64 KiB", api, http.StatusRequestEntityTooLarge)
	var code string
	json.Unmarshal(api.JSON(t)["code"], &code)
	if code != "too_large" {
		t.Errorf("code = %q, want too_large", code)
	}
}

func TestStoreOutage_FailsClosed(t *testing.T) {
	t.Parallel()
	// Persistence on, so the accounts survive the restart as they would
	// in production.
	p := newPortal(t, "--appendonly", "yes")
	if p.redis.External() {
		t.Skip("GATEHOUSE_TEST_REDIS is set: this test must stop and start its own Redis")
	}
	b := p.browser()
	b.login("admin", adminPassword)

	p.redis.Stop()
	resp := b.get("/api/session")
	wantStatus(t, "GET /api/session with Redis down", resp, http.StatusServiceUnavailable)
	body := resp.JSON(t)
	if diff := cmp.Diff([]string{"code", "error"}, keys(body)); diff != "" {
		t.Errorf("503 JSON keys (-want +got):\n%s", diff)
	}
	var code string
	json.Unmarshal(body["code"], &code)
	if code != "unavailable" {
		t.Errorf("code = %q, want unavailable", code)
	}
	wantNoInternals(t, "GET /api/session", resp.Body, p.redis.Addr)

	login := p.browser().post("/login", url.Values{"username": {"admin"}, "password": {adminPassword}})
	wantStatus(t, "POST /login with Redis down", login, http.StatusServiceUnavailable)
	wantNoInternals(t, "POST /login", login.Body, p.redis.Addr)
	if c := login.Header.Values("Set-Cookie"); len(c) != 0 {
		t.Errorf("POST /login with Redis down set cookies %q", c)
	}

	ready := b.get("/readyz")
	wantStatus(t, "GET /readyz with Redis down", ready, http.StatusServiceUnavailable)
	wantNoInternals(t, "GET /readyz", ready.Body, p.redis.Addr)

	p.redis.Start()
	deadline := time.Now().Add(pollWait)
	for b.get("/readyz").Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz is not 200 %v after Redis came back", pollWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	again := p.browser()
	again.login("admin", adminPassword)
	wantStatus(t, "GET /api/session after a login once Redis is back", again.get("/api/session"), http.StatusOK)
}

// wantNoInternals fails the test when a body shows what should only be
// logged: Go errors, stack traces, addresses.
func wantNoInternals(t *testing.T, what, body, addr string) {
	t.Helper()
	for _, s := range []string{"goroutine", "panic", ".go:", "dial tcp", "connection refused", "redis", addr, "store unavailable"} {
		if strings.Contains(body, s) {
			t.Errorf("%s: body contains %q: %.300s", what, s, body)
		}
	}
}

func keys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

var fingerprintRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func TestAPISession_Shape(t *testing.T) {
	t.Parallel()
	p := newPortal(t)

	anon := p.browser().get("/api/session")
	wantStatus(t, "GET /api/session without a session", anon, http.StatusUnauthorized)
	if diff := cmp.Diff([]string{"code", "error"}, keys(anon.JSON(t))); diff != "" {
		t.Errorf("401 JSON keys (-want +got):\n%s", diff)
	}

	b := p.browser(p.AdminCert)
	loginAt := p.clock.Now()
	b.login("admin", adminPassword)
	resp := b.get("/api/session")
	wantStatus(t, "GET /api/session", resp, http.StatusOK)
	body := resp.JSON(t)
	wantKeys := []string{"certificate", "effective_roles", "expires_at", "factors", "notices", "roles", "user"}
	if diff := cmp.Diff(wantKeys, keys(body)); diff != "" {
		t.Errorf("session JSON keys (-want +got):\n%s", diff)
	}

	var got struct {
		User           string    `json:"user"`
		Roles          []string  `json:"roles"`
		EffectiveRoles []string  `json:"effective_roles"`
		Factors        []string  `json:"factors"`
		ExpiresAt      time.Time `json:"expires_at"`
		Notices        []string  `json:"notices"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &got); err != nil {
		t.Fatalf("decode session JSON: %v", err)
	}
	if got.User != "admin" {
		t.Errorf("user = %q, want admin", got.User)
	}
	if diff := cmp.Diff([]string{"admin", "employee"}, got.Roles); diff != "" {
		t.Errorf("roles (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"admin", "employee"}, got.EffectiveRoles); diff != "" {
		t.Errorf("effective_roles (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{auth.FactorPassword, auth.FactorCertificate}, got.Factors); diff != "" {
		t.Errorf("factors (-want +got):\n%s", diff)
	}
	if want := loginAt.Add(server.DefaultSessionMax); !got.ExpiresAt.Equal(want) {
		t.Errorf("expires_at = %v, want %v", got.ExpiresAt, want)
	}
	if string(body["notices"]) != "[]" {
		t.Errorf("notices = %s, want []", body["notices"])
	}

	var cert map[string]json.RawMessage
	if err := json.Unmarshal(body["certificate"], &cert); err != nil || cert == nil {
		t.Fatalf("certificate = %s, want an object (%v)", body["certificate"], err)
	}
	if diff := cmp.Diff([]string{"fingerprint", "not_after", "subject"}, keys(cert)); diff != "" {
		t.Errorf("certificate keys (-want +got):\n%s", diff)
	}
	var c struct {
		Subject     string    `json:"subject"`
		Fingerprint string    `json:"fingerprint"`
		NotAfter    time.Time `json:"not_after"`
	}
	json.Unmarshal(body["certificate"], &c)
	if !fingerprintRE.MatchString(c.Fingerprint) {
		t.Errorf("certificate fingerprint = %q, want sha256:<64 hex>", c.Fingerprint)
	}
	if want := auth.Fingerprint(p.AdminLeaf.Raw); c.Fingerprint != want {
		t.Errorf("certificate fingerprint = %q, want %q", c.Fingerprint, want)
	}
	if !strings.Contains(c.Subject, "CN=admin") {
		t.Errorf("certificate subject = %q, want it to name CN=admin", c.Subject)
	}
	if !c.NotAfter.Equal(p.AdminLeaf.NotAfter) {
		t.Errorf("certificate not_after = %v, want %v", c.NotAfter, p.AdminLeaf.NotAfter)
	}

	// Without a certificate the same account gets "certificate": null.
	plain := p.browser()
	plain.login("admin", adminPassword)
	pb := plain.get("/api/session").JSON(t)
	if string(pb["certificate"]) != "null" {
		t.Errorf("certificate without a client certificate = %s, want null", pb["certificate"])
	}
	var eff []string
	json.Unmarshal(pb["effective_roles"], &eff)
	if diff := cmp.Diff([]string{"employee"}, eff); diff != "" {
		t.Errorf("effective_roles without a certificate (-want +got):\n%s", diff)
	}
}

// A store restarted without its data (no persistence) answers, but has
// lost its marker: /readyz is 503 with the reason, the log says it
// loudly, and a sign-in gets a clear 503, never "invalid username or
// password" as if the account did not exist. Restoring the data (here:
// writing the marker and the account again) makes it ready again.
func TestStoreLostItsData_NotReadyAndSignInRefused(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	if p.redis.External() {
		t.Skip("GATEHOUSE_TEST_REDIS is set: this test must restart its own Redis")
	}
	b := p.browser()
	wantStatus(t, "GET /readyz before", b.get("/readyz"), http.StatusOK)

	p.redis.Stop()
	p.redis.Start() // --save "" --appendonly no: the data is gone
	deadline := time.Now().Add(pollWait)
	var ready response
	for {
		ready = b.get("/readyz")
		if ready.Status == http.StatusServiceUnavailable && strings.Contains(ready.Body, "data_lost") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz after Redis came back empty = %d %s, want 503 data_lost", ready.Status, ready.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var body struct{ Status, Code, Error, Reason string }
	if err := json.Unmarshal([]byte(ready.Body), &body); err != nil {
		t.Fatal(err)
	}
	if body.Code != "data_lost" || !strings.Contains(body.Error, "lost its data") || !strings.Contains(body.Reason, "marker") {
		t.Errorf("GET /readyz = %+v, want code data_lost, the error in plain words and the reason (the marker)", body)
	}
	if !strings.Contains(p.logs.String(), "STORE HAS LOST ITS DATA") {
		t.Errorf("the log does not say loudly that the store lost its data:\n%s", p.logs.String())
	}

	for _, name := range []string{"admin", "nobody"} {
		login := p.browser().post("/login", url.Values{"username": {name}, "password": {adminPassword}})
		wantStatus(t, "POST /login as "+name+" on the emptied store", login, http.StatusServiceUnavailable)
		if strings.Contains(login.Body, "invalid username or password") || !strings.Contains(login.Body, "lost its data") {
			t.Errorf("POST /login as %s on the emptied store does not say the store lost its data:\n%.600s", name, login.Body)
		}
		api := p.browser().post("/login", url.Values{"username": {name}, "password": {adminPassword}}, http.Header{"Accept": {"application/json"}})
		var code string
		json.Unmarshal(api.JSON(t)["code"], &code)
		if code != "data_lost" {
			t.Errorf("POST /login (JSON) as %s: code %q, want data_lost", name, code)
		}
	}

	// The operator restores the data: the portal is ready again by
	// itself, and sign-ins work.
	if err := p.store.Mark(t.Context()); err != nil {
		t.Fatal(err)
	}
	p.addAccount("admin", adminPassword, "admin", "employee")
	wantStatus(t, "GET /readyz after the data came back", b.get("/readyz"), http.StatusOK)
	again := p.browser()
	again.login("admin", adminPassword)
	wantStatus(t, "GET /api/session after signing in again", again.get("/api/session"), http.StatusOK)
}
