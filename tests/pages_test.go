package tests

import (
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestPages_ErrorPagesKeepTheSignedInHeaderAndSayWhatToDo: an error page
// seen while signed in still shows who you are and lets you sign out; a
// page that needs the certificate says how to get one; signed out, "sign
// in" comes back to the page.
func TestPages_ErrorPagesKeepTheSignedInHeaderAndSayWhatToDo(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	noCert := p.signIn(t, nil, "admin", p.AdminPassword)

	r := noCert.get(t, "/no/such/page")
	wantPage(t, r, http.StatusNotFound, "Signed in as", `action="/logout"`, "Go to the home page")

	r = noCert.get(t, "/admin")
	wantPage(t, r, http.StatusForbidden, "admin access needs your certificate", "Signed in as", `href="/account/enrollments"`)

	r = p.client(t, nil).get(t, "/no/such/page")
	wantPage(t, r, http.StatusNotFound, `href="/login?rd=%2fno%2fsuch%2fpage"`)
	if strings.Contains(r.Body, "Signed in as") {
		t.Errorf("a signed-out 404 page shows a signed-in header")
	}

	r = noCert.get(t, "/account")
	wantPage(t, r, http.StatusOK, "Your account", `href="/account/password"`, `href="/account/totp"`, `href="/account/certificates"`, `href="/account/enrollments"`)
	wantRedirect(t, p.client(t, nil).get(t, "/account"), "/login?rd=%2Faccount")
}

// TestPages_ConsoleSpeaksInWords: the audit page shows reasons and
// certificate statuses in words, the JSON keeps the codes; an account
// with TOTP is "active" like the others; dates read one way everywhere.
func TestPages_ConsoleSpeaksInWords(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	wantPage(t, p.client(t, nil).login(t, "admin", "not the admin's password at all"), http.StatusUnauthorized)
	admin := p.adminSignIn(t)

	r := admin.get(t, "/admin/audit")
	wantPage(t, r, http.StatusOK, "wrong password", "certificate: valid")
	if strings.Contains(r.Body, "<td>bad_password") || strings.Contains(r.Body, "certificate: valid_") {
		t.Errorf("the audit page shows machine codes")
	}
	if j := admin.jsonRequest(t, "GET", "/api/admin/audit", nil); !strings.Contains(j.Body, `"bad_password"`) {
		t.Errorf("the audit API lost the machine code: %s", j.Body)
	}
	if !regexp.MustCompile(`\d{1,2} [A-Z][a-z]+ 20\d\d, \d\d:\d\d UTC`).MatchString(r.Body) {
		t.Errorf("the audit page does not write times as \"2 December 2026, 04:15 UTC\"")
	}
	wantPage(t, admin.get(t, "/"), http.StatusOK, "with password + certificate")
	if r := admin.get(t, "/admin/sessions"); strings.Count(r.Body, "your session") != 1 {
		t.Errorf("the sessions list does not mark exactly one session as the viewer's own")
	}

	enrollTOTP(t, admin, p.AdminPassword)
	if r := admin.get(t, "/admin"); !regexp.MustCompile(`(?s)>admin</a></td>.*?active <span class="tag ok">TOTP on</span>`).MatchString(r.Body) {
		t.Errorf("an account with TOTP is not listed as active with TOTP on")
	}
}

// TestPages_AdminCannotRevokeTheirOwnCertificateInOneClick: the console
// marks the certificate the admin is signed in with and asks before
// revoking it; the API asks for "confirm" too.
func TestPages_AdminCannotRevokeTheirOwnCertificateInOneClick(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	fp := fingerprintOfFile(t, filepath.Join(p.Data, "initial-admin.crt"))

	r := admin.get(t, "/admin/certificates")
	wantPage(t, r, http.StatusOK, "this device", "this is my own device's certificate")
	wantAPIError(t, admin.jsonRequest(t, "POST", "/api/admin/certificates/"+fp+"/revoke", map[string]string{"reason": "oops"}),
		http.StatusConflict, "confirm_required", "signed in with")
	r = admin.post(t, "/admin/certificates/"+fp+"/revoke", url.Values{"reason": {"oops"}})
	wantPage(t, r, http.StatusConflict, "signed in with on this device")
	if s := admin.session(t); !slices.Contains(s.EffectiveRoles, "admin") {
		t.Fatalf("the admin lost the admin role without confirming: %+v", s)
	}
	r = admin.post(t, "/admin/certificates/"+fp+"/revoke", url.Values{"reason": {"laptop handed back"}, "confirm": {"on"}})
	wantStatus(t, r, http.StatusSeeOther)
	if s := admin.session(t); slices.Contains(s.EffectiveRoles, "admin") {
		t.Errorf("the admin keeps the admin role after revoking their own certificate: %+v", s)
	}
}
