package server_test

import (
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"gatehouse/server"
	"gatehouse/store"
)

const bobPassword = "a long passphrase for bob, 2026"

// withApps registers the wiki (employee) and ops (admin) apps.
func withApps(t testing.TB, p *portal) {
	t.Helper()
	for _, a := range []store.App{
		{Name: "wiki", URL: "https://wiki.example.com/", Roles: []string{"employee"}},
		{Name: "ops", URL: "https://ops.example.com:8443/console/", Roles: []string{"admin"}},
	} {
		if err := p.store.PutApp(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
}

// verify asks /auth/verify about original as a proxy would; header adds
// to the request.
func (b *browser) verify(original string, header ...http.Header) response {
	b.t.Helper()
	h := http.Header{"X-Original-Url": {original}}
	for _, x := range header {
		for k, v := range x {
			h[k] = v
		}
	}
	return b.get("/auth/verify", h)
}

func wantVerified(t *testing.T, what string, r response, user, roles, factors string) {
	t.Helper()
	wantStatus(t, what, r, http.StatusOK)
	for k, want := range map[string]string{"Remote-User": user, "Remote-Roles": roles, "Remote-Factors": factors} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", what, k, got, want)
		}
	}
}

func TestVerify_AnswersForRegisteredApps(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	withApps(t, p)
	p.addAccount("bob", bobPassword, "employee")
	if err := p.store.UpdateAccount(t.Context(), "bob", func(a *store.Account) error { a.Email = "bob@example.com"; return nil }); err != nil {
		t.Fatal(err)
	}

	anon := p.browser()
	r := anon.verify("https://wiki.example.com/page?x=1")
	wantStatus(t, "anonymous", r, http.StatusUnauthorized)
	loc, err := url.Parse(r.Header.Get("Location"))
	if err != nil || loc.Scheme != "https" || loc.Path != "/login" || loc.Query().Get("rd") != "https://wiki.example.com/page?x=1" {
		t.Errorf("anonymous: Location = %q, want the portal's /login with rd = the original URL", r.Header.Get("Location"))
	}
	if r := anon.get("/auth/verify?redirect=true", http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"wiki.example.com"}, "X-Forwarded-Uri": {"/a"}}); r.Status != http.StatusFound ||
		!strings.Contains(r.Header.Get("Location"), "rd=https%3A%2F%2Fwiki.example.com%2Fa") {
		t.Errorf("anonymous with redirect=true and X-Forwarded-*: %d Location %q, want 302 to the login page returning to https://wiki.example.com/a", r.Status, r.Header.Get("Location"))
	}
	wantStatus(t, "no original URL", anon.get("/auth/verify"), http.StatusBadRequest)

	bob := p.browser()
	bob.login("bob", bobPassword)
	r = bob.verify("https://wiki.example.com/page", http.Header{"Remote-User": {"admin"}, "Remote-Roles": {"admin"}})
	wantVerified(t, "bob on the wiki (forging Remote-User)", r, "bob", "employee", "password")
	if got := r.Header.Get("Remote-Email"); got != "bob@example.com" {
		t.Errorf("Remote-Email = %q, want bob@example.com", got)
	}
	wantVerified(t, "bob on the wiki, host in capitals and port 443", bob.verify("https://WIKI.example.com:443/"), "bob", "employee", "password")
	// A proxy that passes the client's headers on: the client's
	// X-Original-URL must not decide which app's roles are checked.
	r = bob.get("/auth/verify", http.Header{"X-Original-Url": {"https://wiki.example.com/"},
		"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"ops.example.com:8443"}, "X-Forwarded-Uri": {"/console/secret"}})
	wantStatus(t, "conflicting original URLs", r, http.StatusBadRequest)
	if r.Header.Get("Remote-User") != "" {
		t.Error("a refused verify set Remote-User")
	}
	r = bob.verify("https://ops.example.com:8443/console/")
	wantStatus(t, "bob on ops", r, http.StatusForbidden)
	if !strings.Contains(r.Body, "ops") || !strings.Contains(r.Body, "admin") {
		t.Errorf("bob on ops: %s, want a reason naming the app and the role", r.Body)
	}
	for _, u := range []string{
		"https://evil.example.com/",
		"https://wiki.example.com.evil.net/",
		"https://ops.example.com:8443/consolex",
		"https://ops.example.com/console/",
	} {
		if r := bob.verify(u); r.Status != http.StatusForbidden || !strings.Contains(r.Body, "unknown_app") {
			t.Errorf("verify %q: %d %s, want 403 unknown_app", u, r.Status, r.Body)
		}
	}
	// Addresses no app can claim, whatever is registered, say so.
	for _, u := range []string{
		"http://wiki.example.com/",
		"https://wiki.example.com/a/../../x",
		"https://wiki.example.com\\@evil.net/",
		"https://ops.example.com:8443/console/..;/admin/",
		"https://ops.example.com:8443/console/.;/x",
		"https://wiki.example.com/a/..%5Cx",
	} {
		if r := bob.verify(u); r.Status != http.StatusForbidden || !strings.Contains(r.Body, "unsafe_url") {
			t.Errorf("verify %q: %d %s, want 403 unsafe_url", u, r.Status, r.Body)
		}
	}

	// The admin: ops needs the certificate.
	phone := p.browser()
	phone.login("admin", adminPassword)
	r = phone.verify("https://ops.example.com:8443/console/x")
	wantStatus(t, "admin without certificate on ops", r, http.StatusForbidden)
	if !strings.Contains(r.Body, "certificate") {
		t.Errorf("admin without certificate on ops: %s, want the reason to name the certificate", r.Body)
	}
	laptop := p.browser(p.AdminCert)
	laptop.login("admin", adminPassword)
	wantVerified(t, "admin with certificate on ops", laptop.verify("https://ops.example.com:8443/console/x"), "admin", "admin,employee", "password,certificate")

	// The laptop's cookie replayed without the certificate is worth no
	// more than a password-only session.
	thief := p.browser()
	thief.setCookie(laptop.cookie())
	wantStatus(t, "stolen cookie on ops", thief.verify("https://ops.example.com:8443/console/x"), http.StatusForbidden)
	wantVerified(t, "stolen cookie on the wiki", thief.verify("https://wiki.example.com/"), "admin", "employee", "password")

	// Deleting the app closes it at once.
	if err := p.store.DeleteApp(t.Context(), "wiki"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "bob on the deleted wiki", bob.verify("https://wiki.example.com/"), http.StatusForbidden)
}

// escapedPEM is a certificate as nginx's $ssl_client_escaped_cert
// writes it.
func escapedPEM(p *portal) string {
	return url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.AdminLeaf.Raw})))
}

