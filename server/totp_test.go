package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"gatehouse/auth"
	"gatehouse/server"
	"gatehouse/store"
)

// jsonPost sends a JSON body to path.
func (b *browser) jsonDo(method, path string, body any) response {
	b.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		b.t.Fatal(err)
	}
	req := b.newRequest(method, path, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	return b.do(req)
}

// codeAt returns the TOTP code of secret at t.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enroll signs in as user, enrolls TOTP through the JSON API and returns
// the secret and the recovery codes.
func enroll(t *testing.T, p *portal, b *browser, user, password string) (string, []string) {
	t.Helper()
	b.login(user, password)
	start := b.jsonDo(http.MethodPost, "/api/account/totp", struct{}{})
	wantStatus(t, "start enrollment", start, http.StatusOK)
	var pending struct {
		Secret     string `json:"secret"`
		OTPAuthURL string `json:"otpauth_url"`
	}
	if err := json.Unmarshal([]byte(start.Body), &pending); err != nil || pending.Secret == "" || !strings.HasPrefix(pending.OTPAuthURL, "otpauth://totp/") {
		t.Fatalf("enrollment start = %s (%v)", start.Body, err)
	}
	// The secret is encrypted at rest.
	acct, err := p.store.Account(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	if acct.TOTPPending == "" || strings.Contains(acct.TOTPPending, pending.Secret) {
		t.Fatalf("pending secret stored as %q", acct.TOTPPending)
	}
	// Enrollment is not on before a code confirms it.
	if acct.TOTPSecret != "" {
		t.Fatal("TOTP switched on before confirmation")
	}
	wantStatus(t, "confirm with a wrong code", b.jsonDo(http.MethodPost, "/api/account/totp/confirm", map[string]string{"code": "000000", "password": password}), http.StatusBadRequest)
	confirm := b.jsonDo(http.MethodPost, "/api/account/totp/confirm", map[string]string{"code": codeAt(t, pending.Secret, p.clock.Now()), "password": password})
	wantStatus(t, "confirm", confirm, http.StatusOK)
	var out struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	if err := json.Unmarshal([]byte(confirm.Body), &out); err != nil || len(out.RecoveryCodes) != auth.RecoveryCodeCount {
		t.Fatalf("confirm = %s (%v)", confirm.Body, err)
	}
	// The confirmation used this time step's code: later sign-ins use the
	// next one.
	p.clock.Advance(auth.TOTPPeriod)
	acct, _ = p.store.Account(t.Context(), user)
	for _, c := range out.RecoveryCodes {
		if slices.Contains(acct.RecoveryCodes, c) || strings.Contains(strings.Join(acct.RecoveryCodes, ""), c) {
			t.Fatal("recovery codes stored in clear")
		}
	}
	return pending.Secret, out.RecoveryCodes
}

func TestTOTP_EnrolledUserMustPassTheCodeStep(t *testing.T) {
	p := newPortal(t)
	p.addAccount("alice", "correct horse battery staple", "employee")
	secret, _ := enroll(t, p, p.browser(), "alice", "correct horse battery staple")

	b := p.browser()
	resp := b.login("alice", "correct horse battery staple")
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/login/totp") {
		t.Fatalf("after the password: Location %q, want the TOTP step", loc)
	}
	pendingID := b.sessionID()
	// The password step alone gives no usable session.
	wantStatus(t, "session after the password only", b.get("/api/session"), http.StatusUnauthorized)
	if r := b.get("/account/password"); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login/totp") {
		t.Errorf("password page during the TOTP step: %d %q", r.Status, r.Header.Get("Location"))
	}

	wrong := b.post("/login/totp", url.Values{"code": {"123456"}})
	wantStatus(t, "wrong code", wrong, http.StatusUnauthorized)
	code := codeAt(t, secret, p.clock.Now())
	ok := b.post("/login/totp", url.Values{"code": {code}})
	wantStatus(t, "right code", ok, http.StatusSeeOther)
	if b.sessionID() == pendingID {
		t.Error("the session ID did not change after the TOTP step")
	}
	var s struct {
		Factors        []string `json:"factors"`
		EffectiveRoles []string `json:"effective_roles"`
	}
	r := b.get("/api/session")
	wantStatus(t, "session", r, http.StatusOK)
	json.Unmarshal([]byte(r.Body), &s)
	if !slices.Equal(s.Factors, []string{"password", "totp"}) || !slices.Equal(s.EffectiveRoles, []string{"employee"}) {
		t.Errorf("session = %s", r.Body)
	}

	// The same code never works twice, even in another sign-in.
	b2 := p.browser()
	b2.login("alice", "correct horse battery staple")
	replay := b2.post("/login/totp", url.Values{"code": {code}})
	wantStatus(t, "replayed code", replay, http.StatusUnauthorized)
	if !strings.Contains(replay.Alert(), "already used") {
		t.Errorf("replay alert = %q", replay.Alert())
	}
	// The next step's code works (skew allows one step ahead).
	wantStatus(t, "next code", b2.post("/login/totp", url.Values{"code": {codeAt(t, secret, p.clock.Now().Add(30*time.Second))}}), http.StatusSeeOther)
}

