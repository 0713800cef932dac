package tests

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// End-to-end tests of the admin JSON API (/api/admin/…): the real binary,
// real TLS with the admin's certificate, real Redis.

// passphrase is a password that meets the portal's rules (15 characters
// or more, not common, not mostly the username), different per account.
func passphrase(name string) string {
	return "a long passphrase for " + name + ", 2026"
}

// newJSONRequest makes a request to path with body encoded as JSON, or
// no body when body is nil. It carries no Origin or Sec-Fetch-Site
// header, as a script's request would not.
func (c *client) newJSONRequest(t *testing.T, method, path string, body any) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, c.p.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return req
}

// jsonRequest sends METHOD path with body as JSON (none when nil) and
// the client's cookies.
func (c *client) jsonRequest(t *testing.T, method, path string, body any) response {
	t.Helper()
	return send(t, c.jar, c.newJSONRequest(t, method, path, body))
}

// wantAPIError checks a JSON error: the status, the machine code, and
// that the plain-words message contains each of words.
func wantAPIError(t *testing.T, r response, status int, code string, words ...string) apiError {
	t.Helper()
	wantStatus(t, r, status)
	var e apiError
	decodeJSON(t, r, &e)
	if e.Code != code {
		t.Errorf("code = %q, want %q (message %q)", e.Code, code, e.Error)
	}
	if e.Error == "" {
		t.Errorf("error message is empty, want plain words (code %q)", e.Code)
	}
	for _, w := range words {
		if !strings.Contains(e.Error, w) {
			t.Errorf("error message %q does not contain %q", e.Error, w)
		}
	}
	return e
}

// addUser makes an account with the CLI, with password and roles.
func (p *portal) addUser(t *testing.T, name, password string, roles ...string) {
	t.Helper()
	args := []string{"user", "add", name, "--password-stdin"}
	for _, r := range roles {
		args = append(args, "--role", r)
	}
	p.cli(t, password+"\n", args...)
}

// issueCert issues a client certificate for name with the CLI and
// returns it with its fingerprint and serial (hex), both computed here
// from the files the CLI wrote.
func (p *portal) issueCert(t *testing.T, name string) (cert tls.Certificate, fp, serial string) {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), name)
	p.cli(t, "", "cert", "issue", name, "--out", prefix)
	cert = loadCert(t, prefix)
	return cert, fingerprintOfFile(t, prefix+".crt"), leafOf(t, cert).SerialNumber.Text(16)
}

// signIn returns a new client presenting cert (none when nil) that has
// signed in as name and was sent home.
func (p *portal) signIn(t *testing.T, cert *tls.Certificate, name, password string) *client {
	t.Helper()
	c := p.client(t, cert)
	wantRedirect(t, c.login(t, name, password), "/")
	return c
}

// adminSignIn returns a client of the first admin signed in with the
// password and the admin's certificate: effective role admin.
func (p *portal) adminSignIn(t *testing.T) *client {
	t.Helper()
	cert := p.adminCert(t)
	c := p.signIn(t, &cert, "admin", p.AdminPassword)
	if s := c.session(t); !slices.Contains(s.EffectiveRoles, "admin") {
		t.Fatalf("admin with certificate: effective_roles %q lack admin", s.EffectiveRoles)
	}
	return c
}

// apiUser is an account as the admin and help-desk APIs show it.
type apiUser struct {
	Name               string   `json:"name"`
	Subject            string   `json:"subject"`
	Email              string   `json:"email"`
	Roles              []string `json:"roles"`
	Disabled           bool     `json:"disabled"`
	MustChangePassword bool     `json:"must_change_password"`
	TOTPEnrolled       bool     `json:"totp_enrolled"`
	RecoveryCodesLeft  int      `json:"recovery_codes_left"`
	PasswordFailures   int      `json:"password_failures"`
	TOTPFailures       int      `json:"totp_failures"`
	Locked             bool     `json:"locked"`
}

// apiLiveSession is one entry of GET /api/admin/sessions.
type apiLiveSession struct {
	Handle          string    `json:"handle"`
	User            string    `json:"user"`
	Factors         []string  `json:"factors"`
	CertFingerprint string    `json:"cert_fingerprint"`
	ClientAddr      string    `json:"client_addr"`
	CreatedAt       time.Time `json:"created_at"`
	LastSeen        time.Time `json:"last_seen"`
	ExpiresAt       time.Time `json:"expires_at"`
}

// apiIssuedCert is one certificate of GET /api/admin/certificates.
type apiIssuedCert struct {
	Serial       string     `json:"serial"`
	Fingerprint  string     `json:"fingerprint"`
	User         string     `json:"user"`
	Status       string     `json:"status"`
	RevokedAt    *time.Time `json:"revoked_at"`
	RevokeReason string     `json:"revoke_reason"`
}

// apiRole is a role in the admin API.
type apiRole struct {
	Name               string `json:"name"`
	Description        string `json:"description"`
	RequireCertificate bool   `json:"require_certificate"`
	RequireTOTP        bool   `json:"require_totp"`
}

// apiAuditEvent is an audit event as GET /api/admin/audit shows it.
type apiAuditEvent struct {
	auditEvent
	ClientAddr string `json:"client_addr"`
}

// auditPage is the body of GET /api/admin/audit.
type auditPage struct {
	Events []apiAuditEvent `json:"events"`
	Next   string          `json:"next"`
}

// users gets path, a user search of the admin or help-desk API, and
// wants 200.
func (c *client) users(t *testing.T, path string) []apiUser {
	t.Helper()
	r := c.get(t, path)
	wantStatus(t, r, http.StatusOK)
	var out struct {
		Users []apiUser `json:"users"`
	}
	decodeJSON(t, r, &out)
	if out.Users == nil {
		t.Errorf("GET %s: users is %s, want a list", path, r.Body)
	}
	return out.Users
}

func userNames(users []apiUser) []string {
	names := []string{}
	for _, u := range users {
		names = append(names, u.Name)
	}
	return names
}

// user gets GET /api/admin/users/{name} and wants 200.
func (c *client) user(t *testing.T, name string) apiUser {
	t.Helper()
	r := c.get(t, "/api/admin/users/"+name)
	wantStatus(t, r, http.StatusOK)
	var out struct {
		User apiUser `json:"user"`
	}
	decodeJSON(t, r, &out)
	return out.User
}