// forwardedForms are the admin's certificate in each form a proxy
// forwards it in: nginx's, Caddy's, and Traefik's with and without URL
// escaping (leaf, then the CA).
func forwardedForms(p *portal) map[string]http.Header {
	b64 := base64.StdEncoding.EncodeToString
	return map[string]http.Header{
		"nginx":            {"X-Client-Cert": {escapedPEM(p)}},
		"Caddy":            {"X-Client-Cert": {b64(p.AdminLeaf.Raw)}},
		"Traefik":          {"X-Forwarded-Tls-Client-Cert": {b64(p.AdminLeaf.Raw) + "," + b64(p.ca.Cert.Raw)}},
		"Traefik, escaped": {"X-Forwarded-Tls-Client-Cert": {url.QueryEscape(b64(p.AdminLeaf.Raw)) + "," + url.QueryEscape(b64(p.ca.Cert.Raw))}},
	}
}

// with returns h and extra merged, as a new header.
func with(h http.Header, extra http.Header) http.Header {
	out := h.Clone()
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func TestTrustedProxy_ForwardedCertificateAndAddress(t *testing.T) {
	t.Parallel()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

	t.Run("from a trusted proxy", func(t *testing.T) {
		t.Parallel()
		for _, header := range server.ClientCertHeaders {
			p := newPortalWith(t, func(c *server.Config) { c.TrustedProxies = loopback; c.ClientCertHeader = header })
			withApps(t, p)
			forms := map[string]http.Header{}
			for form, h := range forwardedForms(p) {
				if _, ok := h[header]; ok {
					forms[form] = h
				}
			}
			for form, cert := range forms {
				forwarded := with(cert, http.Header{"X-Forwarded-For": {"203.0.113.7, 198.51.100.9"}})
				nginx := p.browser() // the proxy's own connection has no client certificate
				r := nginx.post("/login", url.Values{"username": {"admin"}, "password": {adminPassword}}, forwarded)
				wantStatus(t, form+": login through the proxy", r, http.StatusSeeOther)
				wantVerified(t, form+": verify with the forwarded certificate", nginx.verify("https://ops.example.com:8443/console/", forwarded), "admin", "admin,employee", "password,certificate")
				rec := p.session(nginx.sessionID())
				if rec.ClientAddr != "198.51.100.9" {
					t.Errorf("%s: session client address = %q, want 198.51.100.9 (the last hop before the proxy)", form, rec.ClientAddr)
				}
				if len(rec.Factors) != 2 {
					t.Errorf("%s: session factors = %q, want the password and the certificate", form, rec.Factors)
				}
				// Without the header the request has no certificate, even
				// though this connection presents one: that would be the
				// proxy's own.
				withHandshake := p.browser(p.AdminCert)
				withHandshake.setCookie(nginx.cookie())
				wantStatus(t, form+": handshake certificate from the proxy", withHandshake.verify("https://ops.example.com:8443/console/"), http.StatusForbidden)
				// Every form of the configured header is read for the
				// same session; the other header is refused: the proxy
				// did not set it, so the client did.
				for other, h := range forwardedForms(p) {
					if _, ok := forms[other]; ok {
						wantVerified(t, form+" session, "+other+" form", nginx.verify("https://ops.example.com:8443/console/", h), "admin", "admin,employee", "password,certificate")
						continue
					}
					r := nginx.verify("https://ops.example.com:8443/console/", h)
					wantStatus(t, header+" configured, "+other+" form", r, http.StatusBadRequest)
					if !strings.Contains(r.Body, "wrong_client_cert_header") || r.Header.Get("Remote-User") != "" {
						t.Errorf("%s configured, %s form: %s, Remote-User %q; want wrong_client_cert_header and no user", header, other, r.Body, r.Header.Get("Remote-User"))
					}
				}
			}
		}

		p := newPortalWith(t, func(c *server.Config) { c.TrustedProxies = loopback })
		withApps(t, p)
		nginx := p.browser()
		nginx.post("/login", url.Values{"username": {"admin"}, "password": {adminPassword}}, forwardedForms(p)["Caddy"])
		// Garbage in a header counts as no certificate.
		garbage := map[string]http.Header{
			"not PEM": {"X-Client-Cert": {"%%%not-pem"}},
			"empty":   {"X-Client-Cert": {""}},
		}
		if caddy := forwardedForms(p)["Caddy"].Get("X-Client-Cert"); strings.Contains(caddy, "+") {
			// Only a certificate whose base64 holds a '+' shows this.
			garbage["base64 with '+' read as a space"] = http.Header{"X-Client-Cert": {strings.ReplaceAll(caddy, "+", " ")}}
		}
		for what, h := range garbage {
			r := nginx.verify("https://ops.example.com:8443/console/", h)
			wantStatus(t, "a header that does not parse: "+what, r, http.StatusForbidden)
			if !strings.Contains(r.Body, "factor_required") {
				t.Errorf("a header that does not parse (%s): %s, want the certificate missing", what, r.Body)
			}
			wantVerified(t, "a header that does not parse, on the wiki: "+what, nginx.verify("https://wiki.example.com/", h), "admin", "employee", "password")
		}
		traefik := newPortalWith(t, func(c *server.Config) {
			c.TrustedProxies = loopback
			c.ClientCertHeader = "x-forwarded-tls-client-cert"
		})
		withApps(t, traefik)
		tb := traefik.browser()
		tb.post("/login", url.Values{"username": {"admin"}, "password": {adminPassword}}, forwardedForms(traefik)["Traefik"])
		cut := http.Header{"X-Forwarded-Tls-Client-Cert": {forwardedForms(traefik)["Traefik"].Get("X-Forwarded-Tls-Client-Cert")[:300]}}
		wantStatus(t, "Traefik's header cut short", tb.verify("https://ops.example.com:8443/console/", cut), http.StatusForbidden)

		// Two forms in one request are refused, whatever they name: one
		// of them came from the client.
		for what, h := range map[string]http.Header{
			"X-Client-Cert and Traefik's":          with(forwardedForms(p)["Caddy"], forwardedForms(p)["Traefik"]),
			"an empty X-Client-Cert and Traefik's": with(http.Header{"X-Client-Cert": {""}}, forwardedForms(p)["Traefik"]),
			"X-Client-Cert twice":                  {"X-Client-Cert": {escapedPEM(p), forwardedForms(p)["Caddy"].Get("X-Client-Cert")}},
		} {
			r := nginx.verify("https://ops.example.com:8443/console/", h)
			wantStatus(t, "conflicting forms: "+what, r, http.StatusBadRequest)
			if !strings.Contains(r.Body, "conflicting_client_cert") || r.Header.Get("Remote-User") != "" {
				t.Errorf("conflicting forms (%s): %s, Remote-User %q; want conflicting_client_cert and no user", what, r.Body, r.Header.Get("Remote-User"))
			}
			r = nginx.post("/login", url.Values{"username": {"admin"}, "password": {adminPassword}}, h)
			wantStatus(t, "login with conflicting forms: "+what, r, http.StatusBadRequest)
		}
		// The proxy checks Host against SNI itself.
		req := nginx.newRequest(http.MethodGet, "/healthz", nil)
		req.Host = "portal.example.com"
		if r := nginx.do(req); r.Status != http.StatusOK {
			t.Errorf("Host differing from SNI from a trusted proxy: %d, want 200", r.Status)
		}
		if _, err := server.CheckClientCertHeader("X-SSL-Client-Cert"); err == nil {
			t.Errorf("a client certificate header the portal does not read was accepted")
		}
		if h, err := server.CheckClientCertHeader("x-forwarded-tls-client-cert"); err != nil || h != "X-Forwarded-Tls-Client-Cert" {
			t.Errorf("CheckClientCertHeader(Traefik's, lower case) = %q, %v", h, err)
		}
	})

	t.Run("from anyone else", func(t *testing.T) {
		t.Parallel()
		p := newPortal(t) // no trusted proxies
		withApps(t, p)
		for form, cert := range forwardedForms(p) {
			forwarded := with(cert, http.Header{"X-Forwarded-For": {"203.0.113.7"}})
			client := p.browser()
			r := client.post("/login", url.Values{"username": {"admin"}, "password": {adminPassword}}, forwarded)
			wantStatus(t, form+": login with a forged certificate header", r, http.StatusSeeOther)
			r = client.verify("https://ops.example.com:8443/console/", forwarded)
			wantStatus(t, form+": verify with a forged certificate header", r, http.StatusForbidden)
			if rec := p.session(client.sessionID()); rec.ClientAddr != "127.0.0.1" || len(rec.Factors) != 1 {
				t.Errorf("%s: session = %+v, want client address 127.0.0.1 and the password factor only", form, rec)
			}
		}
		// Conflicting headers from a client are ignored like single ones.
		client := p.browser(p.AdminCert)
		client.login("admin", adminPassword)
		wantVerified(t, "a client's conflicting headers", client.verify("https://ops.example.com:8443/console/", with(forwardedForms(p)["Caddy"], forwardedForms(p)["Traefik"])),
			"admin", "admin,employee", "password,certificate")
		req := client.newRequest(http.MethodGet, "/healthz", nil)
		req.Host = "portal.example.com"
		if r := client.do(req); r.Status != http.StatusMisdirectedRequest {
			t.Errorf("Host differing from SNI from a client: %d, want 421", r.Status)
		}
	})
}

func TestCookieDomain_SharedCookie(t *testing.T) {
	t.Parallel()
	p := newPortalWith(t, func(c *server.Config) { c.CookieDomain = "Example.com" })
	b := p.browser()
	r := b.post("/login", url.Values{"username": {"admin"}, "password": {adminPassword}})
	wantStatus(t, "login", r, http.StatusSeeOther)
	sc := r.Header.Get("Set-Cookie")
	for _, want := range []string{server.DomainCookieName + "=", "Domain=example.com", "Secure", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie = %q, want it to contain %q", sc, want)
		}
	}
	if strings.Contains(sc, server.SessionCookieName) {
		t.Errorf("Set-Cookie = %q: a __Host- cookie cannot carry a Domain", sc)
	}

	for _, bad := range []string{"com", ".example.com", "exa mple.com", "example..com", "-x.com"} {
		_, err := server.New(server.Config{CookieDomain: bad})
		if err == nil || !strings.Contains(err.Error(), "cookie domain") && !strings.Contains(err.Error(), "required") {
			t.Errorf("server.New with cookie domain %q: %v, want it refused", bad, err)
		}
	}
}

