package tests

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// The relying party in these tests is coreos/go-oidc with
// golang.org/x/oauth2: a client library no one here wrote, run against the
// real binary over TLS.

// rpRedirect is the app's registered redirect URI. Nothing listens there:
// the browser stops at the redirect and hands the code to the app.
const rpRedirect = "https://app.example.test/login/generic_oauth"

// idClaims are the ID token's claims the tests look at.
type idClaims struct {
	Subject           string   `json:"sub"`
	PreferredUsername string   `json:"preferred_username"`
	Email             string   `json:"email"`
	Groups            []string `json:"groups"`
	AMR               []string `json:"amr"`
	ACR               string   `json:"acr"`
	AuthTime          int64    `json:"auth_time"`
	Nonce             string   `json:"nonce"`
}

// relyingParty is an app registered with the portal.
type relyingParty struct {
	p        *portal
	ctx      context.Context
	provider *oidc.Provider
	config   oauth2.Config
}

// registerApp registers a confidential client with the admin API and
// discovers the provider as an app would.
func registerApp(t *testing.T, p *portal, admin *client, id string, roles ...string) *relyingParty {
	t.Helper()
	r := admin.jsonRequest(t, http.MethodPut, "/api/admin/oidc-clients/"+id,
		map[string]any{"redirect_uris": []string{rpRedirect}, "roles": roles, "public": false})
	wantStatus(t, r, http.StatusCreated)
	var out struct {
		ID     string `json:"id"`
		Secret string `json:"client_secret"`
	}
	decodeJSON(t, r, &out)
	if out.ID != id || len(out.Secret) < 32 {
		t.Fatalf("PUT oidc-clients/%s = %+v, want the ID and a long secret", id, out)
	}
	noteSecret(out.Secret)
	return newRelyingParty(t, p, id, out.Secret)
}

func newRelyingParty(t *testing.T, p *portal, id, secret string) *relyingParty {
	t.Helper()
	pool, err := p.caPool()
	if err != nil {
		t.Fatal(err)
	}
	tr := p.transport(pool, nil, nil)
	t.Cleanup(tr.CloseIdleConnections)
	ctx := oidc.ClientContext(t.Context(), &http.Client{Transport: tr, Timeout: requestTimeout})
	provider, err := oidc.NewProvider(ctx, p.URL)
	if err != nil {
		t.Fatalf("discover the provider at %s: %v", p.URL, err)
	}
	return &relyingParty{p: p, ctx: ctx, provider: provider, config: oauth2.Config{
		ClientID: id, ClientSecret: secret, Endpoint: provider.Endpoint(), RedirectURL: rpRedirect,
		Scopes: []string{oidc.ScopeOpenID, "profile", "email"},
	}}
}

// attempt is one authorization request: what the app keeps until the
// browser comes back.
type attempt struct {
	state, nonce, verifier string
}

func newAttempt() attempt {
	return attempt{state: randomText(), nonce: randomText(), verifier: oauth2.GenerateVerifier()}
}

func randomText() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// authorizeURL is where the app sends the browser, as a path on the portal.
func (rp *relyingParty) authorizeURL(t *testing.T, a attempt, opts ...oauth2.AuthCodeOption) string {
	t.Helper()
	opts = append([]oauth2.AuthCodeOption{oidc.Nonce(a.nonce), oauth2.S256ChallengeOption(a.verifier)}, opts...)
	u := rp.config.AuthCodeURL(a.state, opts...)
	path, ok := strings.CutPrefix(u, rp.p.URL)
	if !ok {
		t.Fatalf("authorization URL %s is not on the portal %s", u, rp.p.URL)
	}
	return path
}

// follow follows the portal's redirects from path, signing in with
// password when the portal asks, until one leaves the portal (returned)
// or a page answers (returned as the last response, with "" as the URL).
func follow(t *testing.T, c *client, path, user, password string) (string, response) {
	t.Helper()
	for range 10 {
		r := c.get(t, path)
		if r.Status != http.StatusFound && r.Status != http.StatusSeeOther {
			return "", r
		}
		loc := r.location()
		if strings.HasPrefix(loc, "https://") {
			return loc, r
		}
		if strings.HasPrefix(loc, "/login?") {
			u, _ := url.Parse(loc)
			form := loginForm(user, password)
			form.Set("rd", u.Query().Get("rd"))
			lr := c.post(t, "/login", form)
			if lr.Status != http.StatusSeeOther {
				t.Fatalf("sign-in on the way to an app: status %d, body %s", lr.Status, lr.Body)
			}
			loc = lr.location()
		}
		path = loc
	}
	t.Fatalf("more than 10 redirects from %s", path)
	return "", response{}
}

