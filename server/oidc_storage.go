package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"gatehouse/auth"
	"gatehouse/store"
)

// Lifetimes of what the provider hands out. Codes are exchanged by the
// app's server within seconds of the redirect; tokens are short because
// an app keeps its own session after sign-in.
const (
	// oidcRequestLifetime bounds the time from the app's authorization
	// request to the person's sign-in (a password, a TOTP code, perhaps
	// choosing a certificate).
	oidcRequestLifetime = 10 * time.Minute
	// oidcCodeLifetime is how long an authorization code can be
	// exchanged (RFC 6749 §4.1.2 recommends at most ten minutes).
	oidcCodeLifetime = time.Minute
	// oidcTokenLifetime is the lifetime of ID and access tokens; an
	// access token also ends with the session that authorised it.
	oidcTokenLifetime = 15 * time.Minute
)

// Ticket names: the kind of record, then its ID.
const (
	ticketRequest = "oidc-request:"
	ticketCode    = "oidc-code:"
	ticketToken   = "oidc-token:"
	// ticketSpent: a code that was exchanged (by its hash), naming its
	// request; ticketTokenOf: the access token a request's code gave;
	// ticketReplayed: a request whose code was presented again. They
	// let a code presented twice revoke what the first exchange gave.
	ticketSpent    = "oidc-spent:"
	ticketTokenOf  = "oidc-token-of:"
	ticketReplayed = "oidc-replayed:"
)

// authRequest is an app's authorization request, kept as a ticket from
// the redirect to the portal until its code is exchanged. Grant fills
// in who signed in and what the session had in effect at that moment.
type authRequest struct {
	ID                  string                   `json:"id"`
	ClientID            string                   `json:"client_id"`
	RedirectURI         string                   `json:"redirect_uri"`
	State               string                   `json:"state,omitempty"`
	Nonce               string                   `json:"nonce,omitempty"`
	Scopes              []string                 `json:"scopes"`
	ResponseType        oidc.ResponseType        `json:"response_type"`
	ResponseMode        oidc.ResponseMode        `json:"response_mode,omitempty"`
	Prompt              []string                 `json:"prompt,omitempty"`
	CodeChallenge       string                   `json:"code_challenge,omitempty"`
	CodeChallengeMethod oidc.CodeChallengeMethod `json:"code_challenge_method,omitempty"`
	CreatedAt           time.Time                `json:"created_at"`
	// MaxAge, when set, is how old (in seconds) the sign-in may be.
	MaxAge *uint `json:"max_age,omitempty"`

	// Set when the person's session grants the request.
	Grant *oidcGrant `json:"grant,omitempty"`
}

// oidcGrant is what a session had in effect when it authorised an app:
// the claims of the tokens issued for it come from here, trimmed to what
// the session has in effect when they are made (stillStands), so a token
// never claims more than that session has.
type oidcGrant struct {
	// Account is the account's name (kept as "sub", its name in grants
	// made before Subject was kept).
	Account string `json:"sub"`
	// Subject is the account's OpenID Connect sub (store.Account.Subject).
	Subject   string    `json:"subject,omitempty"`
	Email     string    `json:"email,omitempty"`
	Groups    []string  `json:"groups"`
	AMR       []string  `json:"amr"`
	ACR       string    `json:"acr"`
	AuthTime  time.Time `json:"auth_time"`
	SessionID string    `json:"session_id"`
	// SessionEnds is the session's absolute end: tokens never outlive it.
	SessionEnds time.Time `json:"session_ends"`
	// CertIssuer and CertSerial name the certificate the session signed
	// in with, when it had one: once it is revoked, no token or userinfo
	// answer comes from this grant any more.
	CertIssuer string `json:"cert_issuer,omitempty"`
	CertSerial string `json:"cert_serial,omitempty"`
	// CertChain is that certificate as the connection presented it, leaf
	// first (DER): the session is decided again with it whenever a token
	// or userinfo answer is made (stillStands).
	CertChain [][]byte `json:"cert_chain,omitempty"`
}

