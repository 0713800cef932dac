package server_test

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/server"
	"gatehouse/store"
)

// deviceCookie returns the device cookie the browser holds, or "".
func (b *browser) deviceCookie() string {
	for _, c := range b.jar.Cookies(b.p.url) {
		if c.Name == server.DeviceCookieName {
			return c.Value
		}
	}
	return ""
}

// setDeviceCookie plants a device cookie value in the browser.
func (b *browser) setDeviceCookie(value string) {
	b.jar.SetCookies(b.p.url, []*http.Cookie{{Name: server.DeviceCookieName, Value: value, Path: "/", Secure: true}})
}

// knownBrowser returns a browser on which user has signed in once, and
// which so holds a device cookie; the sign-in's session is ended.
func (p *portal) knownBrowser(user, password string, certs ...tls.Certificate) *browser {
	p.t.Helper()
	b := p.browser(certs...)
	b.login(user, password)
	if b.deviceCookie() == "" {
		p.t.Fatalf("no device cookie after %s signed in", user)
	}
	b.post("/logout", nil)
	return b
}

// lockPassword locks user's password for unknown devices, as 100
// failures in a row would.
func (p *portal) lockPassword(user string) {
	p.t.Helper()
	lock := auth.LockCounter(auth.FailureCounter(auth.CounterPassword, user))
	if _, err := p.store.AddFailure(p.t.Context(), lock, auth.LockForever); err != nil {
		p.t.Fatal(err)
	}
}

// certFor issues a client certificate bound to user (its CN).
func (p *portal) certFor(user string) tls.Certificate {
	p.t.Helper()
	issued, err := p.ca.IssueClient(ca.ClientRequest{Name: user}, p.clock.Now())
	if err != nil {
		p.t.Fatal(err)
	}
	return tlsCertificate(issued)
}

// signInStatus posts the right password for user and returns the status:
// 303 for a sign-in, 403 when the account's lock refused it.
func signInStatus(b *browser, user, password string) int {
	b.t.Helper()
	return b.post("/login", url.Values{"username": {user}, "password": {password}}).Status
}

// failures returns the count under key.
func (p *portal) failures(key string) int {
	p.t.Helper()
	n, err := p.store.Failures(p.t.Context(), key)
	if err != nil {
		p.t.Fatal(err)
	}
	return n
}

func TestLogin_DeviceCookieAfterACompleteSignIn(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", bobPassword, "employee")

	failed := p.browser().post("/login", url.Values{"username": {"bob"}, "password": {"not bob's password at all"}})
	for _, c := range failed.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, server.DeviceCookieName+"=") {
			t.Errorf("a failed sign-in set a device cookie: %s", c)
		}
	}

	ok := p.browser().login("bob", bobPassword)
	var ck *http.Cookie
	for _, line := range ok.Header.Values("Set-Cookie") {
		if c, err := http.ParseSetCookie(line); err == nil && c.Name == server.DeviceCookieName {
			ck = c
		}
	}
	if ck == nil {
		t.Fatalf("no %s cookie after a complete sign-in; Set-Cookie %q", server.DeviceCookieName, ok.Header.Values("Set-Cookie"))
	}
	if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" {
		t.Errorf("device cookie %s: want Secure, HttpOnly, SameSite=Strict, Path=/ and no Domain", ck.String())
	}
	if want := int(auth.DeviceCookieLifetime / time.Second); ck.MaxAge != want {
		t.Errorf("device cookie Max-Age = %d, want %d", ck.MaxAge, want)
	}
	if strings.Contains(p.logs.String(), ck.Value) {
		t.Error("the portal logged a device cookie")
	}
}

