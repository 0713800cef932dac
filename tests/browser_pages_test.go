package tests

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Every page a person sees, in a real browser, at a laptop's width and a
// phone's: sign-in with and without a certificate, the TOTP step and
// enrollment, the admin console, the help desk, a certificate for a new
// device, the refusals, and an OpenID Connect app from its registration
// to its refusal page. Each page is checked for width and labels
// and kept as a screenshot (see browser_test.go).

// signInForm submits the sign-in form and returns the status of the page
// it leads to.
func (b *browser) signInForm(t *testing.T, name, password string) int64 {
	t.Helper()
	if !strings.HasPrefix(b.path(t), "/login") {
		b.open(t, "/login")
	}
	b.fill(t, "#username", name)
	b.fill(t, "#password", password)
	return b.click(t, `form[action="/login"] button[type="submit"]`)
}

// signOut uses the sign-out button in the home page's header (error
// pages have none).
func (b *browser) signOut(t *testing.T) {
	t.Helper()
	b.open(t, "/")
	b.click(t, `header form[action="/logout"] button`)
}

// wantPath checks the path (and query) of the page the browser shows.
func (b *browser) wantPath(t *testing.T, want string) {
	t.Helper()
	if got := b.path(t); got != want {
		t.Fatalf("%s is at %s, want %s", b.name, got, want)
	}
}

// issueP12 issues a certificate to name with the CLI and returns the
// PKCS#12 file and its import password.
func (p *portal) issueP12(t *testing.T, name string) (file, password string) {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), name)
	password = "import password for " + name
	p.cli(t, password+"\n", "cert", "issue", name, "--out", prefix, "--p12-password-stdin")
	noteKeyFile(t, prefix+".key")
	return prefix + ".p12", password
}