// stillStands reports why a grant no longer stands, or nil, and trims
// its groups to the roles in effect now. The session that authorised it
// must still exist and its account be enabled, and the session is
// decided again as on its next request to the portal, with the
// certificate it presented when it authorised the app, verified again:
// a role taken off the account, a requirement added to a role, or a
// certificate revoked, expired or listed in a CRL since counts for the
// app at once, as it does on the portal's own pages. A token never
// claims more than the session has in effect now, and a grant whose app
// has none of its roles in effect any more, or whose certificate no
// longer counts, no longer stands.
func (o *oidcStorage) stillStands(ctx context.Context, clientID string, g *oidcGrant) error {
	view, err := o.s.store.View(ctx, g.SessionID)
	if errors.Is(err, store.ErrNotFound) {
		return oidc.ErrInvalidGrant().WithDescription("the session that authorised this has ended")
	}
	if err != nil {
		return err
	}
	now := o.s.now()
	if rec := view.Session; !now.Before(rec.ExpiresAt) || now.Sub(rec.LastSeen) >= o.s.idle {
		return oidc.ErrInvalidGrant().WithDescription("the session that authorised this has ended")
	}
	if view.Account.Name != g.Account || view.Session.User != g.Account || view.Account.Subject() != g.sub() || view.Account.Disabled {
		return oidc.ErrInvalidGrant().WithDescription("the account is disabled or gone")
	}
	var peer []*x509.Certificate
	for _, der := range g.CertChain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return oidc.ErrInvalidGrant().WithDescription("the certificate the session signed in with cannot be read").WithParent(err)
		}
		peer = append(peer, c)
	}
	if g.CertSerial != "" && len(peer) == 0 {
		// A grant kept before certificates were: sign in to the app again.
		return oidc.ErrInvalidGrant().WithDescription("this grant does not say which certificate it was made with; sign in to the app again")
	}
	d := o.s.decide(ctx, view.Session, view.Account, view.Roles, peer, now)
	if !d.Allow {
		return oidc.ErrInvalidGrant().WithDescription("the session that authorised this no longer signs in")
	}
	if g.CertSerial != "" && !slices.Contains(d.Factors, auth.FactorCertificate) {
		return oidc.ErrInvalidGrant().WithDescription("the certificate the session signed in with no longer counts (revoked, expired or no longer bound to the account)")
	}
	g.Groups = slices.DeleteFunc(g.Groups, func(role string) bool { return !slices.Contains(d.EffectiveRoles, role) })
	c, err := o.s.store.OIDCClient(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return oidc.ErrInvalidGrant().WithDescription("the app is no longer registered")
	}
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(c.Roles, func(role string) bool { return slices.Contains(g.Groups, role) }) {
		return oidc.ErrInvalidGrant().WithDescription("the session no longer has any of this app's roles in effect")
	}
	return nil
}

func (a *authRequest) GetID() string         { return a.ID }
func (a *authRequest) GetAudience() []string { return []string{a.ClientID} }
func (a *authRequest) GetClientID() string   { return a.ClientID }
func (a *authRequest) GetNonce() string      { return a.Nonce }
func (a *authRequest) GetRedirectURI() string {
	return a.RedirectURI
}
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.Scopes }
func (a *authRequest) GetState() string                   { return a.State }
func (a *authRequest) Done() bool                         { return a.Grant != nil }

func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.CodeChallenge, Method: a.CodeChallengeMethod}
}

func (a *authRequest) GetSubject() string {
	if a.Grant == nil {
		return ""
	}
	return a.Grant.sub()
}

// sub is the grant's OpenID Connect sub: a grant made before Subject was
// kept stands for the account's name.
func (g *oidcGrant) sub() string {
	if g.Subject != "" {
		return g.Subject
	}
	return g.Account
}

func (a *authRequest) GetACR() string {
	if a.Grant == nil {
		return ""
	}
	return a.Grant.ACR
}

