package tests

import (
	"html"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The admin console and help-desk pages, as a person uses them: HTML
// forms, redirects back to the page, plain-words refusals.

const danaPassword = "a long passphrase for dana, 2026"

// wantPage checks an HTML answer with status that contains every text.
func wantPage(t *testing.T, r response, status int, texts ...string) {
	t.Helper()
	wantStatus(t, r, status)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("Content-Type = %q, want text/html", ct)
	}
	body := html.UnescapeString(r.Body)
	for _, text := range texts {
		if !strings.Contains(body, text) {
			t.Errorf("page (status %d) does not contain %q; body:\n%s", r.Status, text, r.Body)
		}
	}
}

// follow gets the page a 303 points to.
func (c *client) follow(t *testing.T, r response) response {
	t.Helper()
	wantStatus(t, r, http.StatusSeeOther)
	return c.get(t, r.location())
}

var temporaryPassword = regexp.MustCompile(`aria-label="Temporary password">([^<]+)<`)

// shownPassword is the temporary password a page shows once.
func shownPassword(t *testing.T, r response) string {
	t.Helper()
	m := temporaryPassword.FindStringSubmatch(r.Body)
	if m == nil {
		t.Fatalf("no temporary password on the page:\n%s", r.Body)
	}
	return html.UnescapeString(m[1])
}

// issuedCert issues a certificate to user with the CLI and loads it.
func (p *portal) issuedCert(t *testing.T, user string) *client {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), user)
	p.cli(t, "", "cert", "issue", user, "--out", prefix)
	cert := loadCert(t, prefix)
	return p.client(t, &cert)
}