// A sign-in waiting at its TOTP step is not complete: the device cookie
// comes with the code.
func TestLogin_DeviceCookieOnlyAfterTheTOTPStep(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", bobPassword, "employee")
	setup := p.browser()
	secret, _ := enroll(t, p, setup, "bob", bobPassword)

	b := p.browser()
	if r := b.login("bob", bobPassword); r.Header.Get("Location") != "/login/totp" {
		t.Fatalf("sign-in with TOTP enrolled went to %q, want /login/totp", r.Header.Get("Location"))
	}
	if b.deviceCookie() != "" {
		t.Fatal("a device cookie before the TOTP step")
	}
	r := b.post("/login/totp", url.Values{"code": {codeAt(t, secret, p.clock.Now())}})
	wantStatus(t, "TOTP step", r, http.StatusSeeOther)
	if b.deviceCookie() == "" {
		t.Fatal("no device cookie after the TOTP step")
	}
}

// 100 failures from unknown devices lock the account for unknown
// devices only: its owner on a known device still signs in, and that
// does not lift the lock for the others.
func TestLogin_UnknownDeviceFailuresDoNotLockOutKnownDevices(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", bobPassword, "employee")
	byCookie := p.knownBrowser("bob", bobPassword)
	byCert := p.browser(p.certFor("bob"))
	for range auth.MaxConsecutiveFailures - 1 {
		if _, err := p.store.AddFailure(t.Context(), auth.FailureCounter(auth.CounterPassword, "bob"), auth.FailureMemory); err != nil {
			t.Fatal(err)
		}
	}
	failLogin(t, p, "bob") // the 100th
	p.store.ResetFailures(t.Context(), auth.HoldCounter(auth.FailureCounter(auth.CounterPassword, "bob")))
	if got := signInStatus(p.browser(), "bob", bobPassword); got != http.StatusForbidden {
		t.Fatalf("bob on an unknown device after 100 failures: status %d, want 403 (locked)", got)
	}

	tests := []struct {
		name string
		b    *browser
		how  string
	}{
		{"device cookie", byCookie, "cookie"},
		{"certificate bound to the account", byCert, "certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.b.post("/login", url.Values{"username": {"bob"}, "password": {bobPassword}})
			wantStatus(t, "bob on a known device while locked for unknown ones", r, http.StatusSeeOther)
			page, err := p.store.Audit(t.Context(), store.AuditQuery{Actor: "bob", Action: "login", Limit: 1})
			events := page.Items
			if err != nil || len(events) != 1 || events[0].Outcome != "success" || events[0].KnownDevice != tc.how {
				t.Errorf("audit event = %+v (%v), want a success from a known device (%s)", events, err, tc.how)
			}
			tc.b.post("/logout", nil)
			// A wrong password from the known device counts on it, not on
			// the account.
			r = tc.b.post("/login", url.Values{"username": {"bob"}, "password": {"not bob's password at all"}})
			wantStatus(t, "a wrong password on the known device", r, http.StatusUnauthorized)
		})
	}
	if got := signInStatus(p.browser(), "bob", bobPassword); got != http.StatusForbidden {
		t.Errorf("bob on an unknown device after known devices signed in: status %d, want 403 (still locked)", got)
	}
	if n := p.failures(auth.FailureCounter(auth.CounterPassword, "bob")); n != auth.MaxConsecutiveFailures {
		t.Errorf("bob's count for unknown devices = %d, want %d (untouched by known devices)", n, auth.MaxConsecutiveFailures)
	}
}

// Delays on the account (failures elsewhere) do not hold back a known
// device either.
func TestLogin_KnownDeviceIsNotDelayedByFailuresElsewhere(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", bobPassword, "employee")
	known := p.knownBrowser("bob", bobPassword)
	for range auth.FreeFailures {
		failLogin(t, p, "bob")
	}
	wantThrottled(t, "bob on an unknown device", p.browser().post("/login", url.Values{"username": {"bob"}, "password": {bobPassword}}), "too many failed sign-ins")
	known.login("bob", bobPassword)
}