func (a *authRequest) GetAMR() []string {
	if a.Grant == nil {
		return nil
	}
	return a.Grant.AMR
}

func (a *authRequest) GetAuthTime() time.Time {
	if a.Grant == nil {
		return time.Time{}
	}
	return a.Grant.AuthTime
}

// accessToken is what an access token stands for, kept as a ticket for
// the token's lifetime.
type accessToken struct {
	ClientID string     `json:"client_id"`
	Scopes   []string   `json:"scopes"`
	Grant    *oidcGrant `json:"grant"`
}

// oidcClient is a registered client as package op sees it.
type oidcClient struct{ c store.OIDCClient }

func (c oidcClient) GetID() string                    { return c.c.ID }
func (c oidcClient) RedirectURIs() []string           { return c.c.RedirectURIs }
func (c oidcClient) PostLogoutRedirectURIs() []string { return nil }
func (c oidcClient) ApplicationType() op.ApplicationType {
	if c.c.Public {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}
func (c oidcClient) AuthMethod() oidc.AuthMethod {
	if c.c.Public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic // client_secret_post is accepted too
}
func (c oidcClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c oidcClient) GrantTypes() []oidc.GrantType { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c oidcClient) LoginURL(id string) string    { return oidcLoginPath + "?id=" + id }
func (c oidcClient) AccessTokenType() op.AccessTokenType {
	return op.AccessTokenTypeBearer
}
func (c oidcClient) IDTokenLifetime() time.Duration { return oidcTokenLifetime }
func (c oidcClient) DevMode() bool                  { return false }
func (c oidcClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c oidcClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c oidcClient) IsScopeAllowed(scope string) bool { return scope == oidcScopeGroups }

// IDTokenUserinfoClaimsAssertion puts the profile claims (name, email,
// groups) in the ID token itself: apps such as Grafana read them there.
func (c oidcClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c oidcClient) ClockSkew() time.Duration             { return 0 }

// oidcScopeGroups is the scope some apps ask for to get the groups claim;
// Gatehouse sends groups whatever the scopes.
const oidcScopeGroups = "groups"

// oidcStorage backs package op with the portal's store: clients, the
// authorization requests, codes and access tokens as tickets, and the
// signing keys.
type oidcStorage struct {
	s    *Server
	keys *oidcKeys
}

var _ op.Storage = (*oidcStorage)(nil)
var _ op.CanSetUserinfoFromRequest = (*oidcStorage)(nil)

// requestKey carries the HTTP request through package op to the storage,
// so that audit events name the client address as every other does.
type requestKey struct{}

func withRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey{}, r)))
	})
}

// audit records e for the request in ctx.
func (o *oidcStorage) audit(ctx context.Context, e store.AuditEvent) error {
	r, ok := ctx.Value(requestKey{}).(*http.Request)
	if !ok {
		return errors.New("audit: no request in the context")
	}
	return o.s.audit(r, e)
}

// randomID returns n random bytes as URL-safe text.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashed names a ticket by the SHA-256 of a secret (a code), so that the
// store never holds the secret itself.
func hashed(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func (o *oidcStorage) putJSON(ctx context.Context, id string, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", id, err)
	}
	return o.s.store.PutTicket(ctx, id, b, ttl)
}

func (o *oidcStorage) loadRequest(ctx context.Context, b []byte, err error) (*authRequest, error) {
	if err != nil {
		return nil, err
	}
	var a authRequest
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("decode authorization request: %w", err)
	}
	return &a, nil
}

