package server_test

import (
	"net/http"
	"strings"
	"testing"

	"gatehouse/store"
)

// A new password is estimated with zxcvbn, with the account's name and
// email and the portal's name as words a guesser tries first: these
// passwords, tried from outside, were accepted by the old rules and are
// refused with the reason in plain words; a passphrase of one's own is
// accepted.
func TestAccountPassword_StrengthEstimate(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	const current = "alice's long passphrase, 2026"
	p.addAccount("alice", current, "employee")
	if err := p.store.UpdateAccount(t.Context(), "alice", func(a *store.Account) error { a.Email = "alice@example.com"; return nil }); err != nil {
		t.Fatal(err)
	}
	alice := p.browser()
	alice.login("alice", current)
	for _, weak := range []string{"passwordpassword1", "Summer2026Summer2026", "iloveyouiloveyou1", "alicealice123456", "alice@example.com2026", "MyGatehouse2026!"} {
		r := alice.jsonDo(http.MethodPost, "/api/account/password", map[string]string{"current": current, "new": weak, "confirm": weak})
		wantStatus(t, weak, r, http.StatusBadRequest)
		if !strings.Contains(r.Body, `"code":"weak_password"`) || !strings.Contains(r.Body, "guess") && !strings.Contains(r.Body, "mostly") {
			t.Errorf("%s: %s, want weak_password with the reason", weak, r.Body)
		}
		if strings.Contains(r.Body, weak) {
			t.Errorf("%s: the answer quotes the password: %s", weak, r.Body)
		}
	}
	const strong = "violet kettle drifts under moonlight"
	wantStatus(t, "a passphrase of her own", alice.jsonDo(http.MethodPost, "/api/account/password", map[string]string{"current": current, "new": strong, "confirm": strong}), http.StatusNoContent)

	// An admin creating an account is held to the same rules, with the
	// new account's name and email.
	admin := p.browser(p.AdminCert)
	admin.login("admin", adminPassword)
	r := admin.jsonDo(http.MethodPost, "/api/admin/users", map[string]any{"name": "carol", "email": "carol.jones@example.com", "roles": []string{"employee"}, "password": "CarolJones2026!!"})
	wantStatus(t, "an account's password made of its own names", r, http.StatusBadRequest)
	r = admin.jsonDo(http.MethodPost, "/api/admin/users", map[string]any{"name": "carol", "email": "carol.jones@example.com", "roles": []string{"employee"}, "password": strong})
	wantStatus(t, "an account with a strong password", r, http.StatusCreated)
}