func TestConsolePages_AdminManagesAccountsRolesSessionsAndAudit(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	p.cli(t, danaPassword+"\n", "user", "add", "dana", "--role", "employee", "--email", "dana@example.com", "--password-stdin")
	cert := p.adminCert(t)
	admin := p.client(t, &cert)
	wantRedirect(t, admin.login(t, "admin", p.AdminPassword), "/")

	wantPage(t, admin.get(t, "/"), http.StatusOK, `href="/admin"`, `href="/helpdesk"`)
	wantPage(t, admin.get(t, "/admin"), http.StatusOK, "Admin console", ">dana<", "dana@example.com", "New account")
	wantPage(t, admin.get(t, "/admin?q=DANA@"), http.StatusOK, ">dana<")
	if r := admin.get(t, "/admin?q=nobody-like-this"); !strings.Contains(r.Body, "No account matches") {
		t.Errorf("search for a missing account does not say so:\n%s", r.Body)
	}

	// Create an account without a password: the temporary one is shown
	// once, in the page, never in a URL, and must be changed first.
	r := admin.post(t, "/admin/users", url.Values{"name": {"erin"}, "email": {"erin@example.com"}, "roles": {"employee"}})
	wantPage(t, r, http.StatusCreated, "Temporary password for erin", "shown only now")
	temp := shownPassword(t, r)
	erin := p.client(t, nil)
	wantRedirect(t, erin.login(t, "erin", temp), "/account/password")

	// Refusals re-show the form with the reason and what was typed.
	r = admin.post(t, "/admin/users", url.Values{"name": {"erin"}, "roles": {"employee"}, "password": {danaPassword}})
	wantPage(t, r, http.StatusConflict, "already exists", `value="erin"`)
	r = admin.post(t, "/admin/users", url.Values{"name": {"frank"}, "roles": {"no-such-role"}})
	wantPage(t, r, http.StatusBadRequest, `no role named "no-such-role"`)
	r = admin.post(t, "/admin/users", url.Values{"name": {"frank"}, "roles": {"employee"}, "password": {"short"}})
	wantPage(t, r, http.StatusBadRequest, "15 characters")

	// Change roles: dana's live session ends at once.
	dana := p.client(t, nil)
	wantRedirect(t, dana.login(t, "dana", danaPassword), "/")
	p.cli(t, "", "role", "set", "auditors")
	r = admin.post(t, "/admin/users/dana", url.Values{"email": {"dana@example.com"}, "roles": {"employee", "auditors"}})
	wantRedirect(t, r, "/admin/users/dana?done=updated")
	wantPage(t, admin.follow(t, r), http.StatusOK, "The account was changed", "auditors, employee",
		"Failed sign-ins in a row</dt><dd>0 wrong passwords</dd>")
	wantUnauthenticated(t, dana.get(t, "/api/session"))
	r = admin.post(t, "/admin/users/dana", url.Values{"email": {"dana@example.com"}, "roles": {"employee", "auditors"}})
	wantPage(t, admin.follow(t, r), http.StatusOK, "Nothing was changed")

	// The admin's own page has no role boxes, and the route refuses them.
	if r := admin.get(t, "/admin/users/admin"); strings.Contains(r.Body, `name="roles"`) || !strings.Contains(r.Body, "cannot change your own roles") {
		t.Errorf("the admin's own page offers role changes:\n%s", r.Body)
	}
	wantPage(t, admin.post(t, "/admin/users/admin/disable", url.Values{}), http.StatusForbidden, "your own account")

	// Sessions: listed with factors and address, ended one by one.
	wantRedirect(t, dana.login(t, "dana", danaPassword), "/")
	r = admin.get(t, "/admin/sessions?user=dana")
	wantPage(t, r, http.StatusOK, "password", "127.0.0.1")
	if strings.Contains(r.Body, dana.cookieValue(t)) {
		t.Fatal("the sessions page shows a session cookie value")
	}
	handle := regexp.MustCompile(`name="handle" value="([0-9a-f]+)"`).FindStringSubmatch(r.Body)
	if handle == nil {
		t.Fatalf("no session handle on the sessions page:\n%s", r.Body)
	}
	r = admin.post(t, "/admin/users/dana/sessions/revoke", url.Values{"handle": {handle[1]}, "from": {"sessions"}})
	wantRedirect(t, r, "/admin/sessions?done=session")
	wantUnauthenticated(t, dana.get(t, "/api/session"))

	// Disable and enable.
	wantRedirect(t, dana.login(t, "dana", danaPassword), "/")
	wantRedirect(t, admin.post(t, "/admin/users/dana/disable", url.Values{}), "/admin/users/dana?done=disabled")
	wantUnauthenticated(t, dana.get(t, "/api/session"))
	wantPage(t, admin.get(t, "/admin/users/dana"), http.StatusOK, "disabled", "Enable account")
	wantRedirect(t, admin.post(t, "/admin/users/dana/enable", url.Values{}), "/admin/users/dana?done=enabled")
	wantRedirect(t, dana.login(t, "dana", danaPassword), "/")

	// Roles: create, refuse a duplicate, change, delete.
	r = admin.post(t, "/admin/roles", url.Values{"new": {"1"}, "name": {"finance"}, "description": {"Money apps"}, "require_certificate": {"on"}})
	wantRedirect(t, r, "/admin/roles?done=role")
	wantPage(t, admin.follow(t, r), http.StatusOK, "finance", "Money apps", "The role was saved")
	wantPage(t, admin.post(t, "/admin/roles", url.Values{"new": {"1"}, "name": {"finance"}}), http.StatusConflict, "already exists")
	wantPage(t, admin.post(t, "/admin/roles", url.Values{"new": {"1"}, "name": {"Bad Name"}}), http.StatusBadRequest)
	wantRedirect(t, admin.post(t, "/admin/roles/finance/delete", url.Values{}), "/admin/roles?done=role-deleted")
	wantPage(t, admin.post(t, "/admin/roles/admin/delete", url.Values{}), http.StatusConflict, "admin role cannot be deleted")

	// Employee needs TOTP from the roles page: dana's password session
	// loses employee on its next request.
	r = admin.post(t, "/admin/roles", url.Values{"name": {"employee"}, "require_totp": {"on"}})
	wantRedirect(t, r, "/admin/roles?done=role")
	if s := dana.session(t); len(s.EffectiveRoles) != 1 || s.EffectiveRoles[0] != "auditors" {
		t.Errorf("dana's effective roles after employee needs TOTP = %q, want [auditors]", s.EffectiveRoles)
	}
	wantRedirect(t, admin.post(t, "/admin/roles", url.Values{"name": {"employee"}}), "/admin/roles?done=role")

	// Apps: added from the console, listed on the home page of those who
	// may open them.
	wantPage(t, admin.post(t, "/admin/apps", url.Values{"name": {"wiki"}, "url": {"http://wiki.example.com/"}, "roles": {"employee"}}), http.StatusBadRequest, "https")
	r = admin.post(t, "/admin/apps", url.Values{"name": {"wiki"}, "url": {"https://Wiki.example.com"}, "roles": {"auditors"}})
	wantRedirect(t, r, "/admin/apps?done=app")
	wantPage(t, admin.follow(t, r), http.StatusOK, "https://wiki.example.com/", "auditors")
	wantPage(t, dana.get(t, "/"), http.StatusOK, `href="https://wiki.example.com/"`)
	if r := admin.get(t, "/"); strings.Contains(r.Body, `href="https://wiki.example.com/"`) {
		t.Error("the admin's home page lists an app only auditors may open")
	}
	wantRedirect(t, admin.post(t, "/admin/apps/wiki/delete", url.Values{}), "/admin/apps?done=app-deleted")

	// Certificates: listed, revoked only with a reason.
	danaLaptop := p.issuedCert(t, "dana")
	wantRedirect(t, danaLaptop.login(t, "dana", danaPassword), "/")
	r = admin.get(t, "/admin/certificates?user=dana")
	fp := regexp.MustCompile(`action="/admin/certificates/(sha256:[0-9a-f]+)/revoke"`).FindStringSubmatch(r.Body)
	if fp == nil {
		t.Fatalf("no revoke form on the certificates page:\n%s", r.Body)
	}
	wantPage(t, admin.post(t, "/admin/certificates/"+fp[1]+"/revoke", url.Values{"reason": {" "}}), http.StatusBadRequest, "give a reason")
	r = admin.post(t, "/admin/certificates/"+fp[1]+"/revoke", url.Values{"reason": {"INC-7 lost laptop"}})
	wantRedirect(t, r, "/admin/certificates?user=dana&done=revoked")
	wantPage(t, admin.follow(t, r), http.StatusOK, "revoked", "INC-7 lost laptop")
	wantNotice(t, danaLaptop.session(t), "revoked")

	// Delete needs the name typed again.
	wantPage(t, admin.post(t, "/admin/users/erin/delete", url.Values{"confirm": {"eri"}}), http.StatusBadRequest, "type the account's name")
	wantRedirect(t, admin.post(t, "/admin/users/erin/delete", url.Values{"confirm": {"erin"}}), "/admin?done=deleted")
	wantPage(t, admin.get(t, "/admin/users/erin"), http.StatusNotFound, `no account named "erin"`)

	// The audit trail: everything above, filterable, page by page.
	r = admin.get(t, "/admin/audit?user=dana")
	wantPage(t, r, http.StatusOK, "admin.user.update", "admin.sessions.revoke", "admin.certificate.revoke", "INC-7 lost laptop", "password + certificate")
	if strings.Contains(r.Body, temp) || strings.Contains(r.Body, danaPassword) {
		t.Fatal("the audit page shows a password")
	}
	r = admin.get(t, "/admin/audit?action=admin.user.delete")
	wantPage(t, r, http.StatusOK, "erin")
	if strings.Contains(r.Body, "admin.user.update") {
		t.Error("the action filter let other actions through")
	}
	seen := map[string]bool{}
	next := "/admin/audit?user=dana&limit=3"
	for pages := 0; next != ""; pages++ {
		if pages > 50 {
			t.Fatal("paging through dana's audit trail does not end")
		}
		r = admin.get(t, next)
		wantStatus(t, r, http.StatusOK)
		for _, m := range regexp.MustCompile(`<td>(\d{1,2} [A-Z][a-z]+ \d{4}, \d\d:\d\d UTC)</td>\s*<td>([a-z._]+)`).FindAllStringSubmatch(r.Body, -1) {
			seen[m[2]] = true
		}
		next = ""
		if m := regexp.MustCompile(`<a href="(/admin/audit\?[^"]+)">Older events`).FindStringSubmatch(r.Body); m != nil {
			next = html.UnescapeString(m[1])
		}
	}
	for _, action := range []string{"admin.user.update", "admin.sessions.revoke", "admin.certificate.revoke", "login"} {
		if !seen[action] {
			t.Errorf("paging through dana's audit trail never showed %s (saw %v)", action, seen)
		}
	}
	wantPage(t, admin.get(t, "/admin/audit?since=yesterday"), http.StatusBadRequest, "since must be a date")
	p.wantLogsFree(t, temp, danaPassword, p.AdminPassword, admin.cookieValue(t), danaLaptop.cookieValue(t))
}