// sessionsOf gets GET /api/admin/sessions?user=name and wants 200. It
// returns the raw body too, to search for what must not be in it.
func (c *client) sessionsOf(t *testing.T, name string) ([]apiLiveSession, string) {
	t.Helper()
	path := "/api/admin/sessions"
	if name != "" {
		path += "?user=" + url.QueryEscape(name)
	}
	r := c.get(t, path)
	wantStatus(t, r, http.StatusOK)
	var out struct {
		Sessions []apiLiveSession `json:"sessions"`
	}
	decodeJSON(t, r, &out)
	return out.Sessions, r.Body
}

// certificatesOf gets GET /api/admin/certificates?user=name.
func (c *client) certificatesOf(t *testing.T, name string) []apiIssuedCert {
	t.Helper()
	r := c.get(t, "/api/admin/certificates?user="+url.QueryEscape(name))
	wantStatus(t, r, http.StatusOK)
	var out struct {
		Certificates []apiIssuedCert `json:"certificates"`
	}
	decodeJSON(t, r, &out)
	return out.Certificates
}

// auditQuery gets one page of GET /api/admin/audit?QUERY and wants 200.
func (c *client) auditQuery(t *testing.T, q url.Values) (auditPage, string) {
	t.Helper()
	r := c.get(t, "/api/admin/audit?"+q.Encode())
	wantStatus(t, r, http.StatusOK)
	var page auditPage
	decodeJSON(t, r, &page)
	if page.Events == nil {
		t.Fatalf("GET /api/admin/audit?%s: events is not a list: %s", q.Encode(), r.Body)
	}
	return page, r.Body
}

// sessionIDOf is the session ID inside a client's signed cookie.
func sessionIDOf(t *testing.T, p *portal, c *client) string {
	t.Helper()
	var id string
	if err := cookieCodec(t, p).Decode(sessionCookie, c.cookieValue(t), &id); err != nil || id == "" {
		t.Fatalf("decode the session cookie: %v", err)
	}
	return id
}

