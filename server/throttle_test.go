package server_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gatehouse/auth"
	"gatehouse/store"
)

// failLogin posts a wrong password for user and wants the generic 401.
func failLogin(t *testing.T, p *portal, user string) response {
	t.Helper()
	r := p.browser().post("/login", url.Values{"username": {user}, "password": {"not the password at all"}})
	wantStatus(t, "wrong password for "+user, r, http.StatusUnauthorized)
	return r
}

// wantThrottled checks a login refused by a delay: 429, a Retry-After of
// at least a second, a plain message, no session.
func wantThrottled(t *testing.T, what string, r response, text string) {
	t.Helper()
	wantStatus(t, what, r, http.StatusTooManyRequests)
	if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("%s: Retry-After = %q, want a number of seconds", what, r.Header.Get("Retry-After"))
	}
	if !strings.Contains(r.Alert(), text) {
		t.Errorf("%s: message %q, want one containing %q", what, r.Alert(), text)
	}
	if c := r.Header.Values("Set-Cookie"); len(c) != 0 {
		t.Errorf("%s: a throttled login set cookies %q", what, c)
	}
}

func TestLogin_ThrottledPerAccountBeforePasswordCheck(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")

	for range auth.FreeFailures {
		failLogin(t, p, "bob")
		failLogin(t, p, "nobody-0") // an unknown user is counted alike
	}
	// The right password during the delay is refused without being
	// looked at: the answer cannot tell a right guess from a wrong one.
	right := p.browser().post("/login", url.Values{"username": {"bob"}, "password": {"a long passphrase for bob, 2026"}})
	wantThrottled(t, "right password while throttled", right, "too many failed sign-ins")
	unknown := p.browser().post("/login", url.Values{"username": {"nobody-0"}, "password": {"whatever it is"}})
	wantThrottled(t, "unknown user while throttled", unknown, "too many failed sign-ins")
	if right.Alert() != unknown.Alert() {
		t.Errorf("throttled known user says %q, unknown user %q; want the same", right.Alert(), unknown.Alert())
	}

	// Other accounts from the same address are not held by bob's count.
	p.addAccount("carol", "a long passphrase for carol, 2026", "employee")
	if r := p.browser().login("carol", "a long passphrase for carol, 2026"); r.Status != http.StatusSeeOther {
		t.Fatalf("carol's login while bob is throttled: status %d, want 303", r.Status)
	}

	// The help desk's unlock clears the count at once.
	admin := p.browser(p.AdminCert)
	admin.login("admin", adminPassword)
	r := admin.post("/helpdesk/users/bob/unlock", url.Values{"reason": {"T-9 locked out"}})
	wantStatus(t, "unlock bob", r, http.StatusSeeOther)
	if r := p.browser().login("bob", "a long passphrase for bob, 2026"); r.Status != http.StatusSeeOther {
		t.Fatalf("bob's login after unlock: status %d, want 303; %s", r.Status, r.Alert())
	}
	n, err := p.store.Failures(t.Context(), auth.FailureCounter(auth.CounterPassword, "bob"))
	if err != nil || n != 0 {
		t.Errorf("bob's failure count after a successful login = %d (%v), want 0", n, err)
	}
}

func TestLogin_LockedAfterMaxConsecutiveFailures(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	// 99 earlier failures, as if spread over the last day. An unknown
	// name's count is kept under its keyed hash.
	bob, nobody := auth.FailureCounter(auth.CounterPassword, "bob"), p.unknownCounter(auth.CounterPassword, "nobody")
	for _, counter := range []string{bob, nobody} {
		for range auth.MaxConsecutiveFailures - 1 {
			if _, err := p.store.AddFailure(t.Context(), counter, auth.FailureMemory); err != nil {
				t.Fatal(err)
			}
		}
	}
	failLogin(t, p, "bob") // the 100th
	failLogin(t, p, "nobody")
	p.store.ResetFailures(t.Context(), auth.HoldCounter(bob))
	p.store.ResetFailures(t.Context(), auth.HoldCounter(nobody))

	right := p.browser().post("/login", url.Values{"username": {"bob"}, "password": {"a long passphrase for bob, 2026"}})
	wantStatus(t, "right password once locked", right, http.StatusForbidden)
	if !strings.Contains(right.Alert(), "locked") || !strings.Contains(right.Alert(), "help desk") {
		t.Errorf("locked account says %q, want it to say it is locked and who can unlock it", right.Alert())
	}
	unknown := p.browser().post("/login", url.Values{"username": {"nobody"}, "password": {"whatever it is"}})
	if unknown.Status != right.Status || unknown.Alert() != right.Alert() {
		t.Errorf("locked unknown user: %d %q; locked bob: %d %q; want the same", unknown.Status, unknown.Alert(), right.Status, right.Alert())
	}

	// The JSON API shows the lock to the help desk, and unlock lifts it.
	admin := p.browser(p.AdminCert)
	admin.login("admin", adminPassword)
	u := admin.get("/api/admin/users/bob").JSON(t)
	if !strings.Contains(string(u["user"]), `"locked":true`) || !strings.Contains(string(u["user"]), `"password_failures":100`) {
		t.Errorf("admin API user = %s, want locked with 100 password failures", u["user"])
	}
	wantStatus(t, "unlock", admin.post("/api/helpdesk/users/bob/unlock", url.Values{"reason": {"T-10"}}), http.StatusOK)
	if r := p.browser().login("bob", "a long passphrase for bob, 2026"); r.Status != http.StatusSeeOther {
		t.Fatalf("bob's login after unlock: status %d, want 303; %s", r.Status, r.Alert())
	}
}