// CreateAuthRequest keeps a validated authorization request. PKCE is
// checked here, beyond what package op requires: S256 only (the plain
// method sends the verifier in the clear), and always for public clients.
func (o *oidcStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	c, err := o.s.store.OIDCClient(ctx, req.ClientID)
	if err != nil {
		return nil, err
	}
	switch {
	case req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256:
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	case req.CodeChallenge == "" && c.Public:
		return nil, oidc.ErrInvalidRequest().WithDescription("a public client must use PKCE with S256")
	}
	a := &authRequest{
		ID:                  randomID(24),
		ClientID:            req.ClientID,
		RedirectURI:         req.RedirectURI,
		State:               req.State,
		Nonce:               req.Nonce,
		Scopes:              req.Scopes,
		ResponseType:        req.ResponseType,
		ResponseMode:        req.ResponseMode,
		Prompt:              req.Prompt,
		CodeChallenge:       req.CodeChallenge,
		CodeChallengeMethod: req.CodeChallengeMethod,
		CreatedAt:           o.s.now().UTC(),
		MaxAge:              req.MaxAge,
	}
	if err := o.putJSON(ctx, ticketRequest+a.ID, a, oidcRequestLifetime); err != nil {
		return nil, err
	}
	return a, nil
}

func (o *oidcStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	b, err := o.s.store.Ticket(ctx, ticketRequest+id)
	return o.loadRequest(ctx, b, err)
}

// SaveAuthCode keeps the code, by its hash, for oidcCodeLifetime.
// A request gets one code: asking the callback again for a request that
// already has one (from the browser's history, say) is refused.
func (o *oidcStorage) SaveAuthCode(ctx context.Context, id, code string) error {
	first, err := o.s.store.Claim(ctx, "oidc-code-issued:"+id, oidcRequestLifetime)
	if err != nil {
		return err
	}
	if !first {
		return oidc.ErrInvalidRequest().WithDescription("this authorization request already has its code")
	}
	return o.s.store.PutTicket(ctx, ticketCode+hashed(code), []byte(id), oidcCodeLifetime)
}

// AuthRequestByCode takes the code from the store: it is deleted in the
// same atomic step, so a code works once, even when two requests present
// it at the same moment, and a code presented with a wrong secret is
// spent too. The request it names is taken with it.
//
// A code presented again while the tokens it gave may still live was
// most likely stolen (RFC 6749 §4.1.2, the OAuth security BCP): the
// access token of its first exchange is revoked, and the attempt is in
// the audit trail.
func (o *oidcStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	id, err := o.s.store.TakeTicket(ctx, ticketCode+hashed(code))
	if errors.Is(err, store.ErrNotFound) {
		return nil, o.replayed(ctx, code, err)
	}
	if err != nil {
		return nil, err
	}
	b, err := o.s.store.TakeTicket(ctx, ticketRequest+string(id))
	a, err := o.loadRequest(ctx, b, err)
	if err != nil {
		return nil, err
	}
	spent, err := json.Marshal(spentCode{Request: a.ID, ClientID: a.ClientID, Account: a.Grant.accountName()})
	if err != nil {
		return nil, err
	}
	if err := o.s.store.PutTicket(ctx, ticketSpent+hashed(code), spent, oidcTokenLifetime); err != nil {
		return nil, err
	}
	return a, nil
}

// spentCode is what is kept of an exchanged code (ticketSpent).
type spentCode struct {
	Request  string `json:"request"`
	ClientID string `json:"client_id"`
	Account  string `json:"account,omitempty"`
}

// accountName is the name of the account a grant is for ("" for none).
func (g *oidcGrant) accountName() string {
	if g == nil {
		return ""
	}
	return g.Account
}

