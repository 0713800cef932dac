package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/server"
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

// pageThrough follows next from path (which has ?limit=) until the end,
// and returns every item of the list's key, in order, and the pages.
func pageThrough(t *testing.T, b *browser, path, key string) ([]map[string]any, int) {
	t.Helper()
	var all []map[string]any
	next, pages := "", 0
	for {
		u := path
		if next != "" {
			u += "&cursor=" + url.QueryEscape(next)
		}
		r := b.get(u)
		wantStatus(t, "GET "+u, r, http.StatusOK)
		var body map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		var items []map[string]any
		if err := json.Unmarshal(body[key], &items); err != nil {
			t.Fatalf("GET %s: %s: %v", u, key, err)
		}
		all, pages = append(all, items...), pages+1
		next = ""
		if raw, ok := body["next"]; ok {
			json.Unmarshal(raw, &next)
		}
		if next == "" {
			return all, pages
		}
		if pages > 100 {
			t.Fatalf("GET %s: no end after 100 pages", path)
		}
	}
}

func field(items []map[string]any, name string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i], _ = it[name].(string)
	}
	return out
}

// Every admin list takes limit and cursor and answers next while there
// is more: users, sessions, certificates and the audit trail, each item
// once, in order. A session cursor never shows a session ID.
func TestAdminLists_PageWithLimitAndCursor(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	ctx := t.Context()
	now := p.clock.Now()
	var ids []string
	for i, name := range []string{"dora", "bob", "erin", "carl"} {
		if err := p.store.CreateAccount(ctx, store.Account{Name: name, Roles: []string{"employee"}, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for j := range 2 {
			id := fmt.Sprintf("%s-session-%d", name, j)
			ids = append(ids, id)
			sess := store.Session{ID: id, User: name, Factors: []string{"password"}, CreatedAt: now.Add(time.Duration(j) * time.Second), LastSeen: now, ExpiresAt: now.Add(time.Hour)}
			if err := p.store.PutSession(ctx, sess, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		c := store.Certificate{Serial: fmt.Sprintf("%02x", 10+i), Fingerprint: fmt.Sprintf("sha256:%064x", i), User: name, Subject: "CN=" + name, IssuedAt: now.Add(time.Duration(i) * time.Minute), NotAfter: now.Add(time.Hour)}
		if err := p.store.PutCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	admin := p.browser(p.AdminCert)
	admin.login("admin", adminPassword)

	users, pages := pageThrough(t, admin, "/api/admin/users?limit=2", "users")
	if got := field(users, "name"); !slices.Equal(got, []string{"admin", "bob", "carl", "dora", "erin"}) || pages != 3 {
		t.Errorf("users by 2 = %q in %d pages, want every account once by name in 3", got, pages)
	}
	matches, _ := pageThrough(t, admin, "/api/admin/users?limit=1&q=r", "users")
	if got := field(matches, "name"); !slices.Equal(got, []string{"carl", "dora", "erin"}) {
		t.Errorf("users matching r by 1 = %q", got)
	}
	sessions, _ := pageThrough(t, admin, "/api/admin/sessions?limit=3", "sessions")
	if got := field(sessions, "user"); !slices.Equal(got, []string{"admin", "bob", "bob", "carl", "carl", "dora", "dora", "erin", "erin"}) {
		t.Errorf("sessions by 3 = %q, want every session once, by account", got)
	}
	mine, _ := pageThrough(t, admin, "/api/admin/sessions?limit=1&user=dora", "sessions")
	if len(mine) != 2 {
		t.Errorf("dora's sessions by 1 = %d, want 2", len(mine))
	}
	certs, _ := pageThrough(t, admin, "/api/admin/certificates?limit=3", "certificates")
	if got := field(certs, "user"); !slices.Equal(got, []string{"dora", "bob", "erin", "carl"}) {
		t.Errorf("certificates by 3 = %q, want oldest first", got)
	}
	events, _ := pageThrough(t, admin, "/api/admin/audit?limit=1", "events")
	if len(events) == 0 || events[0]["action"] != "login" {
		t.Errorf("audit by 1 = %v", events)
	}

	// A session cursor is sealed: no session ID in it.
	r := admin.get("/api/admin/sessions?limit=1")
	var first struct{ Next string }
	json.Unmarshal([]byte(r.Body), &first)
	for _, id := range append(ids, admin.sessionID()) {
		if first.Next == "" || strings.Contains(first.Next, id) {
			t.Fatalf("the next cursor of sessions %q shows a session ID", first.Next)
		}
	}

	for _, path := range []string{"/api/admin/users", "/api/admin/sessions", "/api/admin/certificates", "/api/admin/audit"} {
		for q, code := range map[string]string{"limit=0": "bad_limit", "limit=1001": "bad_limit", "limit=x": "bad_limit", "cursor=nonsense": "bad_cursor"} {
			r := admin.get(path + "?" + q)
			wantStatus(t, path+"?"+q, r, http.StatusBadRequest)
			if !strings.Contains(r.Body, `"code":"`+code+`"`) {
				t.Errorf("GET %s?%s = %s, want code %s", path, q, r.Body, code)
			}
		}
	}

	// The pages: a next link while there is more, following it works.
	for _, path := range []string{"/admin?limit=2", "/admin/sessions?limit=4", "/admin/certificates?limit=2", "/admin/audit?limit=1"} {
		r := admin.get(path)
		wantStatus(t, "GET "+path, r, http.StatusOK)
		m := nextLinkRE.FindStringSubmatch(r.Body)
		if m == nil {
			t.Errorf("GET %s has no next page link", path)
			continue
		}
		wantStatus(t, "the next page of "+path, admin.get(html.UnescapeString(m[1])), http.StatusOK)
	}
}

var nextLinkRE = regexp.MustCompile(`<a href="([^"]+)"(?: rel="next")?>(?:Next page|Older events)`)

// Deleting an account revokes every certificate the portal issued to it,
// before the account goes: they bind by common name, so when the name is
// given to a new account (a new hire "jsmith" after the old one left),
// the departed person's certificate would count as the new account's
// certificate factor. Each revocation is in the audit trail; one revoked
// earlier keeps its time and reason.
func TestAdminUsers_DeletingAnAccountRevokesItsCertificates(t *testing.T) {
	t.Parallel()
	// Revocations count at sign-in, as gatehouse serve wires them.
	p := newPortalWith(t, func(cfg *server.Config) { cfg.Verifier.Revoked = cfg.Store.IsRevoked })
	ctx := t.Context()
	const oldPW, newPW = "a long passphrase for the old jsmith, 2026", "a different passphrase for the new jsmith, 2026"
	p.addAccount("jsmith", oldPW, "helpdesk", "employee")
	var issued []*ca.Issued
	for range 3 {
		is, err := p.ca.IssueClient(ca.ClientRequest{Name: "jsmith"}, p.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := p.store.PutCertificate(ctx, store.CertificateOf(is.Cert, "jsmith", p.clock.Now())); err != nil {
			t.Fatal(err)
		}
		issued = append(issued, is)
	}
	lost := auth.SerialText(issued[2].Cert)
	lostAt := p.clock.Now()
	if _, err := p.store.RevokeCertificate(ctx, lost, lostAt, "laptop lost"); err != nil {
		t.Fatal(err)
	}
	p.clock.Advance(time.Hour)

	admin := p.browser(p.AdminCert)
	admin.login("admin", adminPassword)
	wantStatus(t, "delete jsmith", admin.sendJSON("DELETE", "/api/admin/users/jsmith", ""), http.StatusNoContent)

	certs, err := p.store.Certificates(ctx, "jsmith")
	if err != nil || len(certs) != len(issued) {
		t.Fatalf("jsmith's certificates after the delete: %d, %v; want %d records kept", len(certs), err, len(issued))
	}
	for _, c := range certs {
		switch {
		case c.Serial == lost && (!c.RevokedAt.Equal(lostAt) || c.RevokeReason != "laptop lost"):
			t.Errorf("certificate revoked earlier: revoked %v %q, want its own time and reason kept", c.RevokedAt, c.RevokeReason)
		case c.Serial != lost && (c.RevokedAt.IsZero() || c.RevokeReason != "account deleted"):
			t.Errorf("certificate %s: revoked %v %q, want revoked because the account was deleted", c.Serial, c.RevokedAt, c.RevokeReason)
		}
	}
	page, err := p.store.Audit(ctx, store.AuditQuery{Action: "admin.certificate.revoke", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var audited []string
	for _, e := range page.Items {
		if e.Actor == "admin" && e.Target == "jsmith" && strings.HasPrefix(e.Reason, "account deleted; ") && strings.Contains(e.Reason, "serial ") {
			audited = append(audited, e.CertFingerprint)
		}
	}
	slices.Sort(audited)
	want := []string{auth.Fingerprint(issued[0].Cert.Raw), auth.Fingerprint(issued[1].Cert.Raw)}
	slices.Sort(want)
	if !slices.Equal(audited, want) {
		t.Errorf("revocations audited: %q, want %q", audited, want)
	}

	p.addAccount("jsmith", newPW, "helpdesk", "employee")
	for i, is := range issued {
		b := p.browser(tlsCertificate(is))
		b.login("jsmith", newPW)
		v := b.sessionView(t)
		if slices.Contains(v.Factors, auth.FactorCertificate) || slices.Contains(v.EffectiveRoles, "helpdesk") {
			t.Errorf("the deleted account's certificate %d counts for the new account of that name: factors %q, roles %q", i, v.Factors, v.EffectiveRoles)
		}
	}
}

// failingRevocations is a store whose certificate revocations fail.
type failingRevocations struct{ store.Store }

func (failingRevocations) RevokeCertificate(context.Context, string, time.Time, string) (store.Certificate, error) {
	return store.Certificate{}, fmt.Errorf("revoke: %w", store.ErrUnavailable)
}

// An account whose certificates cannot be revoked is not deleted: 503
// in plain words, and the account is still there to delete again.
func TestAdminUsers_DeleteRefusedWhenItsCertificatesCannotBeRevoked(t *testing.T) {
	t.Parallel()
	p := newPortalWith(t, func(cfg *server.Config) { cfg.Store = failingRevocations{cfg.Store} })
	ctx := t.Context()
	p.addAccount("jsmith", "a long passphrase for jsmith, 2026", "employee")
	is, err := p.ca.IssueClient(ca.ClientRequest{Name: "jsmith"}, p.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.store.PutCertificate(ctx, store.CertificateOf(is.Cert, "jsmith", p.clock.Now())); err != nil {
		t.Fatal(err)
	}
	admin := p.browser(p.AdminCert)
	admin.login("admin", adminPassword)
	r := admin.sendJSON("DELETE", "/api/admin/users/jsmith", "")
	wantStatus(t, "delete jsmith", r, http.StatusServiceUnavailable)
	var e struct{ Error, Code string }
	if err := json.Unmarshal([]byte(r.Body), &e); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	if e.Code != "certificates_not_revoked" || !strings.Contains(e.Error, "the account was not deleted") {
		t.Errorf("answer %s, want code certificates_not_revoked and words saying the account was not deleted", r.Body)
	}
	if _, err := p.store.Account(ctx, "jsmith"); err != nil {
		t.Errorf("jsmith after the refused delete: %v, want the account still there", err)
	}
	page, err := p.store.Audit(ctx, store.AuditQuery{Action: "admin.user.delete", Limit: 1})
	if err != nil || len(page.Items) != 0 {
		t.Errorf("audit of the refused delete: %+v, %v; want no admin.user.delete event", page.Items, err)
	}
}