func TestAdminAPI_UserLifecycle(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)

	// Create with a password: it works at once, no change required.
	danaPassword := passphrase("dana")
	r := admin.jsonRequest(t, "POST", "/api/admin/users", map[string]any{
		"name": "dana", "email": "dana@example.com", "roles": []string{"employee"}, "password": danaPassword})
	wantStatus(t, r, http.StatusCreated)
	var created struct {
		User              apiUser `json:"user"`
		TemporaryPassword *string `json:"temporary_password"`
	}
	decodeJSON(t, r, &created)
	if !strings.HasPrefix(created.User.Subject, "A") {
		t.Errorf("created user's subject %q, want its account ID", created.User.Subject)
	}
	danaSubject := created.User.Subject
	want := apiUser{Name: "dana", Subject: danaSubject, Email: "dana@example.com", Roles: []string{"employee"}}
	if diff := cmp.Diff(want, created.User); diff != "" {
		t.Errorf("created user (-want +got):\n%s", diff)
	}
	if created.TemporaryPassword != nil {
		t.Errorf("temporary_password %q given although the request set a password", *created.TemporaryPassword)
	}
	for _, secret := range []string{danaPassword, "$2a$", "$2b$", "password_hash"} {
		if strings.Contains(r.Body, secret) {
			t.Errorf("the create answer contains %q:\n%s", secret, r.Body)
		}
	}
	dana := p.signIn(t, nil, "dana", danaPassword)
	wantEffective(t, "dana", dana.session(t), "employee")

	t.Run("refused creations", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			body   map[string]any
			status int
			code   string
			words  []string
		}{
			{"same name", map[string]any{"name": "dana", "roles": []string{"employee"}}, http.StatusConflict, "exists", []string{"dana"}},
			{"unknown role", map[string]any{"name": "olga", "roles": []string{"wizards"}}, http.StatusBadRequest, "no_such_role", []string{"wizards"}},
			{"no role", map[string]any{"name": "olga", "roles": []string{}}, http.StatusBadRequest, "no_roles", nil},
			{"bad name", map[string]any{"name": "Olga Smith", "roles": []string{"employee"}}, http.StatusBadRequest, "bad_name", nil},
			{"bad email", map[string]any{"name": "olga", "email": "olga at example", "roles": []string{"employee"}}, http.StatusBadRequest, "bad_email", nil},
			{"short password", map[string]any{"name": "olga", "roles": []string{"employee"}, "password": "too short 2026"}, http.StatusBadRequest, "weak_password", []string{"15 characters"}},
			{"common password", map[string]any{"name": "olga", "roles": []string{"employee"}, "password": "thisismypassword"}, http.StatusBadRequest, "weak_password", []string{"common"}},
			{"unknown field", map[string]any{"name": "olga", "roles": []string{"employee"}, "admin": true}, http.StatusBadRequest, "bad_json", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantAPIError(t, admin.jsonRequest(t, "POST", "/api/admin/users", tc.body), tc.status, tc.code, tc.words...)
			})
		}
		wantAPIError(t, admin.get(t, "/api/admin/users/olga"), http.StatusNotFound, "no_such_user", "olga")
	})

	t.Run("temporary password", func(t *testing.T) {
		r := admin.jsonRequest(t, "POST", "/api/admin/users", map[string]any{"name": "erin", "roles": []string{"employee"}})
		wantStatus(t, r, http.StatusCreated)
		var created struct {
			User              apiUser `json:"user"`
			TemporaryPassword string  `json:"temporary_password"`
		}
		decodeJSON(t, r, &created)
		temp := created.TemporaryPassword
		if len([]rune(temp)) < 15 {
			t.Fatalf("temporary_password %q is shorter than 15 characters", temp)
		}
		if !created.User.MustChangePassword {
			t.Errorf("a user made with a temporary password: must_change_password = false")
		}

		erin := p.client(t, nil)
		wantRedirect(t, erin.login(t, "erin", temp), "/account/password")
		// Nothing but the password change until it is done.
		for _, path := range []string{"/api/session", "/api/helpdesk/users", "/api/admin/users"} {
			wantAPIError(t, erin.get(t, path), http.StatusUnauthorized, "incomplete", "password")
		}
		wantAPIError(t, erin.jsonRequest(t, "POST", "/api/account/totp", nil), http.StatusUnauthorized, "incomplete")
		wantRedirect(t, erin.get(t, "/"), "/account/password")

		erinPassword := passphrase("erin")
		r = erin.jsonRequest(t, "POST", "/api/account/password", map[string]string{"current": temp, "new": erinPassword, "confirm": erinPassword})
		wantStatus(t, r, http.StatusNoContent)
		s := erin.session(t)
		if s.User != "erin" {
			t.Errorf("after the change: user %q, want erin", s.User)
		}
		wantEffective(t, "erin after the change", s, "employee")
		if got := admin.user(t, "erin"); got.MustChangePassword {
			t.Errorf("after the change: must_change_password still true")
		}
		r = p.client(t, nil).login(t, "erin", temp)
		wantStatus(t, r, http.StatusUnauthorized)
		p.signIn(t, nil, "erin", erinPassword)
	})

	t.Run("search", func(t *testing.T) {
		for _, tc := range []struct {
			q    string
			want []string
		}{
			{"", []string{"admin", "dana", "erin"}},
			{"dana", []string{"dana"}},
			{"dana@EXAMPLE", []string{"dana"}},
			{"nobody", []string{}},
		} {
			if diff := cmp.Diff(tc.want, userNames(admin.users(t, "/api/admin/users?q="+url.QueryEscape(tc.q)))); diff != "" {
				t.Errorf("q=%q (-want +got):\n%s", tc.q, diff)
			}
		}
	})

	t.Run("patch", func(t *testing.T) {
		r := admin.jsonRequest(t, "PUT", "/api/admin/roles/auditors", map[string]any{"description": "read the books"})
		wantStatus(t, r, http.StatusCreated)

		r = admin.jsonRequest(t, "PATCH", "/api/admin/users/dana", map[string]any{"email": "dana.smith@example.com"})
		wantStatus(t, r, http.StatusOK)
		r = admin.jsonRequest(t, "PATCH", "/api/admin/users/dana", map[string]any{"roles": []string{"employee", "auditors", "employee"}})
		wantStatus(t, r, http.StatusOK)
		var out struct {
			User apiUser `json:"user"`
		}
		decodeJSON(t, r, &out)
		want := apiUser{Name: "dana", Subject: danaSubject, Email: "dana.smith@example.com", Roles: []string{"auditors", "employee"}}
		if diff := cmp.Diff(want, out.User); diff != "" {
			t.Errorf("PATCH answer (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, admin.user(t, "dana")); diff != "" {
			t.Errorf("GET after PATCH (-want +got):\n%s", diff)
		}
		dana := p.signIn(t, nil, "dana", danaPassword)
		wantEffective(t, "dana with auditors", dana.session(t), "auditors", "employee")

		for _, tc := range []struct {
			name, user string
			body       map[string]any
			status     int
			code       string
		}{
			{"unknown role", "dana", map[string]any{"roles": []string{"wizards"}}, http.StatusBadRequest, "no_such_role"},
			{"no roles", "dana", map[string]any{"roles": []string{}}, http.StatusBadRequest, "no_roles"},
			{"bad email", "dana", map[string]any{"email": "not an address"}, http.StatusBadRequest, "bad_email"},
			{"unknown field", "dana", map[string]any{"password": danaPassword}, http.StatusBadRequest, "bad_json"},
			{"unknown user", "nobody", map[string]any{"email": "n@example.com"}, http.StatusNotFound, "no_such_user"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantAPIError(t, admin.jsonRequest(t, "PATCH", "/api/admin/users/"+tc.user, tc.body), tc.status, tc.code)
			})
		}
		if diff := cmp.Diff(want, admin.user(t, "dana")); diff != "" {
			t.Errorf("refused PATCHes changed dana (-want +got):\n%s", diff)
		}
		// Refused changes are no changes: her session lives on.
		dana.session(t)
	})

	t.Run("disable and enable", func(t *testing.T) {
		dana := p.signIn(t, nil, "dana", danaPassword)
		r := admin.jsonRequest(t, "PATCH", "/api/admin/users/dana", map[string]any{"disabled": true})
		wantStatus(t, r, http.StatusOK)
		if !admin.user(t, "dana").Disabled {
			t.Errorf("after PATCH disabled=true: disabled = false")
		}
		wantUnauthenticated(t, dana.get(t, "/api/session"))
		r = p.client(t, nil).login(t, "dana", danaPassword)
		wantStatus(t, r, http.StatusUnauthorized)
		if !strings.Contains(r.Body, "invalid username or password") {
			t.Errorf("a disabled account's login does not answer like a wrong password:\n%s", r.Body)
		}

		r = admin.jsonRequest(t, "PATCH", "/api/admin/users/dana", map[string]any{"disabled": false})
		wantStatus(t, r, http.StatusOK)
		p.signIn(t, nil, "dana", danaPassword)
	})

	t.Run("delete", func(t *testing.T) {
		dana := p.signIn(t, nil, "dana", danaPassword)
		r := admin.jsonRequest(t, "DELETE", "/api/admin/users/dana", nil)
		wantStatus(t, r, http.StatusNoContent)
		wantUnauthenticated(t, dana.get(t, "/api/session"))
		wantAPIError(t, admin.get(t, "/api/admin/users/dana"), http.StatusNotFound, "no_such_user", "dana")
		wantAPIError(t, admin.jsonRequest(t, "DELETE", "/api/admin/users/dana", nil), http.StatusNotFound, "no_such_user")
		wantStatus(t, p.client(t, nil).login(t, "dana", danaPassword), http.StatusUnauthorized)
		if names := userNames(admin.users(t, "/api/admin/users?q=dana")); len(names) != 0 {
			t.Errorf("search after delete: %q, want none", names)
		}
	})
}