// A known device that fails its own, smaller limit in a row is an
// unknown device from then on: the account's lock applies to it, and its
// failures count on the account. A successful sign-in on it, or an
// unlock, makes it known again.
func TestLogin_KnownDeviceThatKeepsFailingIsNoLongerKnown(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"cookie", "certificate"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			p := newPortal(t)
			p.addAccount("bob", bobPassword, "employee")
			var b *browser
			var counter string
			if how == "cookie" {
				b = p.knownBrowser("bob", bobPassword)
				tok, ok := auth.NewDeviceCookies(p.key).Parse(b.deviceCookie(), p.clock.Now())
				if !ok {
					t.Fatal("the portal's device cookie does not parse with its key")
				}
				counter = auth.DeviceCounter("bob", 0, auth.CookieDevice(tok))
			} else {
				cert := p.certFor("bob")
				b = p.browser(cert)
				info := auth.CertInfo{KeyPin: auth.Fingerprint(cert.Leaf.RawSubjectPublicKeyInfo)}
				counter = auth.DeviceCounter("bob", 0, auth.CertificateDevice(&info))
			}
			wrong := url.Values{"username": {"bob"}, "password": {"not bob's password at all"}}
			// Earlier failures on this device, as if over the last hours.
			for range auth.KnownDeviceMaxFailures - 1 {
				if _, err := p.store.AddFailure(t.Context(), counter, auth.FailureMemory); err != nil {
					t.Fatal(err)
				}
			}
			wantStatus(t, "the device's last failure", b.post("/login", wrong), http.StatusUnauthorized)
			if n := p.failures(counter); n != auth.KnownDeviceMaxFailures {
				t.Fatalf("device count = %d, want %d", n, auth.KnownDeviceMaxFailures)
			}
			// Now an unknown device: its failures count on the account.
			wantStatus(t, "a failure after the limit", b.post("/login", wrong), http.StatusUnauthorized)
			if n := p.failures(auth.FailureCounter(auth.CounterPassword, "bob")); n != 1 {
				t.Errorf("account count = %d, want 1: the demoted device's failure counts there", n)
			}
			p.lockPassword("bob")
			if got := signInStatus(b, "bob", bobPassword); got != http.StatusForbidden {
				t.Fatalf("demoted device while the account is locked: status %d, want 403", got)
			}

			// The help desk's unlock starts every device afresh.
			admin := p.browser(p.AdminCert)
			admin.login("admin", adminPassword)
			wantStatus(t, "unlock", admin.post("/api/helpdesk/users/bob/unlock", url.Values{"reason": {"T-12"}}), http.StatusOK)
			p.lockPassword("bob")
			if got := signInStatus(b, "bob", bobPassword); got != http.StatusSeeOther {
				t.Fatalf("device after an unlock, account locked again: status %d, want 303 (known again)", got)
			}
			b.post("/logout", nil)
			if n := p.failures(counter); n != auth.KnownDeviceMaxFailures {
				t.Errorf("the count under the old epoch = %d, want it left alone", n)
			}
		})
	}
}

