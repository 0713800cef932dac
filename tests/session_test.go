package tests

import (
	"crypto/tls"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/securecookie"
)

func TestSession_CookieReplayedWithoutCertificateLosesAdmin(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	adminCert := p.adminCert(t)
	owner := p.client(t, &adminCert)
	wantRedirect(t, owner.login(t, "admin", p.AdminPassword), "/")
	stolen := owner.cookieValue(t)
	if s := owner.session(t); !slices.Contains(s.EffectiveRoles, "admin") {
		t.Fatalf("the owner's own session lacks admin: %+v", s)
	}

	// bob holds a valid certificate from the portal's own CA.
	p.cli(t, "", "user", "add", "bob", "--role", "employee", "--email", "bob@example.com")
	bobPrefix := filepath.Join(t.TempDir(), "bob")
	p.cli(t, "", "cert", "issue", "bob", "--out", bobPrefix)
	bobCert := loadCert(t, bobPrefix)
	forged := foreignCert(t, "admin")

	for _, tc := range []struct {
		name   string
		cert   *tls.Certificate
		notice string
	}{
		{"no certificate", nil, "did not present the certificate you signed in with"},
		{"another user's certificate from the portal's CA", &bobCert, "different certificate"},
		{"certificate with CN admin from another CA", &forged, "not issued by a certificate authority this portal trusts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			thief := p.client(t, tc.cert)
			s := thief.sessionWithCookie(t, stolen)
			if s.User != "admin" {
				t.Errorf("user = %q, want admin (the cookie is still a password session)", s.User)
			}
			if diff := cmp.Diff([]string{"employee"}, s.EffectiveRoles); diff != "" {
				t.Errorf("effective_roles (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"password"}, s.Factors); diff != "" {
				t.Errorf("factors (-want +got):\n%s", diff)
			}
			if s.Certificate != nil {
				t.Errorf("certificate = %+v, want null", s.Certificate)
			}
			wantNotice(t, s, tc.notice)
			wantNotice(t, s, "admin access needs your certificate")
		})
	}

	// The replays did not harm the session on its own connection.
	if s := owner.session(t); !slices.Contains(s.EffectiveRoles, "admin") {
		t.Errorf("after the replays the owner's session lacks admin: %+v", s)
	}
}

func TestSession_CookieAttributes(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	c := p.client(t, nil)
	r := c.login(t, "admin", p.AdminPassword)
	wantRedirect(t, r, "/")

	ck := r.sessionCookie()
	if ck == nil {
		t.Fatalf("login set no %s cookie; Set-Cookie: %q", sessionCookie, r.Header.Values("Set-Cookie"))
	}
	if ck.Value == "" {
		t.Error("the session cookie is empty")
	}
	if !ck.Secure {
		t.Error("the session cookie is not Secure")
	}
	if !ck.HttpOnly {
		t.Error("the session cookie is not HttpOnly")
	}
	if ck.SameSite != http.SameSiteLaxMode {
		t.Errorf("SameSite = %v, want Lax", ck.SameSite)
	}
	if ck.Path != "/" {
		t.Errorf("Path = %q, want /", ck.Path)
	}
	if ck.Domain != "" || strings.Contains(strings.ToLower(ck.Raw), "domain=") {
		t.Errorf("the session cookie has a Domain (%q), which __Host- forbids: %s", ck.Domain, ck.Raw)
	}
}