func TestAdminAPI_Roles(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)

	r := admin.get(t, "/api/admin/roles")
	wantStatus(t, r, http.StatusOK)
	var list struct {
		Roles []apiRole `json:"roles"`
	}
	decodeJSON(t, r, &list)
	builtin := map[string]bool{}
	for _, role := range list.Roles {
		builtin[role.Name] = role.RequireCertificate
	}
	if diff := cmp.Diff(map[string]bool{"admin": true, "helpdesk": true, "employee": false}, builtin); diff != "" {
		t.Errorf("built-in roles and require_certificate (-want +got):\n%s", diff)
	}

	// Create: 201, then readable.
	auditors := apiRole{Name: "auditors", Description: "read the books", RequireCertificate: true}
	r = admin.jsonRequest(t, "PUT", "/api/admin/roles/auditors", map[string]any{"description": "read the books", "require_certificate": true})
	wantStatus(t, r, http.StatusCreated)
	var got apiRole
	decodeJSON(t, r, &got)
	if diff := cmp.Diff(auditors, got); diff != "" {
		t.Errorf("PUT answer (-want +got):\n%s", diff)
	}
	r = admin.get(t, "/api/admin/roles/auditors")
	wantStatus(t, r, http.StatusOK)
	got = apiRole{}
	decodeJSON(t, r, &got)
	if diff := cmp.Diff(auditors, got); diff != "" {
		t.Errorf("GET after PUT (-want +got):\n%s", diff)
	}

	// A live session follows the role's requirements on its next request.
	p.addUser(t, "gus", passphrase("gus"), "employee", "auditors")
	gus := p.signIn(t, nil, "gus", passphrase("gus"))
	s := gus.session(t)
	wantEffective(t, "gus while auditors needs a certificate", s, "employee")
	wantNotice(t, s, "auditors access needs your certificate")

	// Change: 200, not 201.
	r = admin.jsonRequest(t, "PUT", "/api/admin/roles/auditors", map[string]any{"description": "read the books"})
	wantStatus(t, r, http.StatusOK)
	wantEffective(t, "gus once auditors needs nothing", gus.session(t), "auditors", "employee")
	r = admin.jsonRequest(t, "PUT", "/api/admin/roles/auditors", map[string]any{"description": "read the books", "require_totp": true})
	wantStatus(t, r, http.StatusOK)
	r = admin.get(t, "/api/admin/roles/auditors")
	got = apiRole{}
	decodeJSON(t, r, &got)
	if diff := cmp.Diff(apiRole{Name: "auditors", Description: "read the books", RequireTOTP: true}, got); diff != "" {
		t.Errorf("GET after the change (-want +got):\n%s", diff)
	}
	wantEffective(t, "gus once auditors needs TOTP", gus.session(t), "employee")

	for _, tc := range []struct {
		name, path string
		body       map[string]any
		status     int
		code       string
	}{
		{"name differs from the URL", "/api/admin/roles/auditors", map[string]any{"name": "admin"}, http.StatusBadRequest, "name_mismatch"},
		{"bad name", "/api/admin/roles/Big%20Bosses", map[string]any{}, http.StatusBadRequest, "bad_name"},
		{"unknown field", "/api/admin/roles/auditors", map[string]any{"require_password": true}, http.StatusBadRequest, "bad_json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantAPIError(t, admin.jsonRequest(t, "PUT", tc.path, tc.body), tc.status, tc.code)
		})
	}

	// Delete: the role leaves every account.
	wantStatus(t, admin.jsonRequest(t, "DELETE", "/api/admin/roles/auditors", nil), http.StatusNoContent)
	wantAPIError(t, admin.get(t, "/api/admin/roles/auditors"), http.StatusNotFound, "no_such_role", "auditors")
	wantAPIError(t, admin.jsonRequest(t, "DELETE", "/api/admin/roles/auditors", nil), http.StatusNotFound, "no_such_role")
	if diff := cmp.Diff([]string{"employee"}, admin.user(t, "gus").Roles); diff != "" {
		t.Errorf("gus's roles after auditors was deleted (-want +got):\n%s", diff)
	}
	wantEffective(t, "gus after auditors was deleted", gus.session(t), "employee")

	// The admin role stays, whatever the admin asks.
	wantAPIError(t, admin.jsonRequest(t, "DELETE", "/api/admin/roles/admin", nil), http.StatusConflict, "builtin_role", "admin role cannot be deleted")
	wantStatus(t, admin.get(t, "/api/admin/roles/admin"), http.StatusOK)
	wantEffective(t, "admin after trying to delete the admin role", admin.session(t), "admin", "employee")
}

func TestAdminAPI_CertificatesListAndRevoke(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	wantStatus(t, admin.jsonRequest(t, "PUT", "/api/admin/roles/auditors", map[string]any{"require_certificate": true}), http.StatusCreated)
	p.addUser(t, "erin", passphrase("erin"), "employee", "auditors")

	laptopCert, laptopFP, laptopSerial := p.issueCert(t, "erin")
	tabletCert, tabletFP, _ := p.issueCert(t, "erin")
	laptop := p.signIn(t, &laptopCert, "erin", passphrase("erin"))
	tablet := p.signIn(t, &tabletCert, "erin", passphrase("erin"))
	wantEffective(t, "erin on her laptop", laptop.session(t), "auditors", "employee")
	wantEffective(t, "erin on her tablet", tablet.session(t), "auditors", "employee")

	certs := admin.certificatesOf(t, "erin")
	byFP := map[string]apiIssuedCert{}
	for _, c := range certs {
		byFP[c.Fingerprint] = c
		if c.User != "erin" {
			t.Errorf("GET /api/admin/certificates?user=erin lists a certificate of %q", c.User)
		}
	}
	if len(certs) != 2 || byFP[laptopFP].Status != "valid" || byFP[tabletFP].Status != "valid" {
		t.Fatalf("erin's certificates = %+v, want the laptop's (%s) and the tablet's (%s), both valid", certs, laptopFP, tabletFP)
	}
	if byFP[laptopFP].Serial != laptopSerial {
		t.Errorf("laptop certificate serial = %q, want %q (from the file)", byFP[laptopFP].Serial, laptopSerial)
	}
	if all := admin.certificatesOf(t, ""); len(all) != 3 {
		t.Errorf("all certificates: %d, want 3 (the admin's and erin's two)", len(all))
	}

	wantAPIError(t, admin.jsonRequest(t, "POST", "/api/admin/certificates/"+laptopSerial+"/revoke", map[string]string{}),
		http.StatusBadRequest, "reason_required")
	wantAPIError(t, admin.jsonRequest(t, "POST", "/api/admin/certificates/abcdef1234/revoke", map[string]string{"reason": "INC-1"}),
		http.StatusNotFound, "no_such_certificate")
	wantEffective(t, "erin's laptop after refused revocations", laptop.session(t), "auditors", "employee")

	// Revoke the laptop's by serial: that session loses auditors on its
	// next request; the tablet keeps it.
	r := admin.jsonRequest(t, "POST", "/api/admin/certificates/"+laptopSerial+"/revoke", map[string]string{"reason": "laptop stolen, INC-4711"})
	wantStatus(t, r, http.StatusOK)
	var revoked apiIssuedCert
	decodeJSON(t, r, &revoked)
	if revoked.Fingerprint != laptopFP || revoked.Status != "revoked" || revoked.RevokedAt == nil || revoked.RevokeReason != "laptop stolen, INC-4711" {
		t.Errorf("revoke answer = %+v, want the laptop's certificate, revoked, with the reason", revoked)
	}
	s := laptop.session(t)
	wantEffective(t, "erin's laptop after its certificate was revoked", s, "employee")
	if s.Certificate != nil {
		t.Errorf("certificate after revocation = %+v, want null", s.Certificate)
	}
	wantNotice(t, s, noticeRevoked)
	wantEffective(t, "erin's tablet after the laptop's revocation", tablet.session(t), "auditors", "employee")

	// Revoke the tablet's by fingerprint.
	wantStatus(t, admin.jsonRequest(t, "POST", "/api/admin/certificates/"+tabletFP+"/revoke", map[string]string{"reason": "INC-4712"}), http.StatusOK)
	wantEffective(t, "erin's tablet after its certificate was revoked", tablet.session(t), "employee")
	// A new sign-in with a revoked certificate does not get the role either.
	wantEffective(t, "a new sign-in with the revoked certificate", p.signIn(t, &laptopCert, "erin", passphrase("erin")).session(t), "employee")

	for _, c := range admin.certificatesOf(t, "erin") {
		if c.Status != "revoked" {
			t.Errorf("certificate %s: status %q after revocation, want revoked", c.Fingerprint, c.Status)
		}
	}
	page, _ := admin.auditQuery(t, url.Values{"action": {"admin.certificate.revoke"}})
	if len(page.Events) != 2 {
		t.Fatalf("%d admin.certificate.revoke events, want 2: %+v", len(page.Events), page.Events)
	}
	if e := page.Events[1]; e.CertFingerprint != laptopFP || e.Target != "erin" || !strings.HasPrefix(e.Reason, "laptop stolen, INC-4711; ") || !strings.Contains(e.Reason, "serial ") || e.Actor != "admin" {
		t.Errorf("laptop revocation event = %+v", e)
	}
}