// codeFrom checks the redirect to the app and returns its code.
func codeFrom(t *testing.T, a attempt, loc string) string {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil || u.Scheme+"://"+u.Host+u.Path != rpRedirect {
		t.Fatalf("redirect to %q, want the registered redirect URI %s", loc, rpRedirect)
	}
	q := u.Query()
	if q.Get("state") != a.state {
		t.Errorf("state = %q, want %q", q.Get("state"), a.state)
	}
	if q.Get("code") == "" {
		t.Fatalf("redirect %s carries no code (error %q: %q)", loc, q.Get("error"), q.Get("error_description"))
	}
	return q.Get("code")
}

// signInTo runs the browser's side of the flow and returns the code.
func (rp *relyingParty) signInTo(t *testing.T, c *client, a attempt, user, password string) string {
	t.Helper()
	loc, r := follow(t, c, rp.authorizeURL(t, a), user, password)
	if loc == "" {
		t.Fatalf("the authorization ended on a page, status %d: %s", r.Status, r.Body)
	}
	return codeFrom(t, a, loc)
}

// exchange is the app's side: the code for tokens, then the ID token
// verified with the published keys.
func (rp *relyingParty) exchange(t *testing.T, a attempt, code string) (*oauth2.Token, idClaims) {
	t.Helper()
	tok, err := rp.config.Exchange(rp.ctx, code, oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatalf("exchange the code: %v", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		t.Fatal("the token answer holds no id_token")
	}
	idt, err := rp.provider.Verifier(&oidc.Config{ClientID: rp.config.ClientID}).Verify(rp.ctx, raw)
	if err != nil {
		t.Fatalf("verify the ID token: %v", err)
	}
	var cl idClaims
	if err := idt.Claims(&cl); err != nil {
		t.Fatal(err)
	}
	if cl.Nonce != a.nonce {
		t.Errorf("nonce = %q, want %q", cl.Nonce, a.nonce)
	}
	return tok, cl
}

func wantClaims(t *testing.T, what string, got idClaims, groups, amr []string, acr string) {
	t.Helper()
	if !strings.HasPrefix(got.Subject, "A") || got.PreferredUsername != "admin" {
		t.Errorf("%s: sub %q, preferred_username %q; want admin's account ID and admin", what, got.Subject, got.PreferredUsername)
	}
	if !slices.Equal(got.Groups, groups) {
		t.Errorf("%s: groups = %q, want %q", what, got.Groups, groups)
	}
	if !slices.Equal(got.AMR, amr) {
		t.Errorf("%s: amr = %q, want %q", what, got.AMR, amr)
	}
	if got.ACR != acr {
		t.Errorf("%s: acr = %q, want %q", what, got.ACR, acr)
	}
	if got.AuthTime == 0 || time.Since(time.Unix(got.AuthTime, 0)) > time.Hour {
		t.Errorf("%s: auth_time = %d, want the sign-in's time", what, got.AuthTime)
	}
}

func TestOIDC_RelyingPartyGetsClaimsOfTheSessionThatAuthorised(t *testing.T) {
	p := startPortal(t)
	admin := p.adminSignIn(t)
	rp := registerApp(t, p, admin, "grafana", "employee", "admin")

	// A code that is left to expire, checked at the end.
	late := newAttempt()
	lateCode := rp.signInTo(t, admin, late, "admin", p.AdminPassword)
	issued := time.Now()

	t.Run("certificate session", func(t *testing.T) {
		a := newAttempt()
		code := rp.signInTo(t, admin, a, "admin", p.AdminPassword)
		tok, cl := rp.exchange(t, a, code)
		wantClaims(t, "ID token", cl, []string{"admin", "employee"}, []string{"pwd", "swk", "mfa"}, "urn:gatehouse:acr:certificate")
		info, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		var uc idClaims
		if err := info.Claims(&uc); err != nil {
			t.Fatal(err)
		}
		acct := admin.user(t, "admin")
		if cl.Subject != acct.Subject || uc.Subject != acct.Subject || !slices.Equal(uc.Groups, []string{"admin", "employee"}) {
			t.Errorf("userinfo = %+v, ID token sub %q; want the account's subject %q and groups admin, employee", uc, cl.Subject, acct.Subject)
		}
		// The code worked once.
		if _, err := rp.config.Exchange(rp.ctx, code, oauth2.VerifierOption(a.verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("replayed code: error %v, want invalid_grant", err)
		}
	})

	t.Run("code presented at once by many", func(t *testing.T) {
		a := newAttempt()
		code := rp.signInTo(t, admin, a, "admin", p.AdminPassword)
		const n = 8
		var wg sync.WaitGroup
		var won atomic.Int32
		for range n {
			wg.Go(func() {
				if _, err := rp.config.Exchange(rp.ctx, code, oauth2.VerifierOption(a.verifier)); err == nil {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		// At most one: a code presented again revokes what its first
		// exchange gave, so when the others come late enough none may.
		if won.Load() > 1 {
			t.Errorf("%d of %d simultaneous exchanges of one code got tokens, want at most 1", won.Load(), n)
		}
	})

	t.Run("password-only session lacks admin", func(t *testing.T) {
		c := p.client(t, nil)
		a := newAttempt()
		code := rp.signInTo(t, c, a, "admin", p.AdminPassword) // signs in on the way
		_, cl := rp.exchange(t, a, code)
		wantClaims(t, "ID token", cl, []string{"employee"}, []string{"pwd"}, "urn:gatehouse:acr:password")
	})

	t.Run("client_secret_post", func(t *testing.T) {
		post := *rp
		post.config.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		a := newAttempt()
		code := post.signInTo(t, admin, a, "admin", p.AdminPassword)
		post.exchange(t, a, code)
	})

	t.Run("wrong secret", func(t *testing.T) {
		a := newAttempt()
		code := rp.signInTo(t, admin, a, "admin", p.AdminPassword)
		wrong := *rp
		wrong.config.ClientSecret = "not-the-secret-" + randomText()
		if _, err := wrong.config.Exchange(rp.ctx, code, oauth2.VerifierOption(a.verifier)); err == nil || !strings.Contains(err.Error(), "invalid_client") {
			t.Errorf("exchange with a wrong secret: error %v, want invalid_client", err)
		}
	})

	t.Run("wrong PKCE verifier", func(t *testing.T) {
		a := newAttempt()
		code := rp.signInTo(t, admin, a, "admin", p.AdminPassword)
		if _, err := rp.config.Exchange(rp.ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
			t.Error("exchange with another PKCE verifier succeeded")
		}
	})

	t.Run("unregistered redirect URI", func(t *testing.T) {
		evil := *rp
		evil.config.RedirectURL = "https://app.example.test/login/generic_oauth/../../evil"
		for _, uri := range []string{evil.config.RedirectURL, "https://evil.example.test/login/generic_oauth", rpRedirect + "?x=1"} {
			evil.config.RedirectURL = uri
			r := admin.get(t, evil.authorizeURL(t, newAttempt()))
			if loc := r.location(); strings.Contains(loc, "evil") || strings.Contains(loc, "code=") || r.Status < 400 {
				t.Errorf("authorize with redirect_uri %s: status %d, Location %q; want an error page and no redirect", uri, r.Status, loc)
			}
		}
	})

	t.Run("public client without PKCE", func(t *testing.T) {
		r := admin.jsonRequest(t, http.MethodPut, "/api/admin/oidc-clients/cli",
			map[string]any{"redirect_uris": []string{"http://127.0.0.1:7777/cb"}, "roles": []string{"employee"}, "public": true})
		wantStatus(t, r, http.StatusCreated)
		if strings.Contains(r.Body, "client_secret") {
			t.Errorf("a public client got a secret: %s", r.Body)
		}
		q := url.Values{"client_id": {"cli"}, "redirect_uri": {"http://127.0.0.1:7777/cb"}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"s1"}}
		r = admin.get(t, "/oauth2/authorize?"+q.Encode())
		if loc := r.location(); !strings.Contains(loc, "error=invalid_request") || strings.Contains(loc, "code=") {
			t.Errorf("public client without PKCE: Location %q, want error=invalid_request", loc)
		}
		q.Set("code_challenge", "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq")
		q.Set("code_challenge_method", "plain")
		r = admin.get(t, "/oauth2/authorize?"+q.Encode())
		if loc := r.location(); !strings.Contains(loc, "error=invalid_request") {
			t.Errorf("PKCE plain: Location %q, want error=invalid_request", loc)
		}
	})

	t.Run("expired code", func(t *testing.T) {
		time.Sleep(time.Until(issued.Add(61 * time.Second)))
		_, err := rp.config.Exchange(rp.ctx, lateCode, oauth2.VerifierOption(late.verifier))
		if err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("code exchanged after its minute: error %v, want invalid_grant", err)
		}
	})
}

func TestOIDC_AppWhoseRolesAreNotInEffectGetsAccessDenied(t *testing.T) {
	p := startPortal(t)
	admin := p.adminSignIn(t)
	rp := registerApp(t, p, admin, "argocd", "admin")

	c := p.client(t, nil) // no certificate: admin is not in effect
	a := newAttempt()
	loc, r := follow(t, c, rp.authorizeURL(t, a), "admin", p.AdminPassword)
	if loc != "" {
		t.Fatalf("a password-only session was sent to the app: %s", loc)
	}
	wantStatus(t, r, http.StatusForbidden)
	for _, words := range []string{"argocd", "admin access needs your device certificate", "Sign out and sign in again"} {
		if !strings.Contains(r.Body, words) {
			t.Errorf("refusal page lacks %q", words)
		}
	}
	i := strings.Index(r.Body, `href="/oauth2/refuse?id=`)
	if i < 0 {
		t.Fatalf("refusal page has no way back to the app:\n%s", r.Body)
	}
	back := r.Body[i+len(`href="`):]
	back = strings.ReplaceAll(back[:strings.Index(back, `"`)], "&amp;", "&")
	r = c.get(t, back)
	u, err := url.Parse(r.location())
	if err != nil || !strings.HasPrefix(r.location(), rpRedirect) {
		t.Fatalf("back to the app: status %d, Location %q", r.Status, r.location())
	}
	if u.Query().Get("error") != "access_denied" || u.Query().Get("state") != a.state || u.Query().Get("code") != "" {
		t.Errorf("back to the app with %s, want error=access_denied, the state and no code", u.RawQuery)
	}

	// "Sign out and sign in again" comes back to the request: in the same
	// browser, now presenting the certificate, the app gets its code.
	a = newAttempt()
	_, r = follow(t, c, rp.authorizeURL(t, a), "admin", p.AdminPassword)
	wantStatus(t, r, http.StatusForbidden)
	m := regexp.MustCompile(`<form method="post" action="/logout"><input type="hidden" name="rd" value="([^"]+)">`).FindStringSubmatch(r.Body)
	if m == nil {
		t.Fatalf("refusal page has no sign-out form that comes back:\n%s", r.Body)
	}
	retry := html.UnescapeString(m[1])
	out := c.post(t, "/logout", url.Values{"rd": {retry}})
	if out.Status != http.StatusSeeOther || out.location() != retry {
		t.Fatalf("sign out to sign in again: status %d, Location %q, want 303 to %q", out.Status, out.location(), retry)
	}
	if !strings.HasPrefix(retry, "/login?") {
		t.Fatalf("sign in again leads to %q, want the sign-in page", retry)
	}
	cert := p.adminCert(t)
	same := p.client(t, &cert)
	same.jar.Jar = c.jar.Jar // the same browser: its cookies, now with the certificate
	wantStatus(t, same.get(t, retry), http.StatusOK)
	ru, err := url.Parse(retry)
	if err != nil {
		t.Fatal(err)
	}
	form := loginForm("admin", p.AdminPassword)
	form.Set("rd", ru.Query().Get("rd"))
	in := same.post(t, "/login", form)
	if in.Status != http.StatusSeeOther {
		t.Fatalf("sign in again: status %d\n%s", in.Status, in.Body)
	}
	loc, r = follow(t, same, in.location(), "admin", p.AdminPassword)
	if loc == "" {
		t.Fatalf("signing in again with the certificate did not reach the app: status %d\n%s", r.Status, r.Body)
	}
	codeFrom(t, a, loc)

	// The same person with the certificate gets the code.
	code := rp.signInTo(t, admin, newAttempt(), "admin", p.AdminPassword)
	if code == "" {
		t.Error("no code for the certificate session")
	}

	page := admin.get(t, "/api/admin/audit?action=oidc.authorize")
	for _, want := range []string{`"outcome":"failure"`, `"outcome":"success"`, "roles_not_in_effect"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("audit of oidc.authorize lacks %s", want)
		}
	}
}

func TestOIDC_KeyRotationKeepsTheOldKeyPublished(t *testing.T) {
	p := startPortal(t)
	admin := p.adminSignIn(t)
	rp := registerApp(t, p, admin, "grafana", "employee")

	kidOf := func(raw string) string {
		t.Helper()
		parts := strings.Split(raw, ".")
		b, err := base64.RawURLEncoding.DecodeString(parts[0])
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			Kid string `json:"kid"`
		}
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatal(err)
		}
		return h.Kid
	}
	signIn := func() string {
		a := newAttempt()
		tok, _ := rp.exchange(t, a, rp.signInTo(t, admin, a, "admin", p.AdminPassword))
		return tok.Extra("id_token").(string)
	}
	before := signIn()
	out := p.cli(t, "", "oidc-keys", "rotate")
	if !strings.Contains(out, "new signing key") {
		t.Errorf("oidc-keys rotate printed %q", out)
	}
	after := signIn()
	if kidOf(before) == kidOf(after) {
		t.Fatalf("the key ID is %s before and after the rotation", kidOf(after))
	}
	// An app that saw only the new key set still verifies the token the
	// old key signed: the old key is still published.
	fresh := newRelyingParty(t, p, rp.config.ClientID, rp.config.ClientSecret)
	verifier := fresh.provider.Verifier(&oidc.Config{ClientID: "grafana"})
	for what, raw := range map[string]string{"before": before, "after": after} {
		if _, err := verifier.Verify(fresh.ctx, raw); err != nil {
			t.Errorf("ID token signed %s the rotation: %v", what, err)
		}
	}
	r := admin.get(t, "/oauth2/jwks")
	for _, kid := range []string{kidOf(before), kidOf(after)} {
		if !strings.Contains(r.Body, kid) {
			t.Errorf("JWKS lacks key %s: %s", kid, r.Body)
		}
	}
	if strings.Contains(r.Body, `"d"`) {
		t.Errorf("JWKS publishes a private key part: %s", r.Body)
	}
}

func TestOIDC_ClientCommands(t *testing.T) {
	p := startPortal(t)
	out := p.cli(t, "", "oidc-client", "set", "grafana", "--redirect-uri", rpRedirect, "--role", "employee")
	secret, ok := strings.CutPrefix(out[strings.Index(out, "client secret"):], "client secret (shown once): ")
	if !ok {
		t.Fatalf("oidc-client set printed no secret: %q", out)
	}
	secret = strings.TrimSpace(secret)
	noteSecret(secret)
	if list := p.cli(t, "", "oidc-client", "list"); !strings.Contains(list, "grafana") || !strings.Contains(list, rpRedirect) || strings.Contains(list, secret) {
		t.Errorf("oidc-client list = %q, want grafana, its URI and no secret", list)
	}
	if again := p.cli(t, "", "oidc-client", "set", "grafana", "--role", "employee", "--role", "admin"); strings.Contains(again, "client secret") {
		t.Errorf("changing a client printed a new secret: %q", again)
	}
	// The secret the command printed works for an app.
	admin := p.adminSignIn(t)
	rp := newRelyingParty(t, p, "grafana", secret)
	a := newAttempt()
	_, cl := rp.exchange(t, a, rp.signInTo(t, admin, a, "admin", p.AdminPassword))
	if !slices.Equal(cl.Groups, []string{"admin", "employee"}) {
		t.Errorf("groups = %q", cl.Groups)
	}
	// A refused token request: the OpenID library logs it, as a JSON
	// event like every other line of the portal's log.
	if r := admin.post(t, "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {"no-such-code"},
		"redirect_uri": {rpRedirect}, "client_id": {"grafana"}, "client_secret": {secret}}); r.Status != http.StatusBadRequest && r.Status != http.StatusUnauthorized {
		t.Errorf("a token request with an unknown code: %d", r.Status)
	}
	p.server.wantStructuredLog(t)
	p.cli(t, "", "oidc-client", "delete", "grafana")
	r := admin.get(t, rp.authorizeURL(t, newAttempt()))
	if r.Status < 400 || strings.Contains(r.location(), "code=") {
		t.Errorf("authorize for a deleted client: status %d, Location %q", r.Status, r.location())
	}
}