func TestSession_PlantedIDIsNotAdopted(t *testing.T) {
	t.Parallel()
	p := startPortal(t)

	t.Run("unsigned planted value", func(t *testing.T) {
		c := p.client(t, nil)
		const planted = "attacker-chosen"
		r := c.withCookie(t, http.MethodPost, "/login", loginForm("admin", p.AdminPassword), planted)
		wantRedirect(t, r, "/")
		ck := r.sessionCookie()
		if ck == nil {
			t.Fatal("login set no session cookie")
		}
		if ck.Value == planted {
			t.Fatal("the portal adopted the planted cookie value")
		}
		wantUnauthenticated(t, c.withCookie(t, http.MethodGet, "/api/session", nil, planted))
		if s := c.sessionWithCookie(t, ck.Value); s.User != "admin" {
			t.Errorf("the issued cookie gives user %q, want admin", s.User)
		}
	})

	// Some Redis stores for gorilla/sessions adopt any well-formed ID
	// they do not know. A cookie signed with the portal's own key (read
	// from DATA/session.key) but naming an ID the server never issued
	// gets past the signature check and tests the store's side.
	t.Run("validly signed unknown ID", func(t *testing.T) {
		codec := cookieCodec(t, p)
		c := p.client(t, nil)
		const plantedID = "attacker-chosen-session-id"
		planted, err := codec.Encode(sessionCookie, plantedID)
		if err != nil {
			t.Fatal(err)
		}
		r := c.withCookie(t, http.MethodPost, "/login", loginForm("admin", p.AdminPassword), planted)
		wantRedirect(t, r, "/")
		ck := r.sessionCookie()
		if ck == nil {
			t.Fatal("login set no session cookie")
		}
		var id string
		if err := codec.Decode(sessionCookie, ck.Value, &id); err != nil {
			t.Fatalf("cannot decode the portal's own cookie (has its format changed? this test must follow): %v", err)
		}
		if id == plantedID || ck.Value == planted {
			t.Fatal("the portal adopted a session ID it did not issue")
		}
		wantUnauthenticated(t, c.withCookie(t, http.MethodGet, "/api/session", nil, planted))
	})

	t.Run("second login rotates the ID", func(t *testing.T) {
		c := p.client(t, nil)
		wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
		first := c.cookieValue(t)
		wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
		second := c.cookieValue(t)
		if first == second {
			t.Fatal("the session cookie did not change at the second login")
		}
		wantUnauthenticated(t, c.withCookie(t, http.MethodGet, "/api/session", nil, first))
		if s := c.session(t); s.User != "admin" {
			t.Errorf("the new session gives user %q, want admin", s.User)
		}
	})
}

// cookieCodec is the portal's cookie codec, rebuilt from
// DATA/session.key the way the portal builds it.
func cookieCodec(t *testing.T, p *portal) *securecookie.SecureCookie {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.Data, "session.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("DATA/session.key: %v", err)
	}
	codec := securecookie.New(key, nil)
	codec.SetSerializer(securecookie.JSONEncoder{})
	return codec
}

func TestLogout_DestroysServerSideSession(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	c := p.client(t, nil)
	wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
	old := c.cookieValue(t)
	c.session(t) // the session works before logout

	wantRedirect(t, c.post(t, "/logout", nil), "/login")

	// Replaying the old value proves the record is gone from the server,
	// not just that the browser forgot the cookie.
	wantUnauthenticated(t, c.withCookie(t, http.MethodGet, "/api/session", nil, old))
	wantUnauthenticated(t, c.get(t, "/api/session"))
}

// Sign-out goes on to rd only when it is a path on the portal: anything
// else leads to the sign-in page, as without rd.
func TestLogout_ReturnsOnlyToThePortal(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	c := p.client(t, nil)
	for rd, want := range map[string]string{
		"/login?rd=%2Foauth2%2Flogin%3Fid%3Dx": "/login?rd=%2Foauth2%2Flogin%3Fid%3Dx",
		"https://evil.example/":                "/login",
		"//evil.example/":                      "/login",
		"/\\evil.example/":                     "/login",
		"":                                     "/login",
	} {
		wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
		wantRedirect(t, c.post(t, "/logout", url.Values{"rd": {rd}}), want)
		wantUnauthenticated(t, c.get(t, "/api/session"))
	}

	// A form that does not parse signs out all the same.
	wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
	req := c.newRequest(t, http.MethodPost, "/logout", url.Values{})
	req.Body = io.NopCloser(strings.NewReader("rd=%zz"))
	req.ContentLength = int64(len("rd=%zz"))
	wantRedirect(t, send(t, c.jar, req), "/login")
	wantUnauthenticated(t, c.get(t, "/api/session"))
}