func TestAdminAPI_SessionsListAndRevoke(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	p.addUser(t, "erin", passphrase("erin"), "employee")
	p.addUser(t, "fay", passphrase("fay"), "employee")
	erinCert, erinFP, _ := p.issueCert(t, "erin")
	laptop := p.signIn(t, &erinCert, "erin", passphrase("erin"))
	phone := p.signIn(t, nil, "erin", passphrase("erin"))
	fay := p.signIn(t, nil, "fay", passphrase("fay"))
	before := time.Now()

	list, body := admin.sessionsOf(t, "erin")
	if len(list) != 2 {
		t.Fatalf("erin's sessions: %d, want 2:\n%s", len(list), body)
	}
	var laptopSession, phoneSession apiLiveSession
	for _, s := range list {
		if s.User != "erin" || s.Handle == "" || s.ClientAddr != "127.0.0.1" {
			t.Errorf("session %+v: want user erin, a handle and client_addr 127.0.0.1", s)
		}
		if s.CreatedAt.IsZero() || s.LastSeen.Before(s.CreatedAt) || !s.ExpiresAt.After(before) {
			t.Errorf("session %+v: created_at, last_seen, expires_at are not a live session's", s)
		}
		switch {
		case slices.Equal(s.Factors, []string{"password", "certificate"}):
			laptopSession = s
		case slices.Equal(s.Factors, []string{"password"}):
			phoneSession = s
		}
	}
	if laptopSession.Handle == "" || phoneSession.Handle == "" || laptopSession.Handle == phoneSession.Handle {
		t.Fatalf("want one session with factors password+certificate and one with password only, different handles:\n%s", body)
	}
	if laptopSession.CertFingerprint != erinFP {
		t.Errorf("laptop session cert_fingerprint = %q, want %q", laptopSession.CertFingerprint, erinFP)
	}

	// No session ID or cookie value, of anyone, in any listing.
	_, all := admin.sessionsOf(t, "")
	detail := admin.get(t, "/api/admin/users/erin")
	wantStatus(t, detail, http.StatusOK)
	for who, c := range map[string]*client{"erin's laptop": laptop, "erin's phone": phone, "fay": fay, "admin": admin} {
		for what, secret := range map[string]string{"cookie value": c.cookieValue(t), "session ID": sessionIDOf(t, p, c)} {
			for where, text := range map[string]string{"?user=erin": body, "all sessions": all, "GET /api/admin/users/erin": detail.Body} {
				if strings.Contains(text, secret) {
					t.Errorf("%s holds the %s of %s", where, what, who)
				}
			}
		}
	}
	if !strings.Contains(all, `"user":"fay"`) || !strings.Contains(all, `"user":"admin"`) {
		t.Errorf("GET /api/admin/sessions does not list every user's sessions:\n%s", all)
	}

	// A handle is scoped to its user.
	wantAPIError(t, admin.jsonRequest(t, "DELETE", "/api/admin/users/fay/sessions/"+phoneSession.Handle, nil), http.StatusNotFound, "no_such_session")
	phone.session(t)

	// End one by handle: that one only.
	r := admin.jsonRequest(t, "DELETE", "/api/admin/users/erin/sessions/"+phoneSession.Handle, nil)
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(r.Body, `"ended":1`) {
		t.Errorf("DELETE one session: %s, want ended 1", r.Body)
	}
	wantUnauthenticated(t, phone.get(t, "/api/session"))
	laptop.session(t)
	fay.session(t)
	wantAPIError(t, admin.jsonRequest(t, "DELETE", "/api/admin/users/erin/sessions/"+phoneSession.Handle, nil), http.StatusNotFound, "no_such_session")
	if list, body := admin.sessionsOf(t, "erin"); len(list) != 1 || list[0].Handle != laptopSession.Handle {
		t.Errorf("erin's sessions after ending the phone's: want the laptop's only:\n%s", body)
	}

	// End all: erin's only.
	phone = p.signIn(t, nil, "erin", passphrase("erin"))
	r = admin.jsonRequest(t, "DELETE", "/api/admin/users/erin/sessions", nil)
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(r.Body, `"ended":2`) {
		t.Errorf("DELETE all sessions: %s, want ended 2", r.Body)
	}
	wantUnauthenticated(t, laptop.get(t, "/api/session"))
	wantUnauthenticated(t, phone.get(t, "/api/session"))
	fay.session(t)
	admin.session(t)
	if list, body := admin.sessionsOf(t, "erin"); len(list) != 0 {
		t.Errorf("erin's sessions after ending all: %s", body)
	}
	wantAPIError(t, admin.jsonRequest(t, "DELETE", "/api/admin/users/nobody/sessions", nil), http.StatusNotFound, "no_such_user")

	page, _ := admin.auditQuery(t, url.Values{"action": {"admin.sessions.revoke"}, "user": {"erin"}})
	if len(page.Events) != 2 {
		t.Errorf("%d admin.sessions.revoke events about erin, want 2: %+v", len(page.Events), page.Events)
	}
}