func TestConsolePages_HelpDeskAndBoundaries(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	p.cli(t, danaPassword+"\n", "user", "add", "dana", "--role", "employee", "--email", "dana@example.com", "--password-stdin")
	p.cli(t, "a long passphrase for hank, 2026\n", "user", "add", "hank", "--role", "helpdesk", "--role", "employee", "--password-stdin")
	hank := p.issuedCert(t, "hank")
	wantRedirect(t, hank.login(t, "hank", "a long passphrase for hank, 2026"), "/")

	wantPage(t, hank.get(t, "/"), http.StatusOK, `href="/helpdesk"`)
	if r := hank.get(t, "/"); strings.Contains(r.Body, `href="/admin"`) {
		t.Error("the help desk's home page links to the admin console")
	}
	wantPage(t, hank.get(t, "/admin"), http.StatusForbidden, "needs the admin role")
	wantPage(t, hank.post(t, "/admin/users/dana/disable", url.Values{}), http.StatusForbidden)

	wantPage(t, hank.get(t, "/helpdesk?q=dana"), http.StatusOK, ">dana<", "dana@example.com")
	// Accounts holding admin or helpdesk: the page says why, offers no
	// button, and the route refuses.
	r := hank.get(t, "/helpdesk/users/admin")
	wantPage(t, r, http.StatusOK, "only an administrator can do this")
	if strings.Contains(r.Body, "<form method=\"post\" action=\"/helpdesk/") {
		t.Error("the help desk is offered actions on an admin")
	}
	wantPage(t, hank.post(t, "/helpdesk/users/admin/reset-password", url.Values{"reason": {"T-1"}}), http.StatusForbidden, "only an administrator")
	wantPage(t, hank.post(t, "/helpdesk/users/hank/unlock", url.Values{"reason": {"T-1"}}), http.StatusForbidden, "your own account")
	wantPage(t, hank.post(t, "/helpdesk/users/dana/reset-password", url.Values{"reason": {""}}), http.StatusBadRequest, "give a reason")

	// A reset shows the temporary password once and ends dana's session.
	dana := p.client(t, nil)
	wantRedirect(t, dana.login(t, "dana", danaPassword), "/")
	r = hank.post(t, "/helpdesk/users/dana/reset-password", url.Values{"reason": {"T-42 forgot password"}})
	wantPage(t, r, http.StatusOK, "Temporary password for dana", "sessions were ended")
	temp := shownPassword(t, r)
	wantUnauthenticated(t, dana.get(t, "/api/session"))
	wantRedirect(t, dana.login(t, "dana", temp), "/account/password")
	// Wrong passwords show on the page the help desk reads on the phone,
	// and an unlock clears them.
	for range 2 {
		wantPage(t, p.client(t, nil).login(t, "dana", "not dana's password"), http.StatusUnauthorized)
	}
	wantPage(t, hank.get(t, "/helpdesk/users/dana"), http.StatusOK, "Failed sign-ins in a row</dt><dd>2 wrong passwords</dd>")
	r = hank.post(t, "/helpdesk/users/dana/unlock", url.Values{"reason": {"T-43"}})
	wantRedirect(t, r, "/helpdesk/users/dana?done=unlocked")
	wantPage(t, hank.follow(t, r), http.StatusOK, "was unlocked", "<dd>0 wrong passwords</dd>")

	// Without its certificate the help desk role does not count, and the
	// page says the certificate is what is missing.
	phone := p.client(t, nil)
	wantRedirect(t, phone.login(t, "hank", "a long passphrase for hank, 2026"), "/")
	wantPage(t, phone.get(t, "/helpdesk"), http.StatusForbidden, "certificate")
	wantPage(t, phone.post(t, "/helpdesk/users/dana/unlock", url.Values{"reason": {"T-44"}}), http.StatusForbidden, "certificate")

	// The admin without the certificate: the same.
	adminPhone := p.client(t, nil)
	wantRedirect(t, adminPhone.login(t, "admin", p.AdminPassword), "/")
	wantPage(t, adminPhone.get(t, "/admin"), http.StatusForbidden, "admin access needs your certificate")

	// A form posted from another site is refused, whoever is signed in.
	req := hank.newRequest(t, http.MethodPost, "/helpdesk/users/dana/reset-password", url.Values{"reason": {"T-45"}})
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	wantPage(t, send(t, hank.jar, req), http.StatusForbidden, "another site")

	// Anonymous visitors are sent to sign in, and come back here.
	anon := p.client(t, nil)
	wantRedirect(t, anon.get(t, "/admin/roles"), "/login?rd=%2Fadmin%2Froles")
	p.wantLogsFree(t, temp, danaPassword, "a long passphrase for hank, 2026", p.AdminPassword, hank.cookieValue(t), phone.cookieValue(t))
}