func TestLogin_ReturnsOnlyToThePortalOrRegisteredApps(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	withApps(t, p)
	for rd, want := range map[string]string{
		"https://wiki.example.com/page?x=1":     "https://wiki.example.com/page?x=1",
		"https://ops.example.com:8443/console/": "https://ops.example.com:8443/console/",
		"https://evil.example/":                 "/",
		"https://wiki.example.com.evil.net/":    "/",
		"http://wiki.example.com/":              "/",
		"https://user@wiki.example.com/":        "/",
		"/account/totp":                         "/account/totp",
	} {
		b := p.browser()
		page := b.get("/login?rd=" + url.QueryEscape(rd))
		if want != "/" && !strings.HasPrefix(want, "/") {
			u, _ := url.Parse(want)
			if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://"+u.Host+";") {
				t.Errorf("login page for rd %q: CSP %q, want form-action to allow https://%s", rd, csp, u.Host)
			}
		}
		r := b.post("/login", url.Values{"username": {"admin"}, "password": {adminPassword}, "rd": {rd}})
		wantStatus(t, "login with rd "+rd, r, http.StatusSeeOther)
		if got := r.Header.Get("Location"); got != want {
			t.Errorf("login with rd %q: Location %q, want %q", rd, got, want)
		}
	}
}