// A certificate device that lost its known status gets it back with a
// successful sign-in on it (a cookie device gets a new cookie anyway).
func TestLogin_SuccessOnADemotedCertificateDeviceMakesItKnownAgain(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", bobPassword, "employee")
	cert := p.certFor("bob")
	info := auth.CertInfo{KeyPin: auth.Fingerprint(cert.Leaf.RawSubjectPublicKeyInfo)}
	counter := auth.DeviceCounter("bob", 0, auth.CertificateDevice(&info))
	for range auth.KnownDeviceMaxFailures {
		if _, err := p.store.AddFailure(t.Context(), counter, auth.FailureMemory); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.store.AddFailure(t.Context(), auth.LockCounter(counter), time.Hour); err != nil {
		t.Fatal(err)
	}
	b := p.browser(cert)
	b.login("bob", bobPassword) // as an unknown device: the account is not locked
	b.post("/logout", nil)
	for _, key := range []string{counter, auth.LockCounter(counter)} {
		if n := p.failures(key); n != 0 {
			t.Errorf("%s = %d after a successful sign-in, want 0", key, n)
		}
	}
	p.lockPassword("bob")
	if got := signInStatus(b, "bob", bobPassword); got != http.StatusSeeOther {
		t.Errorf("certificate device after its successful sign-in, account locked: status %d, want 303", got)
	}
}

// A device cookie counts only for its account, only while the password
// it was set under is in force, the account is enabled and the cookie is
// young enough; anything else is simply no cookie (an unknown device).
func TestLogin_DeviceCookieThatNoLongerCountsIsIgnored(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// spoil does something to the account or to the cookie of b,
		// and returns the password bob now signs in with.
		spoil func(t *testing.T, p *portal, b *browser) string
		// want is the status of that sign-in with bob's password locked
		// for unknown devices.
		want int
	}{
		{"the cookie as it was set counts", func(*testing.T, *portal, *browser) string { return bobPassword }, http.StatusSeeOther},
		{"help desk reset the password", func(t *testing.T, p *portal, b *browser) string {
			admin := p.browser(p.AdminCert)
			admin.login("admin", adminPassword)
			r := admin.post("/api/helpdesk/users/bob/reset-password", url.Values{"reason": {"T-13"}})
			wantStatus(t, "reset", r, http.StatusOK)
			var temporary string
			if err := json.Unmarshal(r.JSON(t)["temporary_password"], &temporary); err != nil || temporary == "" {
				t.Fatalf("reset answer %s: %v", r.Body, err)
			}
			return temporary
		}, http.StatusForbidden},
		{"bob changed the password on another device", func(t *testing.T, p *portal, b *browser) string {
			other := p.browser()
			other.login("bob", bobPassword)
			r := other.post("/account/password", url.Values{"current": {bobPassword}, "new": {"another long passphrase 2027"}, "confirm": {"another long passphrase 2027"}})
			wantStatus(t, "change password", r, http.StatusSeeOther)
			return "another long passphrase 2027"
		}, http.StatusForbidden},
		{"the cookie expired", func(t *testing.T, p *portal, b *browser) string {
			p.clock.Advance(auth.DeviceCookieLifetime)
			return bobPassword
		}, http.StatusForbidden},
		{"a cookie of another account", func(t *testing.T, p *portal, b *browser) string {
			b.setDeviceCookie(p.knownBrowser("carol", "a long passphrase for carol, 2026").deviceCookie())
			return bobPassword
		}, http.StatusForbidden},
		{"a cookie signed with another key", func(t *testing.T, p *portal, b *browser) string {
			b.setDeviceCookie(auth.NewDeviceCookies([]byte("some other key of thirty-two bytes!!")).Issue("bob", "hash", p.clock.Now()))
			return bobPassword
		}, http.StatusForbidden},
		{"a garbled cookie", func(t *testing.T, p *portal, b *browser) string {
			b.setDeviceCookie(b.deviceCookie()[:20] + "x" + b.deviceCookie()[21:])
			return bobPassword
		}, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPortal(t)
			p.addAccount("bob", bobPassword, "employee")
			p.addAccount("carol", "a long passphrase for carol, 2026", "employee")
			b := p.knownBrowser("bob", bobPassword)
			password := tc.spoil(t, p, b)
			p.lockPassword("bob")
			if got := signInStatus(b, "bob", password); got != tc.want {
				t.Errorf("bob signing in with the cookie, locked for unknown devices: status %d, want %d", got, tc.want)
			}
		})
	}
}

// While the account is disabled its device cookies do not count: a
// sign-in from the device fails like any other and counts on the
// account, not on the device.
func TestLogin_DisabledAccountHasNoKnownDevices(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", bobPassword, "employee")
	b := p.knownBrowser("bob", bobPassword)
	err := p.store.UpdateAccount(t.Context(), "bob", func(a *store.Account) error { a.Disabled = true; return nil })
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "disabled bob on his device", b.post("/login", url.Values{"username": {"bob"}, "password": {bobPassword}}), http.StatusUnauthorized)
	if n := p.failures(auth.FailureCounter(auth.CounterPassword, "bob")); n != 1 {
		t.Errorf("account count = %d, want 1", n)
	}
	page, err := p.store.Audit(t.Context(), store.AuditQuery{Actor: "bob", Action: "login", Limit: 1})
	events := page.Items
	if err != nil || len(events) != 1 || events[0].KnownDevice != "" {
		t.Errorf("audit event = %+v (%v), want a failure from an unknown device", events, err)
	}
}