// replayed answers a code that is not (or no longer) live: when it was
// exchanged before, within oidcTokenLifetime, what that exchange gave is
// revoked. notFound is returned for a code never seen.
func (o *oidcStorage) replayed(ctx context.Context, code string, notFound error) error {
	b, err := o.s.store.Ticket(ctx, ticketSpent+hashed(code))
	if errors.Is(err, store.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	var sc spentCode
	if err := json.Unmarshal(b, &sc); err != nil {
		return fmt.Errorf("decode spent code: %w", err)
	}
	// Marked first, so that an exchange still making its token finds
	// the mark after recording it (CreateAccessToken), whichever of the
	// two runs first.
	if err := o.s.store.PutTicket(ctx, ticketReplayed+sc.Request, []byte{1}, oidcTokenLifetime); err != nil {
		return err
	}
	if err := o.revokeTokenOf(ctx, sc.Request); err != nil {
		return err
	}
	err = o.audit(ctx, store.AuditEvent{Action: "oidc.token", Outcome: "failure", Actor: sc.ClientID, Target: sc.Account,
		Reason: "code_replayed: the access token of its first use is revoked"})
	if err != nil {
		return err
	}
	return oidc.ErrInvalidGrant().WithDescription("this code was already used; the tokens its first use gave are revoked")
}

// revokeTokenOf deletes the access token the code of request id gave,
// if any.
func (o *oidcStorage) revokeTokenOf(ctx context.Context, id string) error {
	tok, err := o.s.store.Ticket(ctx, ticketTokenOf+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return o.s.store.DeleteTicket(ctx, ticketToken+string(tok))
}

func (o *oidcStorage) DeleteAuthRequest(ctx context.Context, id string) error {
	return o.s.store.DeleteTicket(ctx, ticketRequest+id)
}

// CreateAccessToken keeps what the token stands for, and records the
// issue in the audit trail. The token lives oidcTokenLifetime, or less
// when the session that authorised it ends sooner.
func (o *oidcStorage) CreateAccessToken(ctx context.Context, tr op.TokenRequest) (string, time.Time, error) {
	a, ok := tr.(*authRequest)
	if !ok || a.Grant == nil {
		return "", time.Time{}, errors.New("only authorization codes are exchanged for tokens")
	}
	now := o.s.now()
	exp := now.Add(oidcTokenLifetime)
	if a.Grant.SessionEnds.Before(exp) {
		exp = a.Grant.SessionEnds
	}
	if !exp.After(now) {
		return "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the session that authorised this code has ended")
	}
	if err := o.stillStands(ctx, a.ClientID, a.Grant); err != nil {
		return "", time.Time{}, err
	}
	id := randomID(24)
	if err := o.putJSON(ctx, ticketToken+id, accessToken{ClientID: a.ClientID, Scopes: a.Scopes, Grant: a.Grant}, exp.Sub(now)); err != nil {
		return "", time.Time{}, err
	}
	// Recorded for the code's request, so that the code presented again
	// revokes it; and if that happened already, it is revoked now.
	if err := o.s.store.PutTicket(ctx, ticketTokenOf+a.ID, []byte(id), oidcTokenLifetime); err != nil {
		return "", time.Time{}, err
	}
	if _, err := o.s.store.Ticket(ctx, ticketReplayed+a.ID); err == nil {
		if err := o.s.store.DeleteTicket(ctx, ticketToken+id); err != nil {
			return "", time.Time{}, err
		}
		return "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("this code was used twice; no token is given for it")
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", time.Time{}, err
	}
	err := o.audit(ctx, store.AuditEvent{Action: "oidc.token", Outcome: "success", Actor: a.ClientID, Target: a.Grant.Account,
		ActorFactors: factorsOfAMR(a.Grant.AMR), Reason: "authorization_code"})
	if err != nil {
		return "", time.Time{}, err
	}
	return id, exp, nil
}

func (o *oidcStorage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, oidc.ErrUnsupportedGrantType().WithDescription("refresh tokens are not issued")
}

func (o *oidcStorage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, oidc.ErrUnsupportedGrantType().WithDescription("refresh tokens are not issued")
}

func (o *oidcStorage) TerminateSession(context.Context, string, string) error { return nil }

func (o *oidcStorage) RevokeToken(context.Context, string, string, string) *oidc.Error {
	return oidc.ErrInvalidRequest().WithDescription("token revocation is not offered")
}

func (o *oidcStorage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (o *oidcStorage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	k, err := o.keys.signing(ctx)
	if errors.Is(err, errNoSigningKey) {
		// The first token of a new store: make the first key, once
		// across every instance sharing the store.
		if ok, cerr := o.s.store.Claim(ctx, "oidc-first-key", time.Minute); cerr != nil {
			return nil, cerr
		} else if ok {
			if _, err := RotateOIDCKey(ctx, o.s.store, o.s.sealer, o.s.now()); err != nil {
				return nil, err
			}
		}
		k, err = o.keys.signing(ctx)
	}
	if err != nil {
		return nil, err
	}
	return k, nil
}

func (o *oidcStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{oidcKeyAlgorithm}, nil
}

// KeySet publishes every key in the store, retired ones too: tokens they
// signed verify until they expire.
func (o *oidcStorage) KeySet(ctx context.Context) ([]op.Key, error) {
	keys, err := o.keys.all(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]op.Key, len(keys))
	for i, k := range keys {
		out[i] = publicKey{k}
	}
	return out, nil
}

func (o *oidcStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := o.s.store.OIDCClient(ctx, id)
	if err != nil {
		return nil, err
	}
	return oidcClient{c}, nil
}

// AuthorizeClientIDSecret checks a confidential client's secret. The
// secret is random and long, so its SHA-256 is as good as a slow hash,
// compared in constant time. A refusal is in the audit trail.
func (o *oidcStorage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := o.s.store.OIDCClient(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return oidc.ErrServerError().WithParent(err)
	}
	if err == nil && !c.Public && c.SecretHash != "" &&
		subtle.ConstantTimeCompare([]byte(c.SecretHash), []byte(secretHash(secret))) == 1 {
		return nil
	}
	if aerr := o.audit(ctx, store.AuditEvent{Action: "oidc.token", Outcome: "failure", Actor: id, Reason: "bad_client_secret"}); aerr != nil {
		return oidc.ErrServerError().WithParent(aerr)
	}
	return errors.New("unknown client or wrong secret")
}

// secretHash is how a client secret is kept.
func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (o *oidcStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's claims from the grant, as
// it stands now.
func (o *oidcStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	a, ok := req.(*authRequest)
	if !ok || a.Grant == nil {
		return errors.New("ID token for something other than a granted authorization request")
	}
	if err := o.stillStands(ctx, a.ClientID, a.Grant); err != nil {
		return err
	}
	setUserinfo(info, a.Grant)
	return nil
}

// SetUserinfoFromToken answers /oauth2/userinfo. A token whose session has
// ended (signed out, revoked, expired) answers nothing.
func (o *oidcStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	b, err := o.s.store.Ticket(ctx, ticketToken+tokenID)
	if err != nil {
		return err
	}
	var t accessToken
	if err := json.Unmarshal(b, &t); err != nil {
		return fmt.Errorf("decode access token: %w", err)
	}
	if t.Grant == nil || t.Grant.sub() != subject {
		return errors.New("access token for another subject")
	}
	if err := o.stillStands(ctx, t.ClientID, t.Grant); err != nil {
		return fmt.Errorf("the grant behind this access token: %w", err)
	}
	setUserinfo(info, t.Grant)
	// The ID token carries these from the authorization request (GetAMR,
	// GetACR); userinfo answers them from the grant.
	info.AppendClaims("amr", slices.Clone(t.Grant.AMR))
	info.AppendClaims("acr", t.Grant.ACR)
	return nil
}

// setUserinfo sets the claims every token and userinfo answer carries.
func setUserinfo(info *oidc.UserInfo, g *oidcGrant) {
	info.Subject = g.sub()
	info.PreferredUsername = g.Account
	if g.Email != "" {
		info.Email = g.Email
	}
	info.AppendClaims("groups", slices.Clone(g.Groups))
}

func (o *oidcStorage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("introspection is not offered")
}

func (o *oidcStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (o *oidcStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT client authentication is not offered")
}

func (o *oidcStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not offered")
}

func (o *oidcStorage) Health(ctx context.Context) error { return o.s.store.Ping(ctx) }