func TestBrowser_EveryPageAtDesktopAndPhoneWidths(t *testing.T) {
	t.Parallel()
	tools := needBrowserTools(t)
	p := startPortal(t)
	report := newPageReport(t)
	adminP12 := filepath.Join(p.Data, "initial-admin.p12")

	// ops needs a certificate: the role a phone does not get.
	p.cli(t, "", "role", "set", "ops", "--require-certificate")
	users := []struct{ name, email string }{
		{"carol", "carol@example.com"}, // signs in on a laptop and a phone
		{"tess", ""},                   // sets up TOTP
		{"dana", "dana@example.com"},   // the help desk resets her password
		{"pat", ""},                    // an employee who tries the console
		{"alice", "alice@example.com"}, // gets a certificate for her phone
		{"olga", ""},                   // opens an app for ops on her phone
	}
	for _, u := range users {
		args := []string{"user", "add", u.name, "--role", "employee", "--role", "ops", "--password-stdin"}
		if u.email != "" {
			args = append(args, "--email", u.email)
		}
		p.cli(t, passphrase(u.name)+"\n", args...)
	}
	p.addUser(t, "hank", passphrase("hank"), "helpdesk", "employee")

	t.Run("SignInWithAndWithoutCertificate", func(t *testing.T) {
		t.Parallel()
		file, pw := p.issueP12(t, "carol")
		laptop := newBrowser(t, p, tools, report, "carol-laptop", false, file, pw)
		laptop.open(t, "/login")
		laptop.wantText(t, "This device presented a certificate issued to carol")
		laptop.checkPage(t, "login-with-certificate")
		laptop.wantStatusCode(t, laptop.signInForm(t, "carol", passphrase("carol")), http.StatusOK)
		laptop.wantPath(t, "/")
		laptop.wantText(t, "Hello, carol", "employee, ops")
		laptop.checkPage(t, "home-with-certificate")
		s := laptop.session(t)
		if !slices.Contains(s.Factors, "certificate") || !slices.Contains(s.EffectiveRoles, "ops") {
			t.Errorf("carol on her laptop: factors %q, roles in effect %q; want the certificate and ops", s.Factors, s.EffectiveRoles)
		}

		phone := newBrowser(t, p, tools, report, "carol-phone", true, "", "")
		phone.open(t, "/login")
		phone.wantText(t, "This device did not present a certificate")
		phone.checkPage(t, "login-without-certificate")
		phone.wantStatusCode(t, phone.signInForm(t, "carol", passphrase("carol")), http.StatusOK)
		phone.wantPath(t, "/")
		phone.wantText(t, "Hello, carol", "Get a certificate for this device")
		phone.checkPage(t, "home-without-certificate")
		wantEffective(t, "carol on her phone", phone.session(t), "employee")

		phone.open(t, "/account/password")
		phone.checkPage(t, "password")
		phone.open(t, "/account/certificates")
		phone.checkPage(t, "certificates-seen-from-a-phone")
		laptop.open(t, "/account/certificates")
		laptop.wantText(t, "this device")
		laptop.checkPage(t, "certificates")
	})

	t.Run("TOTPEnrollmentAndStep", func(t *testing.T) {
		t.Parallel()
		phone := newBrowser(t, p, tools, report, "tess-phone", true, "", "")
		phone.signInForm(t, "tess", passphrase("tess"))
		phone.wantPath(t, "/")
		phone.click(t, `a[href="/account/totp"]`)
		phone.checkPage(t, "totp-off")
		phone.click(t, `form[action="/account/totp"] button`)
		phone.wantText(t, "Scan this code")
		phone.checkPage(t, "totp-setup")
		secret := strings.ReplaceAll(phone.text(t, ".mono.key"), " ", "")
		noteSecret(secret)
		used := time.Now()
		phone.fill(t, "#code", totpCode(t, secret, used))
		phone.fill(t, "#password", passphrase("tess"))
		phone.click(t, `form[action="/account/totp/confirm"] button`)
		phone.wantText(t, "TOTP is on", "Your recovery codes")
		phone.checkPage(t, "totp-recovery-codes")
		phone.open(t, "/account/totp")
		phone.checkPage(t, "totp-on")

		phone.signOut(t)
		phone.signInForm(t, "tess", passphrase("tess"))
		phone.wantPath(t, "/login/totp")
		phone.checkPage(t, "login-totp")
		phone.fill(t, "#code", wrongCode(t, secret))
		phone.wantStatusCode(t, phone.click(t, `form[action="/login/totp"] button[type="submit"]`), http.StatusUnauthorized)
		phone.checkPage(t, "login-totp-wrong-code")
		phone.fill(t, "#code", freshCode(t, secret, used))
		phone.click(t, `form[action="/login/totp"] button[type="submit"]`)
		phone.wantPath(t, "/")
		if s := phone.session(t); !slices.Contains(s.Factors, "totp") {
			t.Errorf("tess after the TOTP step: factors %q, want totp", s.Factors)
		}
	})

	t.Run("AdminConsole", func(t *testing.T) {
		t.Parallel()
		laptop := newBrowser(t, p, tools, report, "admin-laptop", false, adminP12, p.AdminP12Password)
		laptop.signInForm(t, "admin", p.AdminPassword)
		laptop.wantPath(t, "/")
		laptop.wantText(t, "Admin console")
		laptop.checkPage(t, "home-admin")

		laptop.click(t, `a[href="/admin"]`)
		laptop.checkPage(t, "admin-users")
		laptop.fill(t, "#name", "erin")
		laptop.fill(t, "#email", "erin@example.com")
		laptop.tick(t, `input[name="roles"][value="employee"]`)
		laptop.wantStatusCode(t, laptop.click(t, `form[action="/admin/users"] button[type="submit"]`), http.StatusCreated)
		laptop.wantText(t, "Temporary password for erin")
		laptop.checkPage(t, "admin-user-created")
		temp := laptop.text(t, `[aria-label="Temporary password"]`)
		noteSecret(temp)
		laptop.open(t, "/admin/users/erin")
		laptop.checkPage(t, "admin-user")
		laptop.open(t, "/admin/roles")
		laptop.checkPage(t, "admin-roles")
		laptop.open(t, "/admin/sessions")
		laptop.checkPage(t, "admin-sessions")
		laptop.open(t, "/admin/certificates")
		laptop.checkPage(t, "admin-certificates")
		laptop.open(t, "/admin/apps")
		laptop.fill(t, "#name", "wiki")
		laptop.fill(t, "#url", "https://wiki.example.com/")
		laptop.tick(t, `input[name="roles"][value="employee"]`)
		laptop.click(t, `form[action="/admin/apps"] button[type="submit"]`)
		laptop.wantText(t, "https://wiki.example.com/")
		laptop.checkPage(t, "admin-apps")
		laptop.open(t, "/admin/audit")
		laptop.wantText(t, "admin.user.create")
		laptop.checkPage(t, "admin-audit")

		// erin's first sign-in: a new password before anything else.
		phone := newBrowser(t, p, tools, report, "erin-phone", true, "", "")
		phone.signInForm(t, "erin", temp)
		phone.wantPath(t, "/account/password")
		phone.wantText(t, "temporary password")
		phone.checkPage(t, "password-must-change")
		phone.fill(t, "#current", temp)
		phone.fill(t, "#new", passphrase("erin"))
		phone.fill(t, "#confirm", passphrase("erin"))
		phone.click(t, `form[action="/account/password"] button[type="submit"]`)
		// The sign-in goes on to where it was going: home.
		phone.wantPath(t, "/")
		phone.wantText(t, "Hello, erin")
	})

	t.Run("HelpDesk", func(t *testing.T) {
		t.Parallel()
		file, pw := p.issueP12(t, "hank")
		laptop := newBrowser(t, p, tools, report, "hank-laptop", false, file, pw)
		laptop.signInForm(t, "hank", passphrase("hank"))
		laptop.click(t, `a[href="/helpdesk"]`)
		laptop.checkPage(t, "helpdesk")
		laptop.fill(t, "#q", "dana")
		laptop.click(t, `form[role="search"] button[type="submit"]`)
		laptop.wantText(t, "dana@example.com")
		laptop.checkPage(t, "helpdesk-search")
		laptop.click(t, `a[href="/helpdesk/users/dana"]`)
		laptop.checkPage(t, "helpdesk-user")
		laptop.fill(t, "#reason-pw", "T-42 forgot password")
		laptop.click(t, `form[action="/helpdesk/users/dana/reset-password"] button[type="submit"]`)
		laptop.wantText(t, "Temporary password for dana")
		noteSecret(laptop.text(t, `[aria-label="Temporary password"]`))
		laptop.checkPage(t, "helpdesk-password-reset")
		laptop.open(t, "/helpdesk/users/admin")
		laptop.wantText(t, "only an administrator can do this")
		laptop.checkPage(t, "helpdesk-user-out-of-reach")
	})

	t.Run("DeviceCertificateJourney", func(t *testing.T) {
		t.Parallel()
		file, pw := p.issueP12(t, "alice")
		laptop := newBrowser(t, p, tools, report, "alice-laptop", false, file, pw)
		laptop.signInForm(t, "alice", passphrase("alice"))
		wantEffective(t, "alice on her laptop", laptop.session(t), "employee", "ops")

		// The new phone signs in with the password and asks.
		phone := newBrowser(t, p, tools, report, "alice-phone", true, "", "")
		phone.signInForm(t, "alice", passphrase("alice"))
		phone.click(t, `a.button[href="/account/enrollments"]`)
		phone.checkPage(t, "enrollment-ask")
		phone.fill(t, "#device-name", "Alice's phone")
		phone.click(t, `form[action="/account/enrollments"] button[type="submit"]`)
		phone.wantText(t, "is waiting for approval", "Your confirmation code")
		// The page reloads itself every few seconds: stop that while it is
		// measured.
		phone.do(t, "stop the refresh", chromedp.Evaluate[chromedp.Void](`window.stop()`))
		phone.checkPage(t, "enrollment-waiting")
		code := phone.text(t, `[aria-label="Confirmation code"]`)
		if !regexp.MustCompile(`^[0-9]{6}$`).MatchString(code) {
			t.Fatalf("the confirmation code on the phone is %q, want 6 digits", code)
		}
		// Load it again, refresh and all: it changes by itself once approved.
		phone.open(t, "/account/enrollments")

		// The laptop, which holds alice's certificate, approves with the code.
		laptop.open(t, "/")
		laptop.wantText(t, "A new device asks for your certificate", "Alice's phone")
		laptop.checkPage(t, "home-approve-device")
		laptop.fill(t, `form[aria-label="Approve Alice's phone"] input[name="code"]`, code)
		laptop.click(t, `form[aria-label="Approve Alice's phone"] button[type="submit"]`)
		laptop.wantText(t, "approved")
		laptop.checkPage(t, "enrollment-approved-by-laptop")

		// The phone's page updates itself and offers the certificate.
		phone.do(t, "wait for the approval to show", chromedp.WaitVisible(chromedp.CSS(`form[action$="/issue"] button[type="submit"]`)))
		phone.checkPage(t, "enrollment-approved")
		phone.tick(t, `input[name="format"][value="p12"]`)
		phone.wantStatusCode(t, phone.click(t, `form[action$="/issue"] button[type="submit"]`), http.StatusCreated)
		phone.wantText(t, "Your certificate for “Alice's phone”", "Install it")
		phone.checkPage(t, "certificate-issued")
		filename := phone.attr(t, "a[download]", "download")
		p12 := dataURL(t, phone.attr(t, "a[download]", "href"))
		importPassword := phone.text(t, `[aria-label="Import password"]`)
		noteSecret(importPassword)
		if !strings.HasSuffix(filename, ".p12") {
			t.Errorf("the download is named %q, want a .p12 file", filename)
		}
		downloaded := filepath.Join(t.TempDir(), filepath.Base(filename))
		if err := os.WriteFile(downloaded, p12, 0o600); err != nil {
			t.Fatal(err)
		}

		// Import it as a person would, restart the browser, sign in again.
		phone.close(t)
		phone.importP12(t, downloaded, importPassword)
		phone.start(t)
		phone.open(t, "/login")
		phone.wantText(t, "This device presented a certificate issued to alice")
		phone.signInForm(t, "alice", passphrase("alice"))
		phone.wantPath(t, "/")
		phone.wantText(t, "employee, ops")
		phone.checkPage(t, "home-phone-with-new-certificate")
		s := phone.session(t)
		wantEffective(t, "alice on her phone with its new certificate", s, "employee", "ops")
		if s.Certificate == nil || !strings.Contains(s.Certificate.Subject, "alice") {
			t.Errorf("alice's phone session shows certificate %+v, want alice's", s.Certificate)
		}
		phone.open(t, "/account/certificates")
		phone.wantText(t, "Alice's phone", "this device")
		phone.checkPage(t, "certificates-two-devices")
	})

	t.Run("OpenIDConnectApp", func(t *testing.T) {
		t.Parallel()
		// The admin registers an app for ops on the console's page.
		laptop := newBrowser(t, p, tools, report, "admin-oidc-laptop", false, adminP12, p.AdminP12Password)
		laptop.signInForm(t, "admin", p.AdminPassword)
		laptop.open(t, "/admin")
		laptop.click(t, `nav a[href="/admin/oidc-clients"]`)
		laptop.wantPath(t, "/admin/oidc-clients")
		laptop.wantText(t, "No OpenID Connect app yet")
		laptop.fill(t, "#id", "grafana")
		laptop.fill(t, "#redirect_uris", rpRedirect)
		// The form comes with employee ticked: this app is for ops only.
		laptop.untick(t, `input[name="roles"][value="employee"]`)
		laptop.tick(t, `input[name="roles"][value="ops"]`)
		laptop.wantStatusCode(t, laptop.click(t, `form[action="/admin/oidc-clients"] button[type="submit"]`), http.StatusOK)
		laptop.wantText(t, "The app grafana was saved", "Its client secret, shown only now")
		secret := laptop.text(t, `[aria-label="Client secret"]`)
		noteSecret(secret)
		if !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(secret) {
			t.Errorf("the client secret on the page is %q, want 43 characters of base64url", secret)
		}
		laptop.checkPage(t, "admin-oidc-client-secret")
		// Below the secret, the form is a fresh one, as on a first visit.
		js := `[...document.querySelectorAll('input[name="roles"]:checked')].map(e => e.value).join(",")`
		if got := eval[string](t, laptop, "read the ticked roles", js); got != "employee" {
			t.Errorf("after saving, the form's ticked roles are %q, want employee as on a fresh form", got)
		}
		laptop.open(t, "/admin/oidc-clients")
		laptop.wantText(t, "grafana", rpRedirect, "confidential (secret)")
		if roles := laptop.text(t, `tbody tr td:nth-child(3)`); roles != "ops" {
			t.Errorf("the list shows grafana for roles %q, want ops", roles)
		}
		if body := eval[string](t, laptop, "read the page", `document.body.innerText`); strings.Contains(body, secret) {
			t.Error("the list of OpenID Connect apps shows the client secret again")
		}
		laptop.checkPage(t, "admin-oidc-clients")

		// olga holds ops, but her phone has no certificate: the app is
		// refused, and the page says what is missing.
		rp := newRelyingParty(t, p, "grafana", secret)
		phone := newBrowser(t, p, tools, report, "olga-phone", true, "", "")
		phone.signInForm(t, "olga", passphrase("olga"))
		phone.wantPath(t, "/")
		wantEffective(t, "olga on her phone", phone.session(t), "employee")
		phone.wantStatusCode(t, phone.open(t, rp.authorizeURL(t, newAttempt())), http.StatusForbidden)
		if path := phone.path(t); !strings.HasPrefix(path, "/oauth2/login?id=") {
			t.Errorf("the refusal is at %s, want /oauth2/login?id=…", path)
		}
		phone.wantText(t, "This app needs more", "The app grafana asked to sign you in",
			"ops access needs your device certificate", "choose your certificate when the browser asks")
		phone.checkPage(t, "oidc-refused-without-certificate")
		// Signing out to sign in again keeps the way back to the app.
		phone.click(t, `form[action="/logout"] button[type="submit"]:not(.link)`)
		if path := phone.path(t); !strings.HasPrefix(path, "/login?rd=%2Foauth2%2Flogin%3Fid%3D") {
			t.Errorf("signing out to sign in again leads to %s, want the sign-in page on the way back to the app", path)
		}
	})

	t.Run("RefusalPages", func(t *testing.T) {
		t.Parallel()
		phone := newBrowser(t, p, tools, report, "refused-phone", true, "", "")
		phone.wantStatusCode(t, phone.signInForm(t, "pat", "not pat's password at all, 2026"), http.StatusUnauthorized)
		phone.wantText(t, "invalid username or password")
		phone.checkPage(t, "login-wrong-password")

		// The admin without a certificate: employee only, and told why.
		phone.signInForm(t, "admin", p.AdminPassword)
		phone.wantPath(t, "/")
		phone.wantText(t, "admin access needs your certificate")
		phone.checkPage(t, "home-admin-without-certificate")
		phone.wantStatusCode(t, phone.open(t, "/admin"), http.StatusForbidden)
		phone.wantText(t, "admin access needs your certificate")
		phone.checkPage(t, "refused-admin-without-certificate")
		phone.wantStatusCode(t, phone.open(t, "/helpdesk"), http.StatusForbidden)
		phone.checkPage(t, "refused-helpdesk-without-certificate")
		phone.signOut(t)

		// An employee at the console.
		phone.signInForm(t, "pat", passphrase("pat"))
		phone.wantStatusCode(t, phone.open(t, "/admin"), http.StatusForbidden)
		phone.wantText(t, "needs the admin role")
		phone.checkPage(t, "refused-not-an-admin")
		phone.wantStatusCode(t, phone.open(t, "/no-such-page"), http.StatusNotFound)
		phone.checkPage(t, "not-found")
		phone.signOut(t)

		// Signed out, the console sends you to sign in and back.
		phone.open(t, "/admin/roles")
		phone.wantPath(t, "/login?rd=%2Fadmin%2Froles")
		phone.checkPage(t, "login-to-return")
	})
}
