package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"gatehouse/auth"
	"gatehouse/store"
)

// Gatehouse is an OpenID Provider through package op of
// github.com/zitadel/oidc (an OpenID-certified implementation): op parses
// and checks the protocol (redirect URIs matched exactly, PKCE, client
// authentication, token signing); the portal keeps the sign-in, the
// decision of which roles are in effect and the audit trail. Between the
// two, an app's authorization request comes to oidcLoginPath, where the
// person's portal session either grants it or is told what it lacks.
const (
	oidcAuthorizePath = "/oauth2/authorize"
	oidcCallbackPath  = "/oauth2/authorize/callback"
	oidcTokenPath     = "/oauth2/token"
	oidcUserinfoPath  = "/oauth2/userinfo"
	oidcJWKSPath      = "/oauth2/jwks"
	oidcLoginPath     = "/oauth2/login"
	oidcRefusePath    = "/oauth2/refuse"
)

// Authentication context classes (the acr claim): what the session that
// authorised proved. Certificate-bound roles need oidcACRCertificate.
const (
	oidcACRPassword    = "urn:gatehouse:acr:password"
	oidcACRMultiFactor = "urn:gatehouse:acr:password+totp"
	oidcACRCertificate = "urn:gatehouse:acr:certificate"
)

// newOIDCProvider builds the provider. Its issuer is the portal's own
// https URL as the request names it (the Host header, which must match
// the TLS server name); codes and access tokens are encrypted with a key
// derived from the session key, which every instance shares.
func newOIDCProvider(s *Server) (*op.Provider, error) {
	mac := hmac.New(sha256.New, s.sessionKey)
	mac.Write([]byte("gatehouse OpenID Connect codes and tokens"))
	var key [32]byte
	copy(key[:], mac.Sum(nil))
	cfg := &op.Config{
		CryptoKey:       key,
		CodeMethodS256:  true,
		AuthMethodPost:  true,
		SupportedScopes: []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidcScopeGroups},
		SupportedClaims: []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "acr", "amr", "at_hash", "c_hash",
			"azp", "preferred_username", "email", "groups"},
	}
	storage := &oidcStorage{s: s, keys: &oidcKeys{store: s.store, sealer: s.sealer}}
	return op.NewProvider(cfg, storage, op.IssuerFromHost(""),
		op.WithCustomAuthEndpoint(op.NewEndpoint(oidcAuthorizePath)),
		op.WithCustomTokenEndpoint(op.NewEndpoint(oidcTokenPath)),
		op.WithCustomUserinfoEndpoint(op.NewEndpoint(oidcUserinfoPath)),
		op.WithCustomKeysEndpoint(op.NewEndpoint(oidcJWKSPath)),
		op.WithHttpInterceptors(withRequest),
		// No browser script calls these endpoints across origins: apps'
		// servers do, and they send no Origin.
		op.WithCORSOptions(nil),
	)
}

// handleOIDC serves one of the provider's own endpoints.
func (s *Server) handleOIDC() http.Handler { return s.oidc }

// handleOIDCDiscovery serves /.well-known/openid-configuration: op's
// document, less what Gatehouse does not offer (implicit flow, refresh,
// introspection, revocation, logout, device flow, plain PKCE).
func (s *Server) handleOIDCDiscovery() http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := op.CreateDiscoveryConfig(r.Context(), s.oidc, s.oidc.Storage())
		d.IntrospectionEndpoint, d.RevocationEndpoint, d.EndSessionEndpoint, d.DeviceAuthorizationEndpoint = "", "", "", ""
		d.IntrospectionEndpointAuthMethodsSupported, d.RevocationEndpointAuthMethodsSupported = nil, nil
		d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
		d.ResponseModesSupported = []string{string(oidc.ResponseModeQuery)}
		d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode}
		d.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodNone}
		d.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
		d.ACRValuesSupported = []string{oidcACRPassword, oidcACRMultiFactor, oidcACRCertificate}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d)
	})
	return op.NewIssuerInterceptor(s.oidc.IssuerFromRequest).Handler(inner)
}

// oidcRequest loads the authorization request that ?id= names.
func (s *Server) oidcRequest(r *http.Request) (*authRequest, error) {
	id := r.URL.Query().Get("id")
	b, err := s.store.Ticket(r.Context(), ticketRequest+id)
	if errors.Is(err, store.ErrNotFound) || id == "" {
		return nil, &Error{Status: http.StatusBadRequest, Code: "oidc_request_expired",
			Message: "this sign-in request from an app has expired or was already used; go back to the app and sign in again"}
	}
	if err != nil {
		return nil, err
	}
	var a authRequest
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("decode authorization request: %w", err)
	}
	return &a, nil
}