func TestAdminAPI_Boundaries(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	p.addUser(t, "ivan", passphrase("ivan"), "employee")
	ivan := p.signIn(t, nil, "ivan", passphrase("ivan"))
	p.addUser(t, "hana", passphrase("hana"), "helpdesk", "employee")
	hanaCert, _, _ := p.issueCert(t, "hana")
	hana := p.signIn(t, &hanaCert, "hana", passphrase("hana"))
	wantEffective(t, "hana with her certificate", hana.session(t), "employee", "helpdesk")
	adminPhone := p.signIn(t, nil, "admin", p.AdminPassword)
	anonymous := p.client(t, nil)

	routes := []struct{ method, path string }{
		{"GET", "/api/admin/users"},
		{"POST", "/api/admin/users"},
		{"GET", "/api/admin/users/ivan"},
		{"PATCH", "/api/admin/users/ivan"},
		{"DELETE", "/api/admin/users/ivan"},
		{"DELETE", "/api/admin/users/ivan/sessions"},
		{"GET", "/api/admin/roles"},
		{"PUT", "/api/admin/roles/employee"},
		{"DELETE", "/api/admin/roles/employee"},
		{"GET", "/api/admin/certificates"},
		{"POST", "/api/admin/certificates/00/revoke"},
		{"GET", "/api/admin/sessions"},
		{"GET", "/api/admin/audit"},
	}
	// Bodies an admin could send, so that only the role check refuses
	// them.
	bodies := map[string]any{
		"POST /api/admin/users":                  map[string]any{"name": "mallory", "roles": []string{"admin"}},
		"PATCH /api/admin/users/ivan":            map[string]any{"roles": []string{"admin", "employee"}},
		"PUT /api/admin/roles/employee":          map[string]any{"require_certificate": true},
		"POST /api/admin/certificates/00/revoke": map[string]string{"reason": "INC-1"},
	}
	for _, rt := range routes {
		body := bodies[rt.method+" "+rt.path]
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			wantAPIError(t, adminPhone.jsonRequest(t, rt.method, rt.path, body), http.StatusForbidden, "factor_required", "certificate")
			wantAPIError(t, ivan.jsonRequest(t, rt.method, rt.path, body), http.StatusForbidden, "forbidden", "admin")
			wantAPIError(t, hana.jsonRequest(t, rt.method, rt.path, body), http.StatusForbidden, "forbidden", "admin")
			wantAPIError(t, anonymous.jsonRequest(t, rt.method, rt.path, body), http.StatusUnauthorized, "unauthenticated")
		})
	}
	// Nothing the refused requests asked for happened.
	if got := admin.user(t, "ivan"); !slices.Equal(got.Roles, []string{"employee"}) {
		t.Errorf("ivan's roles after refused requests: %q", got.Roles)
	}
	wantAPIError(t, admin.get(t, "/api/admin/users/mallory"), http.StatusNotFound, "no_such_user")
	wantEffective(t, "ivan after refused requests", ivan.session(t), "employee")

	t.Run("self", func(t *testing.T) {
		for _, tc := range []struct {
			name, method string
			body         any
		}{
			{"raise own roles", "PATCH", map[string]any{"roles": []string{"admin", "employee", "helpdesk"}}},
			{"drop own roles", "PATCH", map[string]any{"roles": []string{"employee"}}},
			{"disable self", "PATCH", map[string]any{"disabled": true}},
			{"enable self", "PATCH", map[string]any{"disabled": false}},
			{"delete self", "DELETE", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantAPIError(t, admin.jsonRequest(t, tc.method, "/api/admin/users/admin", tc.body), http.StatusForbidden, "self", "your own account")
			})
		}
		if got := admin.user(t, "admin"); !slices.Equal(got.Roles, []string{"admin", "employee"}) || got.Disabled {
			t.Errorf("the admin's account after refused self-changes: %+v", got)
		}
		wantEffective(t, "the admin after refused self-changes", admin.session(t), "admin", "employee")
	})

	t.Run("cross-origin", func(t *testing.T) {
		req := admin.newJSONRequest(t, "POST", "/api/admin/users", map[string]any{"name": "mallory", "roles": []string{"admin"}})
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://evil.example")
		wantAPIError(t, send(t, admin.jar, req), http.StatusForbidden, "cross_origin")
		wantAPIError(t, admin.get(t, "/api/admin/users/mallory"), http.StatusNotFound, "no_such_user")
	})
}