func TestLogin_ThrottledPerClientAddress(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	// Password spraying: one wrong guess each on many accounts.
	for i := range auth.AddressFreeFailures {
		failLogin(t, p, "user"+strconv.Itoa(i))
	}
	r := p.browser().post("/login", url.Values{"username": {"bob"}, "password": {"a long passphrase for bob, 2026"}})
	wantThrottled(t, "login from a spraying address", r, "from your network")
}

func TestAccount_PasswordRecheckIsThrottled(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	b := p.browser()
	b.login("bob", "a long passphrase for bob, 2026")
	form := url.Values{"current": {"guess"}, "new": {"another long passphrase, 2026"}, "confirm": {"another long passphrase, 2026"}}
	for range auth.FreeFailures {
		wantStatus(t, "wrong current password", b.post("/account/password", form), http.StatusUnauthorized)
	}
	form.Set("current", "a long passphrase for bob, 2026")
	r := b.post("/account/password", form)
	wantThrottled(t, "right current password while throttled", r, "too many failed sign-ins")
}

// An unknown user costs one bcrypt comparison, like a wrong password (a
// dummy hash, so the two take the same time); a throttled login costs
// none: it is refused before bcrypt runs.
func TestLogin_BcryptRunsForUnknownUsersAndNotWhenThrottled(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	runs := func(what string, want uint64, f func()) {
		t.Helper()
		before := p.hasher.Runs()
		f()
		if got := p.hasher.Runs() - before; got != want {
			t.Errorf("%s ran bcrypt %d times, want %d", what, got, want)
		}
	}
	runs("a wrong password", 1, func() { failLogin(t, p, "bob") })
	runs("an unknown user", 1, func() { failLogin(t, p, "nobody") })
	for range auth.FreeFailures - 1 { // the first was above
		failLogin(t, p, "bob")
	}
	runs("a throttled login", 0, func() {
		r := p.browser().post("/login", url.Values{"username": {"bob"}, "password": {"a long passphrase for bob, 2026"}})
		wantStatus(t, "throttled login", r, http.StatusTooManyRequests)
	})
}

