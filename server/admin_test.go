package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"gatehouse/store"
)

// sendJSON sends body to path as JSON and reads the answer.
func (b *browser) sendJSON(method, path, body string) response {
	b.t.Helper()
	req := b.newRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return b.do(req)
}

// An email that another account has, in any case, is refused with 409 and
// plain words wherever an admin gives an account an email: the JSON API
// and the console's forms, creating and changing alike. Nothing changes.
func TestAdminUsers_EmailOfAnotherAccountIsConflict(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	ctx := t.Context()
	err := p.store.UpdateAccount(ctx, "admin", func(a *store.Account) error {
		a.Email = "admin@example.com"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	admin := p.browser(p.AdminCert)
	admin.login("admin", adminPassword)

	for _, tc := range []struct {
		name string
		send func() response
		json bool
	}{
		{"API create", func() response {
			return admin.sendJSON("POST", "/api/admin/users", `{"name":"dupe","email":"ADMIN@example.com","roles":["employee"]}`)
		}, true},
		{"API change", func() response {
			return admin.sendJSON("PATCH", "/api/admin/users/bob", `{"email":"Admin@Example.COM"}`)
		}, true},
		{"form create", func() response {
			return admin.post("/admin/users", url.Values{"name": {"dupe"}, "email": {"ADMIN@example.com"}, "roles": {"employee"}})
		}, false},
		{"form change", func() response {
			return admin.post("/admin/users/bob", url.Values{"email": {"admin@EXAMPLE.com"}, "roles": {"employee"}})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.send()
			wantStatus(t, tc.name, r, http.StatusConflict)
			msg := r.Alert()
			if tc.json {
				var e struct{ Error, Code string }
				if err := json.Unmarshal([]byte(r.Body), &e); err != nil {
					t.Fatalf("decode %s: %v", r.Body, err)
				}
				if e.Code != "email_taken" {
					t.Errorf("code = %q, want email_taken", e.Code)
				}
				msg = e.Error
			}
			if !strings.Contains(msg, "another account already uses that email") {
				t.Errorf("message = %q, want it to say another account already uses that email", msg)
			}
			if _, err := p.store.Account(ctx, "dupe"); err == nil {
				t.Error("the refused create made the account")
			}
			if bob, err := p.store.Account(ctx, "bob"); err != nil || bob.Email != "" {
				t.Errorf("bob after the refused change: %+v, %v; want no email", bob, err)
			}
		})
	}
}
