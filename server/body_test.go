package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A body over the limit is refused with 413 on every route, whether or
// not the route reads its body, and whether or not its length was given
// up front: a route that ignores its body must not act on a request
// that is over the limit (here: delete an account).
func TestBody_OverTheLimitIsRefusedEvenWhereTheRouteIgnoresIt(t *testing.T) {
	p := newPortal(t)
	p.addAccount("bob", bobPassword, "employee")
	admin := p.browser(p.AdminCert)
	admin.login("admin", adminPassword)
	big := `{"x":"` + strings.Repeat("a", 70<<10) + `"}`
	for _, tc := range []struct {
		method, path, contentType string
		chunked                   bool
	}{
		{"DELETE", "/api/admin/users/bob", "application/json", false},
		{"DELETE", "/api/admin/users/bob", "application/json", true},
		{"POST", "/api/account/totp", "application/json", false},
		{"POST", "/oauth2/token", "application/x-www-form-urlencoded", false},
	} {
		var body io.Reader = strings.NewReader(big)
		if tc.chunked {
			body = io.MultiReader(body) // no length: sent chunked
		}
		req := admin.newRequest(tc.method, tc.path, body)
		req.Header.Set("Content-Type", tc.contentType)
		if r := admin.do(req); r.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s with a %d-byte body (chunked %v): status %d, want 413", tc.method, tc.path, len(big), tc.chunked, r.Status)
		}
	}
	if _, err := p.store.Account(t.Context(), "bob"); err != nil {
		t.Errorf("bob was deleted by a request whose body was over the limit: %v", err)
	}
}
