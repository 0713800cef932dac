package server_test

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// stateChangingRoutes is every route that changes something, with a body
// it would accept. Each must refuse a cross-origin browser request, for
// forms and JSON alike.
var stateChangingRoutes = []struct{ method, path, body string }{
	{"POST", "/login", "username=admin&password=x"},
	{"POST", "/login/totp", "code=123456"},
	{"POST", "/logout", ""},
	{"POST", "/account/password", "current=x&new=y&confirm=y"},
	{"POST", "/api/account/password", `{"current":"x","new":"y"}`},
	{"POST", "/account/totp", ""},
	{"POST", "/account/totp/confirm", "code=123456"},
	{"POST", "/account/totp/remove", "password=x"},
	{"POST", "/api/account/totp", ""},
	{"POST", "/api/account/totp/confirm", `{"code":"123456"}`},
	{"DELETE", "/api/account/totp", `{"password":"x"}`},
	{"POST", "/account/certificates/00/revoke", "password=x"},
	{"POST", "/account/enrollments", "name=phone"},
	{"POST", "/api/account/enrollments", `{"name":"phone"}`},
	{"POST", "/account/enrollments/00/approve", "code=123456"},
	{"POST", "/api/account/enrollments/00/approve", `{"code":"123456"}`},
	{"POST", "/account/enrollments/00/cancel", ""},
	{"DELETE", "/api/account/enrollments/00", ""},
	{"POST", "/account/enrollments/00/issue", "format=p12"},
	{"POST", "/api/account/enrollments/00/issue", `{"format":"p12"}`},
	{"POST", "/account/certificates/00/renew", "format=p12"},
	{"POST", "/api/account/certificates/00/renew", `{"format":"p12"}`},
	{"POST", "/api/helpdesk/users/bob/enrollments/00/approve", `{"code":"123456","reason":"x"}`},
	{"POST", "/helpdesk/users/bob/enrollments/00/approve", "code=123456&reason=x"},
	{"POST", "/api/account/certificates/00/revoke", `{"password":"x"}`},
	{"POST", "/api/admin/users", `{"name":"mallory","roles":["admin"],"password":"a long passphrase for mallory"}`},
	{"PATCH", "/api/admin/users/bob", `{"roles":["admin"]}`},
	{"DELETE", "/api/admin/users/bob", ""},
	{"DELETE", "/api/admin/users/bob/sessions", ""},
	{"DELETE", "/api/admin/users/bob/sessions/0123abcd", ""},
	{"PUT", "/api/admin/roles/employee", `{"require_certificate":true}`},
	{"DELETE", "/api/admin/roles/employee", ""},
	{"POST", "/api/admin/certificates/00/revoke", `{"reason":"x"}`},
	{"PUT", "/api/admin/apps/wiki", `{"url":"https://wiki.example.com/","roles":["employee"]}`},
	{"DELETE", "/api/admin/apps/wiki", ""},
	{"POST", "/admin/apps", "name=wiki&url=https://wiki.example.com/&roles=employee"},
	{"POST", "/admin/apps/wiki/delete", ""},
	{"PUT", "/api/admin/oidc-clients/grafana", `{"redirect_uris":["https://grafana.example.com/cb"],"roles":["employee"]}`},
	{"DELETE", "/api/admin/oidc-clients/grafana", ""},
	{"POST", "/admin/oidc-clients", "id=grafana&redirect_uris=https://grafana.example.com/cb&roles=employee"},
	{"POST", "/admin/oidc-clients/grafana/delete", ""},
	{"POST", "/oauth2/token", "grant_type=authorization_code&code=x&client_id=grafana&client_secret=x"},
	{"POST", "/oauth2/userinfo", ""},
	{"POST", "/api/helpdesk/users/bob/reset-password", `{"reason":"x"}`},
	{"POST", "/api/helpdesk/users/bob/reset-totp", `{"reason":"x"}`},
	{"POST", "/api/helpdesk/users/bob/unlock", `{"reason":"x"}`},
	{"POST", "/api/helpdesk/users/bob/certificate", `{"reason":"x"}`},
	{"POST", "/helpdesk/users/bob/certificate", "reason=x"},
	{"POST", "/admin/users", "name=mallory&roles=admin"},
	{"POST", "/admin/users/bob", "email=&roles=admin"},
	{"POST", "/admin/users/bob/disable", ""},
	{"POST", "/admin/users/bob/enable", ""},
	{"POST", "/admin/users/bob/delete", "confirm=bob"},
	{"POST", "/admin/users/bob/sessions/revoke", ""},
	{"POST", "/admin/roles", "name=employee&require_certificate=on"},
	{"POST", "/admin/roles/employee/delete", ""},
	{"POST", "/admin/certificates/00/revoke", "reason=x"},
	{"POST", "/helpdesk/users/bob/reset-password", "reason=x"},
	{"POST", "/helpdesk/users/bob/reset-totp", "reason=x"},
	{"POST", "/helpdesk/users/bob/unlock", "reason=x"},
}

// An admin signed in with the certificate could make every one of these
// changes; sent from another site, each is refused and nothing changes.
func TestCrossOrigin_EveryStateChangingRouteRefused(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	admin := p.browser(p.AdminCert)
	admin.login("admin", adminPassword)

	for _, rt := range stateChangingRoutes {
		for _, h := range []http.Header{
			{"Sec-Fetch-Site": {"cross-site"}},
			{"Origin": {"https://evil.example"}},
		} {
			req := admin.newRequest(rt.method, rt.path, strings.NewReader(rt.body))
			if strings.HasPrefix(rt.body, "{") {
				req.Header.Set("Content-Type", "application/json")
			} else {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			for k, v := range h {
				req.Header[k] = v
			}
			r := admin.do(req)
			if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "another site") {
				t.Errorf("%s %s with %v: status %d, want 403 saying it came from another site; body: %.200s", rt.method, rt.path, h, r.Status, r.Body)
			}
		}
	}

	// Nothing changed: bob is there with his one role, employee needs no
	// certificate, nobody called mallory exists, the admin is signed in.
	bob, err := p.store.Account(t.Context(), "bob")
	if err != nil || len(bob.Roles) != 1 || bob.Roles[0] != "employee" || bob.Disabled || bob.MustChangePassword {
		t.Errorf("bob after the cross-origin requests: %+v, %v", bob, err)
	}
	if role, err := p.store.Role(t.Context(), "employee"); err != nil || role.RequireCertificate {
		t.Errorf("employee after the cross-origin requests: %+v, %v", role, err)
	}
	if _, err := p.store.Account(t.Context(), "mallory"); err == nil {
		t.Error("a cross-origin request created an account")
	}
	wantStatus(t, "the admin's session", admin.get("/api/session"), http.StatusOK)
}

// TestCrossOrigin_ListCoversEveryRoute keeps stateChangingRoutes complete:
// a new POST, PUT, PATCH or DELETE route in routes.go must be added there.
func TestCrossOrigin_ListCoversEveryRoute(t *testing.T) {
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	routes := regexp.MustCompile(`mux\.Handle\("(POST|PUT|PATCH|DELETE) ([^"]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(routes) < 10 {
		t.Fatalf("found only %d state-changing routes in routes.go; has its form changed?", len(routes))
	}
	for _, m := range routes {
		pattern := regexp.MustCompile(`^` + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(m[2]), `[^/]+`) + `$`)
		if !slices.ContainsFunc(stateChangingRoutes, func(r struct{ method, path, body string }) bool {
			return r.method == m[1] && pattern.MatchString(r.path)
		}) {
			t.Errorf("%s %s is not in stateChangingRoutes", m[1], m[2])
		}
	}
}