// The password change keeps the device that made it known: it gets a new
// cookie under the new password.
func TestAccount_PasswordChangeRenewsThisDevicesCookie(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", bobPassword, "employee")
	b := p.browser()
	b.login("bob", bobPassword)
	old := b.deviceCookie()
	r := b.post("/account/password", url.Values{"current": {bobPassword}, "new": {"another long passphrase 2027"}, "confirm": {"another long passphrase 2027"}})
	wantStatus(t, "change password", r, http.StatusSeeOther)
	if b.deviceCookie() == old {
		t.Fatal("the device cookie was not renewed with the new password")
	}
	b.post("/logout", nil)
	p.lockPassword("bob")
	if got := signInStatus(b, "bob", "another long passphrase 2027"); got != http.StatusSeeOther {
		t.Errorf("bob on the device that changed the password, locked for unknown devices: status %d, want 303", got)
	}
}

// A certificate that names more than one account counts for none of them
// (docs/decisions.md, "One certificate, one account"), and so makes no
// known device either: a sign-in presenting it answers to the account's
// and the address's throttles, like any unknown device, and is refused
// while the account is locked for unknown devices. Only a certificate
// that counts for the account alone makes a known device.
func TestLogin_CertificateNamingMoreThanOneAccountMakesNoKnownDevice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// email is the certificate's SAN email (its common name is
		// bob); pinOnCarol pins its fingerprint on carol.
		email      string
		pinOnCarol bool
		want       int
		wantKnown  string
	}{
		{"bound to bob alone", "", false, http.StatusSeeOther, "certificate"},
		{"bob's name and carol's email", "carol@example.com", false, http.StatusForbidden, ""},
		{"bob's name, pinned on carol", "", true, http.StatusForbidden, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPortal(t)
			p.addAccount("bob", bobPassword, "employee")
			p.addAccount("carol", "a long passphrase for carol, 2026", "employee")
			issued, err := p.ca.IssueClient(ca.ClientRequest{Name: "bob", Email: tc.email}, p.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			err = p.store.UpdateAccount(t.Context(), "carol", func(a *store.Account) error {
				a.Email = "carol@example.com"
				if tc.pinOnCarol {
					a.PinnedFingerprints = []string{auth.Fingerprint(issued.Cert.Raw)}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			p.lockPassword("bob")
			b := p.browser(tlsCertificate(issued))
			if got := signInStatus(b, "bob", bobPassword); got != tc.want {
				t.Errorf("bob with the certificate, locked for unknown devices: status %d, want %d", got, tc.want)
			}
			page, err := p.store.Audit(t.Context(), store.AuditQuery{Actor: "bob", Action: "login", Limit: 1})
			if err != nil || len(page.Items) != 1 || page.Items[0].KnownDevice != tc.wantKnown {
				t.Errorf("audit event = %+v (%v), want known device %q", page.Items, err, tc.wantKnown)
			}
		})
	}
}

// Many sign-ins at once with one certificate are not failures: past the
// device's own limit they sign in as an unknown device, never 429.
func TestLogin_ManySignInsAtOnceWithOneCertificateAllSucceed(t *testing.T) {
	p := newPortal(t)
	const n = 3 * auth.KnownDeviceMaxFailures
	browsers := make([]*browser, n)
	for i := range browsers {
		browsers[i] = p.browser(p.AdminCert)
		browsers[i].get("/healthz") // connected before the burst
	}
	statuses := make(chan int, n)
	for _, b := range browsers {
		go func() {
			statuses <- b.post("/login", url.Values{"username": {"admin"}, "password": {adminPassword}}).Status
		}()
	}
	for range n {
		if st := <-statuses; st != http.StatusSeeOther {
			t.Errorf("a correct sign-in among %d at once with one certificate: status %d, want 303", n, st)
		}
	}
}