// oidcRefusal is the page shown when a session may not use an app.
type oidcRefusal struct {
	Client string
	// Missing says, role by role, what the session lacks.
	Missing []string
	// NeedCertificate and NeedTOTP say which factor would help.
	NeedCertificate, NeedTOTP bool
	// NoRole is true when the account holds none of the app's roles.
	NoRole bool
	// Retry is where signing out leads: the sign-in page, which then
	// comes back to this request.
	Retry string
	// Back returns to the app with access_denied.
	Back string
}

// handleOIDCLogin is where an app's authorization request meets the
// portal's session. Signed out (or half-way through a sign-in), the
// person signs in and comes back. Signed in, the session's roles in
// effect for this very request decide: one of the client's roles gives
// a code, with claims from this session; none gives a page that says
// what is missing, and the app gets access_denied from it.
func (s *Server) handleOIDCLogin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.oidcRequest(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		v, err := s.visit(w, r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if v == nil || !v.Complete() {
			if slices.Contains(a.Prompt, oidc.PromptNone) {
				s.oidcDeny(w, r, a, oidc.ErrLoginRequired().WithDescription("not signed in to the portal"))
				return
			}
			http.Redirect(w, r, "/login?rd="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if stale(a, v.Record.CreatedAt, s.now()) {
			// prompt=login, or a sign-in older than max_age: the app
			// asks for a fresh one. The sign-in form comes back to this
			// request; the session it replaces ends only when the new one
			// begins, so that a link from another site, which can open
			// this page but not sign in, cannot sign anyone out.
			if slices.Contains(a.Prompt, oidc.PromptNone) {
				s.oidcDeny(w, r, a, oidc.ErrLoginRequired().WithDescription("the app asks for a fresh sign-in"))
				return
			}
			http.Redirect(w, r, "/login?again=1&rd="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		c, err := s.store.OIDCClient(r.Context(), a.ClientID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		ev := store.AuditEvent{Action: "oidc.authorize", Actor: v.Account.Name, ActorFactors: v.Factors(), Target: c.ID}
		if !slices.ContainsFunc(c.Roles, v.Has) {
			ev.Outcome, ev.Reason = "failure", "roles_not_in_effect"
			ev.Notices = v.Decision.Notices
			if err := s.audit(r, ev); err != nil {
				s.fail(w, r, err)
				return
			}
			if slices.Contains(a.Prompt, oidc.PromptNone) {
				s.oidcDeny(w, r, a, oidc.ErrAccessDenied().WithDescription("the session has none of this app's roles in effect"))
				return
			}
			s.render(w, r, http.StatusForbidden, "oidc_refused.html", page{Title: "This app needs more", Visit: v,
				Data: s.refusal(r, v, c, a)})
			return
		}
		a.Grant = &oidcGrant{
			Account:     v.Account.Name,
			Subject:     v.Account.Subject(),
			Email:       v.Account.Email,
			Groups:      slices.Clone(v.Decision.EffectiveRoles),
			AMR:         amrOf(v.Decision.Factors),
			ACR:         acrOf(v.Decision.Factors),
			AuthTime:    v.Record.CreatedAt.UTC(),
			SessionID:   v.Record.ID,
			SessionEnds: v.Record.ExpiresAt,
		}
		if c := v.Decision.Cert; c.Valid() {
			a.Grant.CertIssuer, a.Grant.CertSerial = c.Info.Issuer, c.Info.Serial
			for _, pc := range s.peerCertificates(r) {
				a.Grant.CertChain = append(a.Grant.CertChain, pc.Raw)
			}
		}
		b, err := json.Marshal(a)
		if err == nil {
			err = s.store.PutTicket(r.Context(), ticketRequest+a.ID, b, oidcRequestLifetime)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		ev.Outcome, ev.Reason = "success", "groups="+strings.Join(a.Grant.Groups, ",")
		if err := s.audit(r, ev); err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, oidcCallbackPath+"?id="+url.QueryEscape(a.ID), http.StatusSeeOther)
	})
}

// refusal explains, for each of the client's roles the account holds,
// which factor this session lacks for it.
func (s *Server) refusal(r *http.Request, v *visit, c store.OIDCClient, a *authRequest) oidcRefusal {
	f := oidcRefusal{Client: c.ID,
		Retry: "/login?rd=" + url.QueryEscape(oidcLoginPath+"?id="+a.ID),
		Back:  oidcRefusePath + "?id=" + url.QueryEscape(a.ID)}
	roles, err := s.rolesOf(r, v.Account)
	if err != nil {
		s.log.Error("read roles for a refusal page", "err", err.Error())
	}
	for _, role := range roles {
		if !slices.Contains(c.Roles, role.Name) {
			continue
		}
		var needs []string
		if role.RequireCertificate && !slices.Contains(v.Decision.Factors, auth.FactorCertificate) {
			needs = append(needs, "your device certificate")
			f.NeedCertificate = true
		}
		if role.RequireTOTP && !slices.Contains(v.Decision.Factors, auth.FactorTOTP) {
			needs = append(needs, "your authenticator code")
			f.NeedTOTP = true
		}
		if len(needs) > 0 {
			f.Missing = append(f.Missing, fmt.Sprintf("%s access needs %s", role.Name, strings.Join(needs, " and ")))
		}
	}
	f.NoRole = len(f.Missing) == 0
	return f
}

// handleOIDCRefuse sends the person back to the app with access_denied,
// from the refusal page's link. A link, not a form: the page's CSP lets
// forms lead only to the portal.
func (s *Server) handleOIDCRefuse() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.oidcRequest(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.oidcDeny(w, r, a, oidc.ErrAccessDenied().WithDescription("the portal session does not have the roles this app needs"))
	})
}

// oidcDeny ends an authorization request with an error sent to the app.
func (s *Server) oidcDeny(w http.ResponseWriter, r *http.Request, a *authRequest, e *oidc.Error) {
	if err := s.store.DeleteTicket(r.Context(), ticketRequest+a.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	op.AuthRequestError(w, r, a, e, s.oidc)
}

// amrOf names a session's factors as RFC 8176 does: pwd, otp, swk (proof
// of a software-held key: the client certificate), and mfa for two or
// more.
func amrOf(factors []string) []string {
	var out []string
	for _, f := range factors {
		switch f {
		case auth.FactorPassword:
			out = append(out, "pwd")
		case auth.FactorTOTP:
			out = append(out, "otp")
		case auth.FactorCertificate:
			out = append(out, "swk")
		}
	}
	if len(out) >= 2 {
		out = append(out, "mfa")
	}
	return out
}

// factorsOfAMR is the reverse of amrOf, for audit events.
func factorsOfAMR(amr []string) []string {
	var out []string
	for _, m := range amr {
		switch m {
		case "pwd":
			out = append(out, auth.FactorPassword)
		case "swk":
			out = append(out, auth.FactorCertificate)
		case "otp":
			out = append(out, auth.FactorTOTP)
		}
	}
	return out
}

// acrOf is the authentication context class of a session's factors.
func acrOf(factors []string) string {
	switch {
	case slices.Contains(factors, auth.FactorCertificate):
		return oidcACRCertificate
	case slices.Contains(factors, auth.FactorTOTP):
		return oidcACRMultiFactor
	}
	return oidcACRPassword
}

// oidcFormTarget is where a form on the portal may lead when rd resumes
// an app's authorization request: the app's redirect URI, which the
// redirects after the form end at. "" when rd is something else.
func (s *Server) oidcFormTarget(r *http.Request, rd string) string {
	u, err := url.Parse(rd)
	if err != nil || u.Path != oidcLoginPath {
		return ""
	}
	b, err := s.store.Ticket(r.Context(), ticketRequest+u.Query().Get("id"))
	if err != nil {
		return ""
	}
	var a authRequest
	if json.Unmarshal(b, &a) != nil {
		return ""
	}
	return a.RedirectURI
}

// stale reports whether a sign-in made at signedIn is too old for
// request a at now: the app asked for prompt=login, or for max_age and
// the sign-in is older. A sign-in made after the request came is fresh
// for it, whatever max_age says (max_age=0 is prompt=login).
func stale(a *authRequest, signedIn, now time.Time) bool {
	if signedIn.After(a.CreatedAt) {
		return false
	}
	if slices.Contains(a.Prompt, oidc.PromptLogin) {
		return true
	}
	return a.MaxAge != nil && now.Sub(signedIn) > time.Duration(*a.MaxAge)*time.Second
}