// TestAdminAndHelpdeskAPI_EveryChangeEndsTargetSessions checks that each
// reset, role change, disable and delete ends every live session of the
// target at once, and none of anyone else's.
func TestAdminAndHelpdeskAPI_EveryChangeEndsTargetSessions(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	p.addUser(t, "hana", passphrase("hana"), "helpdesk", "employee")
	hanaCert, _, _ := p.issueCert(t, "hana")
	hana := p.signIn(t, &hanaCert, "hana", passphrase("hana"))
	p.addUser(t, "bystander", passphrase("bystander"), "employee")
	bystander := p.signIn(t, nil, "bystander", passphrase("bystander"))

	for _, tc := range []struct {
		name  string
		actor func() *client
		// totp enrolls TOTP for the target first.
		totp   bool
		method string
		path   string // %s is the target
		body   any
		status int
	}{
		{"reset password", func() *client { return hana }, false, "POST", "/api/helpdesk/users/%s/reset-password", map[string]string{"reason": "INC-1"}, http.StatusOK},
		{"reset TOTP", func() *client { return hana }, true, "POST", "/api/helpdesk/users/%s/reset-totp", map[string]string{"reason": "INC-2"}, http.StatusOK},
		{"unlock", func() *client { return hana }, false, "POST", "/api/helpdesk/users/%s/unlock", map[string]string{"reason": "INC-3"}, http.StatusOK},
		{"role change", func() *client { return admin }, false, "PATCH", "/api/admin/users/%s", map[string]any{"roles": []string{"employee", "helpdesk"}}, http.StatusOK},
		{"role removed", func() *client { return admin }, false, "PATCH", "/api/admin/users/%s", map[string]any{"roles": []string{"helpdesk"}}, http.StatusOK},
		{"disable", func() *client { return admin }, false, "PATCH", "/api/admin/users/%s", map[string]any{"disabled": true}, http.StatusOK},
		{"delete", func() *client { return admin }, false, "DELETE", "/api/admin/users/%s", nil, http.StatusNoContent},
		{"end all sessions", func() *client { return admin }, false, "DELETE", "/api/admin/users/%s/sessions", nil, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := strings.NewReplacer(" ", "", "TOTP", "totp").Replace(tc.name)
			p.addUser(t, target, passphrase(target), "employee")
			laptop := p.signIn(t, nil, target, passphrase(target))
			idle := laptop.cookieValue(t) // a session that makes no request meanwhile
			phone := p.signIn(t, nil, target, passphrase(target))
			if tc.totp {
				enrollTOTP(t, phone, passphrase(target))
			}
			phone.session(t)

			r := tc.actor().jsonRequest(t, tc.method, strings.ReplaceAll(tc.path, "%s", target), tc.body)
			wantStatus(t, r, tc.status)

			wantUnauthenticated(t, phone.get(t, "/api/session"))
			wantUnauthenticated(t, laptop.withCookie(t, "GET", "/api/session", nil, idle))
			wantUnauthenticated(t, laptop.get(t, "/api/session"))
			// The actor and a bystander keep theirs.
			tc.actor().session(t)
			bystander.session(t)
		})
	}
}

