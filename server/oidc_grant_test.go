package server_test

// The OpenID Provider's grants, as an app sees them: every token and
// userinfo answer stands for what the session has in effect now.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/server"
	"gatehouse/store"
)

const oidcRedirect = "https://app.example.test/cb"

// oidcApp registers a confidential client for roles and returns its secret.
func oidcApp(t *testing.T, p *portal, id string, roles ...string) string {
	t.Helper()
	c, secret, err := server.NewOIDCClient(nil, id, []string{oidcRedirect}, roles, false, false, p.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.store.PutOIDCClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	return secret
}

// oidcCode runs the browser's side of the flow and returns the code.
func oidcCode(t *testing.T, b *browser, clientID, verifier string, extra url.Values) (string, response) {
	t.Helper()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {clientID}, "redirect_uri": {oidcRedirect}, "response_type": {"code"},
		"scope": {"openid profile email"}, "state": {"st"}, "nonce": {"nn"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	path := "/oauth2/authorize?" + q.Encode()
	for range 6 {
		r := b.get(path)
		if r.Status != http.StatusFound && r.Status != http.StatusSeeOther {
			return "", r
		}
		loc := r.Header.Get("Location")
		if strings.HasPrefix(loc, oidcRedirect) {
			u, _ := url.Parse(loc)
			return u.Query().Get("code"), r
		}
		u, _ := url.Parse(loc)
		path = u.RequestURI()
	}
	t.Fatal("too many redirects")
	return "", response{}
}

type oidcTokens struct {
	AccessToken      string `json:"access_token"`
	IDToken          string `json:"id_token"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func oidcExchange(t *testing.T, b *browser, clientID, secret, code, verifier string) (oidcTokens, int) {
	t.Helper()
	req := b.newRequest(http.MethodPost, "/oauth2/token", strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {oidcRedirect}, "code_verifier": {verifier},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	r := b.do(req)
	var tok oidcTokens
	json.Unmarshal([]byte(r.Body), &tok)
	return tok, r.Status
}

// oidcSignIn runs the browser's side of the flow for client and returns
// the code; the test stops without one.
func oidcSignIn(t *testing.T, b *browser, clientID, verifier string) string {
	t.Helper()
	code, r := oidcCode(t, b, clientID, verifier, nil)
	if code == "" {
		t.Fatalf("no code for %s: status %d %s", clientID, r.Status, r.Body)
	}
	return code
}

// oidcTokensFor exchanges code and returns the tokens; the test stops
// when the exchange fails.
func oidcTokensFor(t *testing.T, b *browser, clientID, secret, code, verifier string) oidcTokens {
	t.Helper()
	tok, st := oidcExchange(t, b, clientID, secret, code, verifier)
	if st != http.StatusOK {
		t.Fatalf("exchange for %s: %d %+v", clientID, st, tok)
	}
	return tok
}

type oidcClaims struct {
	Sub               string   `json:"sub"`
	PreferredUsername string   `json:"preferred_username"`
	Groups            []string `json:"groups"`
	AMR               []string `json:"amr"`
	ACR               string   `json:"acr"`
}

func oidcUserinfo(t *testing.T, b *browser, token string) (oidcClaims, response) {
	t.Helper()
	req := b.newRequest(http.MethodGet, "/oauth2/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	r := b.do(req)
	var info oidcClaims
	json.Unmarshal([]byte(r.Body), &info)
	return info, r
}

func oidcIDClaims(t *testing.T, raw string) oidcClaims {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("ID token %q is not a JWS", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c oidcClaims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func effectiveRoles(t *testing.T, b *browser) []string {
	t.Helper()
	r := b.get("/api/session")
	var s struct {
		EffectiveRoles []string `json:"effective_roles"`
	}
	json.Unmarshal([]byte(r.Body), &s)
	return s.EffectiveRoles
}

const (
	verifierOne = "verifier-one-0123456789012345678901234567890123"
	verifierTwo = "verifier-two-0123456789012345678901234567890123"
)

// A role taken off the account the way `gatehouse user roles` does it
// (no session ended) leaves the app's userinfo at once, and a code
// granted just before gives no ID token with it.
func TestOIDCGrant_RoleTakenOffTheAccountLeavesUserinfoAndTokens(t *testing.T) {
	p := newPortal(t)
	secret := oidcApp(t, p, "argocd", "admin", "employee")
	b := p.browser(p.AdminCert)
	b.login("admin", adminPassword)
	code := oidcSignIn(t, b, "argocd", verifierOne)
	tok := oidcTokensFor(t, b, "argocd", secret, code, verifierOne)
	if info, _ := oidcUserinfo(t, b, tok.AccessToken); !slices.Contains(info.Groups, "admin") {
		t.Fatalf("userinfo before the change: %+v, want admin in groups", info)
	}
	pending, _ := oidcCode(t, b, "argocd", verifierTwo, nil)

	if err := p.store.UpdateAccount(t.Context(), "admin", func(a *store.Account) error {
		a.Roles = []string{"employee"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	info, resp := oidcUserinfo(t, b, tok.AccessToken)
	if resp.Status != http.StatusOK || slices.Contains(info.Groups, "admin") || !slices.Contains(info.Groups, "employee") {
		t.Errorf("userinfo after admin was taken off the account: status %d, groups %q; want employee alone", resp.Status, info.Groups)
	}
	tok2 := oidcTokensFor(t, b, "argocd", secret, pending, verifierTwo)
	if g := oidcIDClaims(t, tok2.IDToken).Groups; slices.Contains(g, "admin") {
		t.Errorf("a code granted before admin was taken off gave an ID token with groups %q", g)
	}

	// With none of the app's roles left in effect, the grant ends.
	if err := p.store.UpdateAccount(t.Context(), "admin", func(a *store.Account) error {
		a.Roles = []string{"auditor"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, resp := oidcUserinfo(t, b, tok.AccessToken); resp.Status == http.StatusOK {
		t.Errorf("userinfo with none of the app's roles in effect: %s, want refused", resp.Body)
	}
}

// A requirement added to a role (`gatehouse role set`) takes the role out
// of userinfo when the session does not meet it.
func TestOIDCGrant_RequirementAddedToARoleLeavesUserinfo(t *testing.T) {
	p := newPortal(t)
	secret := oidcApp(t, p, "argocd", "admin", "employee")
	b := p.browser(p.AdminCert)
	b.login("admin", adminPassword)
	code := oidcSignIn(t, b, "argocd", verifierOne)
	tok := oidcTokensFor(t, b, "argocd", secret, code, verifierOne)
	if err := p.store.PutRole(t.Context(), store.Role{Name: "admin", RequireCertificate: true, RequireTOTP: true}); err != nil {
		t.Fatal(err)
	}
	if got := effectiveRoles(t, b); slices.Contains(got, "admin") {
		t.Fatalf("the portal session still has admin: %q", got)
	}
	info, resp := oidcUserinfo(t, b, tok.AccessToken)
	if resp.Status != http.StatusOK || slices.Contains(info.Groups, "admin") {
		t.Errorf("userinfo after admin started requiring TOTP: status %d, groups %q; want admin gone", resp.Status, info.Groups)
	}
}

// A grant made with a certificate ends when the certificate no longer
// counts, here because it expired: the session's certificate roles are
// gone, and so is the app's access.
func TestOIDCGrant_EndsWhenItsCertificateNoLongerCounts(t *testing.T) {
	p := newPortal(t)
	secret := oidcApp(t, p, "wiki", "employee")
	laptop := p.browser(tlsCertificate(addAlice(t, p, 10*time.Minute)))
	laptop.login("alice", alicePassword)
	code := oidcSignIn(t, laptop, "wiki", verifierOne)
	tok := oidcTokensFor(t, laptop, "wiki", secret, code, verifierOne)
	if info, resp := oidcUserinfo(t, laptop, tok.AccessToken); resp.Status != http.StatusOK || !slices.Contains(info.AMR, "swk") {
		t.Fatalf("userinfo with the certificate valid: %d %s", resp.Status, resp.Body)
	}
	p.clock.Advance(11 * time.Minute)
	if _, resp := oidcUserinfo(t, laptop, tok.AccessToken); resp.Status == http.StatusOK {
		t.Errorf("userinfo after the certificate the grant was made with expired: %s, want refused", resp.Body)
	}
}

// Userinfo carries amr and acr, as the ID token does.
func TestOIDCUserinfo_CarriesAMRAndACR(t *testing.T) {
	p := newPortal(t)
	secret := oidcApp(t, p, "wiki", "employee")
	b := p.browser(p.AdminCert)
	b.login("admin", adminPassword)
	code := oidcSignIn(t, b, "wiki", verifierOne)
	tok := oidcTokensFor(t, b, "wiki", secret, code, verifierOne)
	id := oidcIDClaims(t, tok.IDToken)
	info, resp := oidcUserinfo(t, b, tok.AccessToken)
	if len(id.AMR) == 0 || id.ACR == "" || !slices.Equal(info.AMR, id.AMR) || info.ACR != id.ACR {
		t.Errorf("userinfo %s: amr %q acr %q; want the ID token's amr %q acr %q", resp.Body, info.AMR, info.ACR, id.AMR, id.ACR)
	}
}

// An app's prompt=login sends the person through the sign-in form, and
// the session open until then ends only when the new sign-in succeeds:
// a navigation from another site signs nobody out.
func TestOIDCAuthorize_PromptLoginFromAnotherSiteSignsNobodyOut(t *testing.T) {
	p := newPortal(t)
	oidcApp(t, p, "wiki", "employee")
	b := p.browser(p.AdminCert)
	b.login("admin", adminPassword)
	id := b.sessionID()
	p.clock.Advance(2 * time.Second)
	cross := http.Header{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"navigate"}}
	sum := sha256.Sum256([]byte(verifierOne))
	q := url.Values{"client_id": {"wiki"}, "redirect_uri": {oidcRedirect}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"st"}, "prompt": {"login"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	path := "/oauth2/authorize?" + q.Encode()
	var last response
	for range 5 {
		last = b.get(path, cross)
		loc, _ := url.Parse(last.Header.Get("Location"))
		if loc == nil || loc.Path == "" {
			break
		}
		path = loc.RequestURI()
	}
	if _, err := p.store.Session(t.Context(), id); err != nil {
		t.Errorf("a cross-site navigation with prompt=login ended the portal session: %v", err)
	}
	if last.Status != http.StatusOK || !strings.Contains(last.Body, "asks you to sign in again") || !strings.Contains(last.Body, `action="/login"`) {
		t.Errorf("prompt=login ended on status %d, want the sign-in form saying the app asks to sign in again; body %s", last.Status, last.Body)
	}
}

// An account deleted and made again under the same name is someone else
// to every app: its sub is the account's ID, never reassigned.
func TestOIDCClaims_SubjectIsNeverGivenToAnotherAccount(t *testing.T) {
	p := newPortal(t)
	secret := oidcApp(t, p, "wiki", "employee")
	subOf := func() oidcClaims {
		t.Helper()
		b := p.browser()
		b.login("alice", alicePassword)
		code := oidcSignIn(t, b, "wiki", verifierOne)
		tok := oidcTokensFor(t, b, "wiki", secret, code, verifierOne)
		return oidcIDClaims(t, tok.IDToken)
	}
	p.addAccount("alice", alicePassword, "employee")
	first := subOf()
	if err := p.store.DeleteAccount(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	p.addAccount("alice", alicePassword, "employee")
	second := subOf()
	if !strings.HasPrefix(first.Sub, "A") || second.Sub == first.Sub || first.PreferredUsername != "alice" || second.PreferredUsername != "alice" {
		t.Errorf("alice's claims %+v, then a new alice's %+v; want an account ID as sub, another for the new account, and alice as preferred_username", first, second)
	}
}

// A code presented a second time was most likely stolen: the exchange is
// refused and the access token its first use gave stops answering.
func TestOIDCToken_ReplayedCodeRevokesItsAccessToken(t *testing.T) {
	p := newPortal(t)
	secret := oidcApp(t, p, "wiki", "employee")
	b := p.browser(p.AdminCert)
	b.login("admin", adminPassword)
	code := oidcSignIn(t, b, "wiki", verifierOne)
	tok := oidcTokensFor(t, b, "wiki", secret, code, verifierOne)
	if _, resp := oidcUserinfo(t, b, tok.AccessToken); resp.Status != http.StatusOK {
		t.Fatalf("userinfo before the replay: %d %s", resp.Status, resp.Body)
	}
	again, st := oidcExchange(t, b, "wiki", secret, code, verifierOne)
	if st == http.StatusOK || again.Error != "invalid_grant" {
		t.Errorf("the code presented again: status %d, %+v; want invalid_grant", st, again)
	}
	if _, resp := oidcUserinfo(t, b, tok.AccessToken); resp.Status == http.StatusOK {
		t.Errorf("userinfo with the access token of a replayed code: %s, want refused", resp.Body)
	}
	wantReplayAudited(t, p)

	// A code that never was is just refused.
	if _, st := oidcExchange(t, b, "wiki", secret, "no-such-code", verifierOne); st == http.StatusOK {
		t.Errorf("an unknown code was exchanged")
	}
}

// A grant ends with its session's idle timeout, and with its account:
// one made again under the same name (a new ID) is not the account the
// grant was made for, even with the old session record still there.
func TestOIDCGrant_EndsWithTheSessionsIdleTimeAndWithItsAccount(t *testing.T) {
	p := newPortal(t)
	secret := oidcApp(t, p, "wiki", "employee")
	p.addAccount("alice", alicePassword, "employee")
	tokenOf := func() oidcTokens {
		t.Helper()
		b := p.browser()
		b.login("alice", alicePassword)
		return oidcTokensFor(t, b, "wiki", secret, oidcSignIn(t, b, "wiki", verifierOne), verifierOne)
	}
	b := p.browser()

	tok := tokenOf()
	p.clock.Advance(server.DefaultSessionIdle + time.Second)
	if _, resp := oidcUserinfo(t, b, tok.AccessToken); resp.Status == http.StatusOK {
		t.Errorf("userinfo after the session's idle time: %s, want refused", resp.Body)
	}

	tok = tokenOf()
	if err := p.store.DeleteAccount(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	p.addAccount("alice", alicePassword, "employee")
	if _, resp := oidcUserinfo(t, b, tok.AccessToken); resp.Status == http.StatusOK {
		t.Errorf("userinfo for an account deleted and made again under its name: %s, want refused", resp.Body)
	}
}

// wantReplayAudited checks that the audit trail has the failure of the
// wiki's code that admin's session authorised, presented a second time.
func wantReplayAudited(t *testing.T, p *portal) {
	t.Helper()
	page, err := p.store.Audit(t.Context(), store.AuditQuery{Action: "oidc.token"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(page.Items, func(e store.AuditEvent) bool {
		return e.Outcome == "failure" && e.Actor == "wiki" && e.Target == "admin" && strings.HasPrefix(e.Reason, "code_replayed")
	}) {
		t.Errorf("no audit event for the replayed code: %+v", page.Items)
	}
}