func TestTOTP_RecoveryCodeWorksOnce(t *testing.T) {
	p := newPortal(t)
	p.addAccount("alice", "correct horse battery staple", "employee")
	_, codes := enroll(t, p, p.browser(), "alice", "correct horse battery staple")

	b := p.browser()
	b.login("alice", "correct horse battery staple")
	wantStatus(t, "recovery code", b.post("/login/totp", url.Values{"code": {strings.ToUpper(codes[0])}}), http.StatusSeeOther)
	acct, _ := p.store.Account(t.Context(), "alice")
	if len(acct.RecoveryCodes) != auth.RecoveryCodeCount-1 {
		t.Errorf("%d recovery codes left, want %d", len(acct.RecoveryCodes), auth.RecoveryCodeCount-1)
	}
	if page := b.get("/account/totp"); !strings.Contains(page.Body, "<strong>9</strong> unused recovery codes") {
		t.Errorf("account page does not show 9 codes left:\n%s", page.Body)
	}
	b2 := p.browser()
	b2.login("alice", "correct horse battery staple")
	wantStatus(t, "the same recovery code again", b2.post("/login/totp", url.Values{"code": {codes[0]}}), http.StatusUnauthorized)
}

func TestTOTP_AttemptsAreThrottledThenLocked(t *testing.T) {
	p := newPortal(t)
	p.addAccount("alice", "correct horse battery staple", "employee")
	secret, _ := enroll(t, p, p.browser(), "alice", "correct horse battery staple")
	b := p.browser()
	b.login("alice", "correct horse battery staple")
	for i := range auth.FreeFailures {
		wantStatus(t, "wrong code", b.post("/login/totp", url.Values{"code": {"000000"}}), http.StatusUnauthorized)
		_ = i
	}
	// Now even the right code waits: the throttle runs before the check.
	held := b.post("/login/totp", url.Values{"code": {codeAt(t, secret, p.clock.Now())}})
	wantStatus(t, "right code while held", held, http.StatusTooManyRequests)
	if held.Header.Get("Retry-After") == "" || !strings.Contains(held.Alert(), "wait") {
		t.Errorf("throttled answer: Retry-After %q, alert %q", held.Header.Get("Retry-After"), held.Alert())
	}
	// At the NIST limit the codes lock until the help desk unlocks them.
	for range auth.MaxConsecutiveFailures {
		if _, err := p.store.AddFailure(t.Context(), "totp:alice", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.store.ResetFailures(t.Context(), "hold:totp:alice"); err != nil {
		t.Fatal(err)
	}
	locked := b.post("/login/totp", url.Values{"code": {codeAt(t, secret, p.clock.Now())}})
	wantStatus(t, "right code while locked", locked, http.StatusForbidden)
	if !strings.Contains(locked.Alert(), "help desk") {
		t.Errorf("locked alert = %q", locked.Alert())
	}
}

func TestTOTP_RemovalNeedsThePassword(t *testing.T) {
	p := newPortal(t)
	p.addAccount("alice", "correct horse battery staple", "employee")
	b := p.browser()
	enroll(t, p, b, "alice", "correct horse battery staple")
	wantStatus(t, "remove with a wrong password", b.jsonDo(http.MethodDelete, "/api/account/totp", map[string]string{"password": "wrong"}), http.StatusUnauthorized)
	if acct, _ := p.store.Account(t.Context(), "alice"); acct.TOTPSecret == "" {
		t.Fatal("TOTP removed without the password")
	}
	wantStatus(t, "remove", b.jsonDo(http.MethodDelete, "/api/account/totp", map[string]string{"password": "correct horse battery staple"}), http.StatusNoContent)
	acct, _ := p.store.Account(t.Context(), "alice")
	if acct.TOTPSecret != "" || len(acct.RecoveryCodes) != 0 {
		t.Errorf("after removal: %+v", acct)
	}
	// Signing in no longer asks for a code.
	if loc := p.browser().login("alice", "correct horse battery staple").Header.Get("Location"); loc != "/" {
		t.Errorf("login after removal goes to %q", loc)
	}
}

func TestTOTP_RoleRequiringTOTPNeedsEnrollment(t *testing.T) {
	p := newPortal(t)
	if err := p.store.PutRole(t.Context(), store.Role{Name: "finance", RequireTOTP: true}); err != nil {
		t.Fatal(err)
	}
	p.addAccount("alice", "correct horse battery staple", "employee", "finance")
	b := p.browser()
	b.login("alice", "correct horse battery staple")
	r := b.get("/api/session")
	wantStatus(t, "session", r, http.StatusOK)
	if !strings.Contains(r.Body, `"effective_roles":["employee"]`) || !strings.Contains(r.Body, "enroll TOTP") {
		t.Errorf("before enrollment: %s", r.Body)
	}
	enroll(t, p, b, "alice", "correct horse battery staple")
	// Confirming the enrollment is a verified code: finance takes effect.
	r = b.get("/api/session")
	if !strings.Contains(r.Body, `"effective_roles":["employee","finance"]`) {
		t.Errorf("after enrollment: %s", r.Body)
	}
}

// TOTP is switched on only with the account's password: a session cookie
// alone (stolen, or a screen left unlocked) cannot add an authenticator
// of its own, which would give the session the totp factor and lock the
// owner out at the next sign-in.
func TestTOTP_EnrollmentNeedsThePassword(t *testing.T) {
	p := newPortal(t)
	if err := p.store.PutRole(t.Context(), store.Role{Name: "finance", RequireTOTP: true}); err != nil {
		t.Fatal(err)
	}
	p.addAccount("alice", alicePassword, "employee", "finance")
	b := p.browser()
	b.login("alice", alicePassword)
	start := b.jsonDo(http.MethodPost, "/api/account/totp", struct{}{})
	wantStatus(t, "start enrollment", start, http.StatusOK)
	var pending struct{ Secret string }
	json.Unmarshal([]byte(start.Body), &pending)
	code := codeAt(t, pending.Secret, p.clock.Now())
	for _, in := range []map[string]string{
		{"code": code},
		{"code": code, "password": "not alice's password at all"},
	} {
		r := b.jsonDo(http.MethodPost, "/api/account/totp/confirm", in)
		if r.Status == http.StatusOK {
			t.Fatalf("TOTP switched on with password %q: %s", in["password"], r.Body)
		}
		wantStatus(t, "confirm without the right password", r, http.StatusUnauthorized)
	}
	if acct, err := p.store.Account(t.Context(), "alice"); err != nil || acct.TOTPSecret != "" {
		t.Fatalf("TOTP is on after confirmations without the password (%v)", err)
	}
	if s := effectiveRoles(t, b); slices.Contains(s, "finance") {
		t.Errorf("the session has finance without TOTP: %q", s)
	}
	// With it, the same code switches TOTP on.
	wantStatus(t, "confirm with the password", b.jsonDo(http.MethodPost, "/api/account/totp/confirm",
		map[string]string{"code": code, "password": alicePassword}), http.StatusOK)
}

// Passing the TOTP step does not start a session's absolute lifetime
// again: a session signed in with a password, sent to the step hours
// later because TOTP was switched on from another device, still ends
// the absolute lifetime after the password was given.
func TestTOTP_StepKeepsTheSessionsAbsoluteEnd(t *testing.T) {
	p := newPortal(t)
	p.addAccount("alice", alicePassword, "employee")
	a := p.browser()
	a.login("alice", alicePassword)
	signedIn := p.clock.Now()
	secret, _ := enroll(t, p, p.browser(), "alice", alicePassword) // on another device
	for p.clock.Now().Sub(signedIn) < 11*time.Hour {
		p.clock.Advance(20 * time.Minute)
		a.get("/login/totp")
	}
	wantStatus(t, "the TOTP step 11 hours after the password", a.post("/login/totp", url.Values{"code": {codeAt(t, secret, p.clock.Now())}}), http.StatusSeeOther)
	for p.clock.Now().Sub(signedIn) < server.DefaultSessionMax+time.Hour {
		p.clock.Advance(20 * time.Minute)
		if r := a.get("/api/session"); r.Status == http.StatusOK && p.clock.Now().Sub(signedIn) >= server.DefaultSessionMax {
			t.Fatalf("the session is still signed in %v after its password was given (absolute lifetime %v)", p.clock.Now().Sub(signedIn), server.DefaultSessionMax)
		}
	}
}