// The lock outlives the count: only an unlock ends it, not time.
func TestLogin_LockDoesNotFade(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	counter := auth.FailureCounter(auth.CounterPassword, "bob")
	for range auth.MaxConsecutiveFailures - 1 {
		if _, err := p.store.AddFailure(t.Context(), counter, auth.FailureMemory); err != nil {
			t.Fatal(err)
		}
	}
	failLogin(t, p, "bob") // the 100th
	// A day later the count has faded (its expiry), the lock has not.
	for _, k := range []string{counter, auth.HoldCounter(counter)} {
		if err := p.store.ResetFailures(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	r := p.browser().post("/login", url.Values{"username": {"bob"}, "password": {"a long passphrase for bob, 2026"}})
	wantStatus(t, "right password after the count faded", r, http.StatusForbidden)

	// A password reset by the help desk lifts the password lock.
	admin := p.browser(p.AdminCert)
	admin.login("admin", adminPassword)
	wantStatus(t, "reset bob's password", admin.post("/api/helpdesk/users/bob/reset-password", url.Values{"reason": {"T-11"}}), http.StatusOK)
	if n, _ := p.store.Failures(t.Context(), auth.LockCounter(counter)); n != 0 {
		t.Error("the password lock survived a password reset")
	}
}

// A right password on a disabled account is a failure like any other:
// the count goes on, so the guesser learns nothing from the delays.
func TestLogin_DisabledAccountKeepsCounting(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	failLogin(t, p, "bob")
	if err := p.store.UpdateAccount(t.Context(), "bob", func(a *store.Account) error { a.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	r := p.browser().post("/login", url.Values{"username": {"bob"}, "password": {"a long passphrase for bob, 2026"}})
	wantStatus(t, "right password on a disabled account", r, http.StatusUnauthorized)
	if n, err := p.store.Failures(t.Context(), auth.FailureCounter(auth.CounterPassword, "bob")); err != nil || n != 2 {
		t.Errorf("failure count after a right password on a disabled account = %d (%v), want 2", n, err)
	}
}

// Guesses sent at the same moment, when a delay has just ended, are
// checked one at a time: the count, and so the lock, sees every one.
func TestLogin_ConcurrentGuessesTakeTurns(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	counter := auth.FailureCounter(auth.CounterPassword, "bob")
	for range auth.MaxConsecutiveFailures - 1 {
		if _, err := p.store.AddFailure(t.Context(), counter, auth.FailureMemory); err != nil {
			t.Fatal(err)
		}
	}
	const guesses = 20
	browsers := make([]*browser, guesses)
	for i := range browsers {
		browsers[i] = p.browser()
		browsers[i].get("/login") // connected before the burst
	}
	before := p.hasher.Runs()
	var wg sync.WaitGroup
	for _, b := range browsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.post("/login", url.Values{"username": {"bob"}, "password": {"one of many guesses"}})
		}()
	}
	wg.Wait()
	if runs := p.hasher.Runs() - before; runs != 1 {
		t.Errorf("%d simultaneous guesses at 99 failures ran bcrypt %d times, want 1", guesses, runs)
	}
	if n, _ := p.store.Failures(t.Context(), counter); n != auth.MaxConsecutiveFailures {
		t.Errorf("failure count after the burst = %d, want exactly %d", n, auth.MaxConsecutiveFailures)
	}
}

// Turns are per account: behind one busy address (an office, a proxy not
// listed as trusted) one person's sign-in, or a request for a locked
// name, never holds back another person's.
func TestLogin_AddressThrottleTakesNoTurns(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	p.addAccount("carol", "a long passphrase for carol, 2026", "employee")
	addr := "addr:127.0.0.1"
	for range auth.AddressFreeFailures {
		if _, err := p.store.AddFailure(t.Context(), addr, auth.AddressFailureMemory); err != nil {
			t.Fatal(err)
		}
	}
	locked := p.unknownCounter(auth.CounterPassword, "mallory")
	if _, err := p.store.AddFailure(t.Context(), auth.LockCounter(locked), auth.LockForever); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "bob behind a busy address", p.browser().post("/login", url.Values{"username": {"bob"}, "password": {"a long passphrase for bob, 2026"}}), http.StatusSeeOther)
	wantStatus(t, "a locked name", p.browser().post("/login", url.Values{"username": {"mallory"}, "password": {"x"}}), http.StatusForbidden)
	wantStatus(t, "carol right after", p.browser().post("/login", url.Values{"username": {"carol"}, "password": {"a long passphrase for carol, 2026"}}), http.StatusSeeOther)
}

// Failures counted against a name before its account existed do not
// lock the account an admin then creates.
func TestCreateAccount_StartsUnlocked(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	counter := p.unknownCounter(auth.CounterPassword, "newbie")
	for range auth.MaxConsecutiveFailures - 1 {
		p.store.AddFailure(t.Context(), counter, auth.FailureMemory)
	}
	failLogin(t, p, "newbie") // the 100th: the name is locked
	admin := p.browser(p.AdminCert)
	admin.login("admin", adminPassword)
	req := admin.newRequest(http.MethodPost, "/api/admin/users", strings.NewReader(`{"name":"newbie","roles":["employee"],"password":"a long passphrase for newbie, 2026"}`))
	req.Header.Set("Content-Type", "application/json")
	wantStatus(t, "create newbie", admin.do(req), http.StatusCreated)
	if r := p.browser().login("newbie", "a long passphrase for newbie, 2026"); r.Status != http.StatusSeeOther {
		t.Errorf("newbie's first login: %d", r.Status)
	}
}
