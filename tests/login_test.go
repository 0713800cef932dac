package tests

import (
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLogin_AdminWithCertificateGetsAdmin(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	cert := p.adminCert(t)
	c := p.client(t, &cert)

	wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")

	s := c.session(t)
	if s.User != "admin" {
		t.Errorf("user = %q, want admin", s.User)
	}
	if diff := cmp.Diff([]string{"admin", "employee"}, s.EffectiveRoles); diff != "" {
		t.Errorf("effective_roles (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"password", "certificate"}, s.Factors); diff != "" {
		t.Errorf("factors (-want +got):\n%s", diff)
	}
	if s.Certificate == nil {
		t.Fatal("certificate = null, want the admin's certificate")
	}
	want := fingerprintOfFile(t, filepath.Join(p.Data, "initial-admin.crt"))
	if !strings.HasPrefix(s.Certificate.Fingerprint, "sha256:") || s.Certificate.Fingerprint != want {
		t.Errorf("certificate.fingerprint = %q, want %q", s.Certificate.Fingerprint, want)
	}
	if len(s.Notices) != 0 {
		t.Errorf("notices = %q, want none", s.Notices)
	}
}

func TestLogin_AdminWithoutCertificateGetsEmployeeOnly(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	c := p.client(t, nil)

	wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")

	s := c.session(t)
	if diff := cmp.Diff([]string{"admin", "employee"}, s.Roles); diff != "" {
		t.Errorf("roles (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"employee"}, s.EffectiveRoles); diff != "" {
		t.Errorf("effective_roles (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"password"}, s.Factors); diff != "" {
		t.Errorf("factors (-want +got):\n%s", diff)
	}
	if s.Certificate != nil {
		t.Errorf("certificate = %+v, want null", s.Certificate)
	}
	wantNotice(t, s, "admin access needs your certificate")

	home := c.get(t, "/")
	wantStatus(t, home, http.StatusOK)
	for _, text := range []string{"admin access needs your certificate", "employee"} {
		if !strings.Contains(home.Body, text) {
			t.Errorf("home page lacks %q:\n%s", text, home.Body)
		}
	}
}

func TestLogin_CertificateFromOtherCAWithAdminCNDoesNotCount(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	forged := foreignCert(t, "admin")
	c := p.client(t, &forged)

	// The handshake succeeds (the portal requests a certificate but does
	// not require or verify one in the handshake): the login answers.
	wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
	if c.certRequests.Load() == 0 {
		t.Fatal("the server never asked for a client certificate, so the forged one was not presented")
	}

	s := c.session(t)
	if slices.Contains(s.EffectiveRoles, "admin") {
		t.Errorf("effective_roles = %q: a certificate from an unknown CA granted admin", s.EffectiveRoles)
	}
	if diff := cmp.Diff([]string{"employee"}, s.EffectiveRoles); diff != "" {
		t.Errorf("effective_roles (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"password"}, s.Factors); diff != "" {
		t.Errorf("factors (-want +got):\n%s", diff)
	}
	if s.Certificate != nil {
		t.Errorf("certificate = %+v, want null", s.Certificate)
	}
	wantNotice(t, s, "not issued by a certificate authority this portal trusts")
	wantNotice(t, s, "admin access needs your certificate")
}

func TestLogin_WrongPasswordGivesNoSession(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	const msg = "invalid username or password"

	t.Run("wrong password with the admin certificate", func(t *testing.T) {
		cert := p.adminCert(t)
		c := p.client(t, &cert)
		r := c.login(t, "admin", p.AdminPassword+"x")
		wantStatus(t, r, http.StatusUnauthorized)
		if !strings.Contains(r.Body, msg) {
			t.Errorf("login page lacks %q:\n%s", msg, r.Body)
		}
		if ck := r.sessionCookie(); ck != nil {
			t.Errorf("a failed login set the session cookie: %v", ck)
		}
		wantUnauthenticated(t, c.get(t, "/api/session"))
	})

	t.Run("unknown user looks like a wrong password", func(t *testing.T) {
		c := p.client(t, nil)
		wrong := c.login(t, "admin", "not the admin password at all")
		unknown := c.login(t, "nobody", "not the admin password at all")
		if wrong.Status != http.StatusUnauthorized || unknown.Status != wrong.Status {
			t.Errorf("status: wrong password %d, unknown user %d; want both 401", wrong.Status, unknown.Status)
		}
		for _, r := range []response{wrong, unknown} {
			if !strings.Contains(r.Body, msg) {
				t.Errorf("login page lacks %q:\n%s", msg, r.Body)
			}
			if ck := r.sessionCookie(); ck != nil {
				t.Errorf("a failed login set the session cookie: %v", ck)
			}
		}
		// The pages differ only in the username echoed into the form.
		a := strings.Replace(wrong.Body, `value="admin"`, `value="USER"`, 1)
		b := strings.Replace(unknown.Body, `value="nobody"`, `value="USER"`, 1)
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("wrong password and unknown user pages differ (-wrong +unknown):\n%s", diff)
		}
		wantUnauthenticated(t, c.get(t, "/api/session"))
	})
}

// A name typed at sign-in that matches no account is often a password
// typed into the wrong field: the server's log and the audit trail show
// only a keyed hash of it, the same at every attempt and after a restart,
// so that repeated attempts stay visible.
func TestLogin_UnknownNameLoggedAsKeyedHashAcrossRestarts(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	const typed = "Winter-Tulip-Harbour-1987!"
	noteSecret(typed) // the log check at the end of the test looks for it too
	hashRE := regexp.MustCompile(`^unknown:[0-9a-f]{16}$`)

	attempt := func() string {
		t.Helper()
		wantStatus(t, p.client(t, nil).login(t, typed, "some password or other"), http.StatusUnauthorized)
		events, out := p.audit(t, 1)
		if strings.Contains(out, typed) {
			t.Errorf("gatehouse audit shows the name as typed:\n%s", out)
		}
		if len(events) != 1 || events[0].Action != "login" || events[0].Reason != "unknown_user" {
			t.Fatalf("newest audit event %+v, want a failed login of an unknown user", events)
		}
		if !hashRE.MatchString(events[0].Actor) {
			t.Errorf("audit actor = %q, want unknown:<16 hex digits>", events[0].Actor)
		}
		return events[0].Actor
	}
	first, second := attempt(), attempt()
	if first != second {
		t.Errorf("two attempts with one name: actors %q and %q, want one hash", first, second)
	}
	log := p.server.output()
	if strings.Contains(log, typed) {
		t.Errorf("the server log holds the name as typed")
	}
	if !strings.Contains(log, first) {
		t.Errorf("the server log does not show %s:\n%s", first, log)
	}

	p.server.stop(t)
	p.serve(t)
	if again := attempt(); again != first {
		t.Errorf("after a restart the same name is %q, want %q as before", again, first)
	}
	if log := p.server.output(); strings.Contains(log, typed) || !strings.Contains(log, first) {
		t.Errorf("the restarted server's log holds the name as typed, or not its hash %s:\n%s", first, log)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	r := p.client(t, nil).get(t, "/login")
	wantStatus(t, r, http.StatusOK)

	if hsts := r.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
		t.Errorf("Strict-Transport-Security = %q, want a max-age", hsts)
	}
	csp := r.Header.Get("Content-Security-Policy")
	for _, directive := range []string{"frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, directive) {
			t.Errorf("Content-Security-Policy = %q, want %q in it", csp, directive)
		}
	}
	if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}
	if got := r.Header.Get("Cache-Control"); !strings.Contains(got, "no-store") {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if got := r.Header.Get("Referrer-Policy"); got == "" {
		t.Error("no Referrer-Policy header")
	}
}
