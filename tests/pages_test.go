package tests

import (
	"net/http"
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