// TestOIDC_ARequestStartedInAnotherBrowserIsRefused: an attacker starts a
// sign-in at an app in their own browser and sends the portal's link to
// someone signed in. The victim's session must not grant it, and the
// attacker gets no code.
func TestOIDC_ARequestStartedInAnotherBrowserIsRefused(t *testing.T) {
	p := startPortal(t)
	admin := p.adminSignIn(t)
	rp := registerApp(t, p, admin, "wiki", "employee")

	attacker := p.client(t, nil)
	r := attacker.get(t, rp.authorizeURL(t, newAttempt()))
	loginURL := r.location()
	if r.Status != http.StatusFound && r.Status != http.StatusSeeOther || !strings.Contains(loginURL, "/oauth2/login?id=") {
		t.Fatalf("authorize: status %d, Location %q; want a redirect to the portal's login step", r.Status, loginURL)
	}
	u, err := url.Parse(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	id := u.Query().Get("id")

	// The victim, signed in, follows the link: refused, nothing granted.
	r = admin.get(t, u.RequestURI())
	wantPage(t, r, http.StatusForbidden, "started in another browser")
	r = admin.get(t, "/oauth2/refuse?id="+url.QueryEscape(id))
	wantStatus(t, r, http.StatusForbidden)
	// The attacker's callback gets no code: the request was never granted.
	r = attacker.get(t, "/oauth2/authorize/callback?id="+url.QueryEscape(id))
	if loc := r.location(); strings.Contains(loc, "code=") {
		t.Fatalf("the attacker's browser got a code: %s", loc)
	}
	// The victim's browser is no use at the callback either.
	r = admin.get(t, "/oauth2/authorize/callback?id="+url.QueryEscape(id))
	if loc := r.location(); strings.Contains(loc, "code=") || r.Status != http.StatusForbidden {
		t.Errorf("callback from another browser: status %d, Location %q; want 403 and no code", r.Status, loc)
	}
}

// TestOIDC_ARevokedCertificateEndsWhatItsSessionGranted: an app holds a
// token with groups admin from a certificate session; once that
// certificate is revoked, userinfo answers nothing, and a code not yet
// exchanged gives no token.
func TestOIDC_ARevokedCertificateEndsWhatItsSessionGranted(t *testing.T) {
	p := startPortal(t)
	admin := p.adminSignIn(t)
	rp := registerApp(t, p, admin, "argocd", "admin")

	a := newAttempt()
	code := rp.signInTo(t, admin, a, "admin", p.AdminPassword)
	tok, claims := rp.exchange(t, a, code)
	wantClaims(t, "certificate session", claims, []string{"admin", "employee"}, []string{"pwd", "swk", "mfa"}, "urn:gatehouse:acr:certificate")
	if _, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(tok)); err != nil {
		t.Fatalf("userinfo before the revocation: %v", err)
	}
	pending := newAttempt()
	pendingCode := rp.signInTo(t, admin, pending, "admin", p.AdminPassword)

	p.cli(t, "", "cert", "revoke", fingerprintOfFile(t, filepath.Join(p.Data, "initial-admin.crt")), "--reason", "laptop lost")
	if info, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Errorf("userinfo after the certificate was revoked answered %+v; want an error", info)
	}
	if _, err := rp.config.Exchange(rp.ctx, pendingCode, oauth2.VerifierOption(pending.verifier)); err == nil {
		t.Errorf("a code granted before the revocation was exchanged after it")
	}
}