func TestAdminAPI_Apps(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	admin := p.browser(p.AdminCert)
	admin.login("admin", adminPassword)
	put := func(name, body string) response {
		req := admin.newRequest(http.MethodPut, "/api/admin/apps/"+name, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return admin.do(req)
	}
	r := put("wiki", `{"url":"https://Wiki.example.com","roles":["employee"]}`)
	wantStatus(t, "create wiki", r, http.StatusCreated)
	if !strings.Contains(r.Body, `"url":"https://wiki.example.com/"`) {
		t.Errorf("created app = %s, want the URL normalised", r.Body)
	}
	wantStatus(t, "change wiki", put("wiki", `{"url":"https://wiki.example.com/","roles":["employee","admin"]}`), http.StatusOK)
	for body, code := range map[string]string{
		`{"url":"http://wiki.example.com/","roles":["employee"]}`:              "bad_url",
		`{"url":"https://ops.example.com/","roles":[]}`:                        "no_roles",
		`{"url":"https://ops.example.com/","roles":["nobody"]}`:                "no_such_role",
		`{"url":"https://wiki.example.com/","roles":["employee"]}`:             "url_taken",
		`{"name":"other","url":"https://x.example.com/","roles":["employee"]}`: "name_mismatch",
	} {
		r := put("ops", body)
		if r.Status < 400 || r.Status >= 500 || !strings.Contains(r.Body, `"code":"`+code+`"`) {
			t.Errorf("PUT ops %s: %d %s, want a 4xx with code %s", body, r.Status, r.Body, code)
		}
	}
	r = admin.get("/api/admin/apps")
	wantStatus(t, "list apps", r, http.StatusOK)
	if !strings.Contains(r.Body, `"name":"wiki"`) || !strings.Contains(r.Body, `"roles":["admin","employee"]`) {
		t.Errorf("apps = %s", r.Body)
	}
	wantStatus(t, "get wiki", admin.get("/api/admin/apps/wiki"), http.StatusOK)
	del := func(name string) response {
		return admin.do(admin.newRequest(http.MethodDelete, "/api/admin/apps/"+name, nil))
	}
	wantStatus(t, "delete wiki", del("wiki"), http.StatusNoContent)
	wantStatus(t, "delete wiki again", del("wiki"), http.StatusNotFound)
	wantStatus(t, "get deleted wiki", admin.get("/api/admin/apps/wiki"), http.StatusNotFound)

	// Only an admin with the certificate manages apps.
	phone := p.browser()
	phone.login("admin", adminPassword)
	wantStatus(t, "apps without the certificate", phone.get("/api/admin/apps"), http.StatusForbidden)
}

// The answers of /auth/verify keep a body inert where a proxy passes one
// on to a browser (nosniff, a policy that loads nothing and allows no
// framing, no referrer, no caching), and do not carry the portal's HSTS,
// which would arrive as the app host's own. Pages keep the full set.
func TestVerify_AnswerHeaders(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	withApps(t, p)
	p.addAccount("bob", bobPassword, "employee")
	anonymous := p.browser()
	bob := p.browser()
	bob.login("bob", bobPassword)
	answers := map[string]response{
		"200": bob.verify("https://wiki.example.com/"),
		"401": anonymous.verify("https://wiki.example.com/"),
		"403": bob.verify("https://ops.example.com:8443/console/"),
	}
	for what, r := range answers {
		for name, want := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
			"Referrer-Policy":         "no-referrer",
			"Cache-Control":           "no-store",
			"Remote-User":             map[string]string{"200": "bob"}[what],
		} {
			if got := r.Header.Get(name); got != want {
				t.Errorf("verify %s: %s = %q, want %q", what, name, got, want)
			}
		}
		if got := r.Header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("verify %s: Strict-Transport-Security = %q, want none", what, got)
		}
	}
	if len(answers["200"].Header) > 8+2 { // + Date and Content-Length, written by net/http
		t.Errorf("verify 200 has %d headers, want at most 10 (the Remote-* four, four of policy, Date, Content-Length): %v", len(answers["200"].Header), answers["200"].Header)
	}
	page := anonymous.get("/login", nil)
	for _, name := range []string{"Strict-Transport-Security", "X-Frame-Options", "Cross-Origin-Opener-Policy"} {
		if page.Header.Get(name) == "" {
			t.Errorf("the login page has no %s", name)
		}
	}
}

