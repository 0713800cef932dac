package tests

import (
	"net/http"
	"net/url"
	"regexp"
	"testing"
)

// TestPassword_ForcedChangeGoesOnToWhereTheSignInWasGoing: a person
// signing in with a temporary password on the way to a page chooses a new
// password and lands on that page, not on the same form again.
func TestPassword_ForcedChangeGoesOnToWhereTheSignInWasGoing(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	out := p.cli(t, "", "user", "add", "erin", "--role", "employee")
	m := regexp.MustCompile(`(?m)temporary password[^:]*:\s*(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("gatehouse user add printed no temporary password:\n%s", out)
	}
	temp := m[1]
	noteSecret(temp)

	erin := p.client(t, nil)
	form := loginForm("erin", temp)
	form.Set("rd", "/account/totp")
	r := erin.post(t, "/login", form)
	wantRedirect(t, r, "/account/password?rd=%2Faccount%2Ftotp")
	page := erin.follow(t, r)
	wantPage(t, page, http.StatusOK, "temporary password", `name="rd" value="/account/totp"`)

	// A refusal keeps the way on.
	r = erin.post(t, "/account/password", url.Values{"current": {temp}, "new": {"short"}, "confirm": {"short"}, "rd": {"/account/totp"}})
	wantPage(t, r, http.StatusBadRequest, `name="rd" value="/account/totp"`)

	const good = "a brand new passphrase of erin's, 2026"
	r = erin.post(t, "/account/password", url.Values{"current": {temp}, "new": {good}, "confirm": {good}, "rd": {"/account/totp"}})
	wantRedirect(t, r, "/account/totp")
	wantStatus(t, erin.get(t, "/account/totp"), http.StatusOK)

	// A change made later, not forced, stays on the form.
	r = erin.post(t, "/account/password", url.Values{"current": {good}, "new": {good + "!"}, "confirm": {good + "!"}, "rd": {"https://evil.example/"}})
	wantRedirect(t, r, "/account/password?done")
}