// TestOIDC_PromptLoginAndMaxAgeAskForAFreshSignIn: an app that asks for
// prompt=login, or for a sign-in younger than max_age, gets one made for
// its request, not the session already open.
func TestOIDC_PromptLoginAndMaxAgeAskForAFreshSignIn(t *testing.T) {
	p := startPortal(t)
	admin := p.adminSignIn(t)
	rp := registerApp(t, p, admin, "wiki", "employee")
	for name, opt := range map[string]oauth2.AuthCodeOption{
		"prompt=login": oauth2.SetAuthURLParam("prompt", "login"),
		"max_age=0":    oauth2.SetAuthURLParam("max_age", "0"),
	} {
		c := p.client(t, nil)
		wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
		time.Sleep(1100 * time.Millisecond) // auth_time is in seconds
		before := time.Now().Truncate(time.Second)
		a := newAttempt()
		r := c.get(t, rp.authorizeURL(t, a, opt))
		loc, r := follow(t, c, r.location(), "admin", p.AdminPassword)
		if loc == "" {
			t.Fatalf("%s: the authorization ended on a page, status %d", name, r.Status)
		}
		_, claims := rp.exchange(t, a, codeFrom(t, a, loc))
		if claims.AuthTime < before.Unix() {
			t.Errorf("%s: auth_time %d is the old sign-in's, want a fresh one at or after %d", name, claims.AuthTime, before.Unix())
		}
	}
	// Without either, the open session answers at once.
	a := newAttempt()
	loc, _ := follow(t, admin, rp.authorizeURL(t, a), "", "")
	if loc == "" {
		t.Fatal("a plain authorization with a session open did not go back to the app")
	}
}