func TestAdminAPI_AuditTrail(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	start := time.Now().Add(-time.Second)

	// A sequence of actions, oldest first.
	frankPassword := passphrase("frank")
	wantStatus(t, admin.jsonRequest(t, "POST", "/api/admin/users", map[string]any{"name": "frank", "roles": []string{"employee"}, "password": frankPassword}), http.StatusCreated)
	r := admin.jsonRequest(t, "POST", "/api/admin/users", map[string]any{"name": "gina", "roles": []string{"employee"}})
	wantStatus(t, r, http.StatusCreated)
	var created struct {
		TemporaryPassword string `json:"temporary_password"`
	}
	decodeJSON(t, r, &created)
	wantStatus(t, admin.jsonRequest(t, "PATCH", "/api/admin/users/frank", map[string]any{"email": "frank@example.com"}), http.StatusOK)
	p.signIn(t, nil, "frank", frankPassword)
	wantStatus(t, admin.jsonRequest(t, "DELETE", "/api/admin/users/frank/sessions", nil), http.StatusOK)
	r = admin.jsonRequest(t, "POST", "/api/helpdesk/users/gina/reset-password", map[string]string{"reason": "INC-2001 forgot password"})
	wantStatus(t, r, http.StatusOK)
	var reset struct {
		TemporaryPassword string `json:"temporary_password"`
	}
	decodeJSON(t, r, &reset)
	gina := p.client(t, nil)
	wantRedirect(t, gina.login(t, "gina", reset.TemporaryPassword), "/account/password")
	ginaPassword := passphrase("gina")
	wantStatus(t, gina.jsonRequest(t, "POST", "/api/account/password", map[string]string{"current": reset.TemporaryPassword, "new": ginaPassword, "confirm": ginaPassword}), http.StatusNoContent)
	wantStatus(t, admin.jsonRequest(t, "PUT", "/api/admin/roles/auditors", map[string]any{"require_certificate": true}), http.StatusCreated)
	wantStatus(t, admin.jsonRequest(t, "DELETE", "/api/admin/users/gina", nil), http.StatusNoContent)
	end := time.Now().Add(time.Second)

	full, raw := admin.auditQuery(t, url.Values{"limit": {"1000"}})
	if full.Next != "" {
		t.Errorf("next = %q on a page that is not full", full.Next)
	}
	events := full.Events

	// Newest first: by ID (Redis stream IDs, ms-seq) and by time.
	for i := 1; i < len(events); i++ {
		if !streamIDLess(t, events[i].ID, events[i-1].ID) {
			t.Errorf("event %d (%s) is not older than event %d (%s)", i, events[i].ID, i-1, events[i-1].ID)
		}
		if events[i].Time.After(events[i-1].Time) {
			t.Errorf("event %d (%s at %v) is newer than event %d (%s at %v)", i, events[i].Action, events[i].Time, i-1, events[i-1].Action, events[i-1].Time)
		}
	}
	index := func(action, target string) int {
		t.Helper()
		i := slices.IndexFunc(events, func(e apiAuditEvent) bool { return e.Action == action && e.Target == target })
		if i < 0 {
			t.Fatalf("no %s event for %s in:\n%s", action, target, raw)
		}
		return i
	}
	order := []int{
		index("admin.user.delete", "gina"),
		index("admin.role.put", "auditors"),
		index("helpdesk.reset_password", "gina"),
		index("admin.sessions.revoke", "frank"),
		index("admin.user.update", "frank"),
		index("admin.user.create", "gina"),
	}
	if !slices.IsSorted(order) || order[0] != 0 {
		t.Errorf("positions of the actions, newest first = %v, want increasing from 0", order)
	}

	// Every admin and help-desk action: actor, factors, target, time,
	// client address, outcome.
	for _, e := range events {
		if !strings.HasPrefix(e.Action, "admin.") && !strings.HasPrefix(e.Action, "helpdesk.") {
			continue
		}
		if e.Actor != "admin" || !slices.Contains(e.ActorFactors, "certificate") || !slices.Contains(e.ActorFactors, "password") ||
			e.Target == "" || e.ClientAddr != "127.0.0.1" || e.Outcome != "success" || e.ID == "" {
			t.Errorf("event %+v: want actor admin with factors password and certificate, a target, client_addr 127.0.0.1, outcome success, an id", e)
		}
		if e.Time.Before(start) || e.Time.After(end) {
			t.Errorf("event %s time %v is not between %v and %v", e.Action, e.Time, start, end)
		}
	}
	if e := events[index("helpdesk.reset_password", "gina")]; e.Reason != "INC-2001 forgot password" {
		t.Errorf("reset event reason = %q, want the one given", e.Reason)
	}
	for name, secret := range map[string]string{
		"frank's password":                frankPassword,
		"gina's temporary password":       created.TemporaryPassword,
		"gina's reset temporary password": reset.TemporaryPassword,
		"gina's new password":             ginaPassword,
		"the admin's password":            p.AdminPassword,
		"the admin's session ID":          sessionIDOf(t, p, admin),
	} {
		if strings.Contains(raw, secret) {
			t.Errorf("the audit trail contains %s", name)
		}
	}

	t.Run("filters", func(t *testing.T) {
		page, body := admin.auditQuery(t, url.Values{"user": {"frank"}})
		actions := map[string]bool{}
		for _, e := range page.Events {
			if e.Actor != "frank" && e.Target != "frank" {
				t.Errorf("user=frank returned %+v", e)
			}
			actions[e.Action] = true
		}
		for _, a := range []string{"admin.user.create", "admin.user.update", "login", "admin.sessions.revoke"} {
			if !actions[a] {
				t.Errorf("user=frank lacks a %s event:\n%s", a, body)
			}
		}

		page, _ = admin.auditQuery(t, url.Values{"actor": {"admin"}})
		for _, e := range page.Events {
			if e.Actor != "admin" {
				t.Errorf("actor=admin returned %+v", e)
			}
		}
		if !slices.ContainsFunc(page.Events, func(e apiAuditEvent) bool { return e.Action == "login" }) {
			t.Errorf("actor=admin lacks the admin's login")
		}

		page, _ = admin.auditQuery(t, url.Values{"action": {"admin.user.create"}})
		var targets []string
		for _, e := range page.Events {
			targets = append(targets, e.Target)
		}
		if diff := cmp.Diff([]string{"gina", "frank"}, targets); diff != "" {
			t.Errorf("action=admin.user.create targets (-want +got):\n%s", diff)
		}

		page, _ = admin.auditQuery(t, url.Values{"user": {"gina"}, "action": {"helpdesk.reset_password"}})
		if len(page.Events) != 1 {
			t.Errorf("user=gina&action=helpdesk.reset_password: %d events, want 1", len(page.Events))
		}

		// since is inclusive, until exclusive, at the time of one event.
		mark := events[index("admin.user.update", "frank")]
		at := mark.Time.Format(time.RFC3339Nano)
		page, _ = admin.auditQuery(t, url.Values{"since": {at}, "limit": {"1000"}})
		for _, e := range page.Events {
			if e.Time.Before(mark.Time) {
				t.Errorf("since=%s returned an event at %v", at, e.Time)
			}
		}
		if !slices.ContainsFunc(page.Events, func(e apiAuditEvent) bool { return e.ID == mark.ID }) {
			t.Errorf("since=%s lacks the event at that time", at)
		}
		if slices.ContainsFunc(page.Events, func(e apiAuditEvent) bool { return e.Action == "admin.user.create" && e.Target == "frank" }) {
			t.Errorf("since=%s includes frank's creation, which came before", at)
		}
		page, _ = admin.auditQuery(t, url.Values{"until": {at}, "limit": {"1000"}})
		for _, e := range page.Events {
			if !e.Time.Before(mark.Time) {
				t.Errorf("until=%s returned an event at %v", at, e.Time)
			}
		}
		if !slices.ContainsFunc(page.Events, func(e apiAuditEvent) bool { return e.Action == "admin.user.create" && e.Target == "frank" }) {
			t.Errorf("until=%s lacks frank's creation", at)
		}
		page, _ = admin.auditQuery(t, url.Values{"since": {time.Now().Add(time.Hour).UTC().Format(time.DateOnly + "T15:04:05Z")}})
		if len(page.Events) != 0 {
			t.Errorf("since an hour from now: %d events, want none", len(page.Events))
		}
	})

	t.Run("paging", func(t *testing.T) {
		var walked []string
		seen := map[string]bool{}
		q := url.Values{"limit": {"2"}}
		for pages := 0; ; pages++ {
			if pages > len(events) {
				t.Fatalf("paging did not end after %d pages", pages)
			}
			page, body := admin.auditQuery(t, q)
			if len(page.Events) > 2 {
				t.Fatalf("limit=2 returned %d events", len(page.Events))
			}
			for _, e := range page.Events {
				if seen[e.ID] {
					t.Errorf("event %s came twice", e.ID)
				}
				seen[e.ID] = true
				walked = append(walked, e.ID)
			}
			if len(page.Events) == 2 && page.Next != page.Events[1].ID {
				t.Errorf("a full page's next = %q, want its last event's id %q", page.Next, page.Events[1].ID)
			}
			if page.Next == "" {
				if len(page.Events) == 2 {
					t.Errorf("a full page has no next:\n%s", body)
				}
				break
			}
			q.Set("before", page.Next)
		}
		var want []string
		for _, e := range events {
			want = append(want, e.ID)
		}
		if diff := cmp.Diff(want, walked); diff != "" {
			t.Errorf("ids walked with limit=2 (-one page +walked):\n%s", diff)
		}
	})

	t.Run("bad queries", func(t *testing.T) {
		for _, tc := range []struct {
			query, code string
		}{
			{"limit=0", "bad_limit"},
			{"limit=-1", "bad_limit"},
			{"limit=1001", "bad_limit"},
			{"limit=ten", "bad_limit"},
			{"before=yesterday", "bad_before"},
			{"since=last+week", "bad_time"},
			{"until=2026-13-45", "bad_time"},
		} {
			t.Run(tc.query, func(t *testing.T) {
				wantAPIError(t, admin.get(t, "/api/admin/audit?"+tc.query), http.StatusBadRequest, tc.code)
			})
		}
	})
}

// streamIDLess compares two Redis stream IDs, "<ms>-<seq>".
func streamIDLess(t *testing.T, a, b string) bool {
	t.Helper()
	parse := func(id string) (int64, int64) {
		ms, seq, ok := strings.Cut(id, "-")
		m, err1 := strconv.ParseInt(ms, 10, 64)
		s, err2 := strconv.ParseInt(seq, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("event id %q is not a stream id <ms>-<seq>", id)
		}
		return m, s
	}
	am, as := parse(a)
	bm, bs := parse(b)
	return am < bm || am == bm && as < bs
}
