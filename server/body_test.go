package server_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"gatehouse/server"
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

// /auth/verify never reads a body: a proxy that passes on the body of
// the request it asks about (Traefik's forwardBody, nginx without
// proxy_pass_request_body off) gets its answer at once, whatever the
// size of the upload to the app.
func TestBody_VerifyIgnoresAForwardedUpload(t *testing.T) {
	p := newPortal(t)
	withApps(t, p)
	p.addAccount("bob", bobPassword, "employee")
	bob := p.browser()
	bob.login("bob", bobPassword)
	sock := p.verifySocket(t)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, sock.base+"/auth/verify", bytes.NewReader(bytes.Repeat([]byte("x"), 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Original-Url", "https://wiki.example.com/upload")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("Cookie", server.SessionCookieName+"="+bob.cookie())
	resp, err := sock.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Errorf("verify with a 1 MiB body passed on: %d %s, want 200", resp.StatusCode, b)
	}
}