// SPEC "Performance": an anonymous request never creates a session
// record. Whatever a visitor without a session asks (forward auth, every
// page a sign-in passes through, failed sign-ins, a logout, a cookie of
// its own making), Redis holds no new key afterwards but the failed
// sign-ins' throttle counters and the audit trail.
func TestAnonymousRequestsCreateNoSessionRecord(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	withApps(t, p)
	p.addAccount("bob", bobPassword, "employee")
	opt, err := redis.ParseURL(p.redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	keys := func() map[string]bool {
		t.Helper()
		all, err := rdb.Keys(t.Context(), "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		for _, k := range all {
			set[k] = true
		}
		return set
	}
	newKeys := func(before map[string]bool) []string {
		t.Helper()
		var out []string
		for k := range keys() {
			if !before[k] {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}
	before := keys()

	anonymous := p.browser()
	wantStatus(t, "verify", anonymous.verify("https://wiki.example.com/"), http.StatusUnauthorized)
	for _, path := range []string{"/", "/login", "/login/totp", "/api/session", "/account/password", "/admin"} {
		anonymous.get(path)
	}
	anonymous.post("/logout", nil)
	forged := p.browser()
	forged.setCookie("MTcwMDAwMDAwMHxkZWFkYmVlZnw=")
	forged.verify("https://wiki.example.com/")
	forged.get("/")
	if added := newKeys(before); len(added) != 0 {
		t.Errorf("anonymous requests added keys %q to Redis, want none", added)
	}

	before = keys()
	for _, user := range []string{"bob", "nobody"} {
		r := anonymous.post("/login", url.Values{"username": {user}, "password": {"not the password at all, 2026"}})
		wantStatus(t, "a failed sign-in as "+user, r, http.StatusUnauthorized)
	}
	for _, k := range newKeys(before) {
		if !strings.Contains(k, ":failures:") && !strings.Contains(k, ":counter:") && !strings.HasSuffix(k, ":audit") {
			t.Errorf("failed sign-ins added %q to Redis, want only throttle counters and audit events", k)
		}
	}

	// The check can see a session: one sign-in makes keys of it.
	before = keys()
	p.browser().login("bob", bobPassword)
	if added := newKeys(before); !slices.ContainsFunc(added, func(k string) bool { return strings.Contains(k, ":session:") }) {
		t.Errorf("bob's sign-in added %q, no session record: the check above cannot see one", added)
	}
}
