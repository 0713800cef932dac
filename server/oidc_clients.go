package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"gatehouse/store"
)

// Limits on a client's registration.
const (
	maxRedirectURIs     = 10
	maxRedirectURIBytes = 2000
	// clientSecretBytes of randomness make a secret no one can guess,
	// which is why its SHA-256 is enough to keep (see secretHash).
	clientSecretBytes = 32
)

// CheckRedirectURI checks one redirect URI of a client: an absolute URL
// without a fragment, https, or http to a loopback address for a public
// (native) client, as RFC 8252 §7.3 allows. A code is only ever sent to
// a registered URI that matches exactly. The admin API and the command
// line both call it.
func CheckRedirectURI(raw string, public bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		return fmt.Errorf("redirect URI %q is not an absolute URL such as https://app.example.com/callback", raw)
	case len(raw) > maxRedirectURIBytes:
		return fmt.Errorf("redirect URI %q is longer than %d bytes", raw[:40]+"…", maxRedirectURIBytes)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("redirect URI %q has a fragment (#…); OAuth does not allow one", raw)
	case u.User != nil:
		return fmt.Errorf("redirect URI %q holds a user name or password", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && public && isLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return fmt.Errorf("redirect URI %q: http is allowed only to a loopback address of a public client (an app on the person's own machine)", raw)
	}
	return fmt.Errorf("redirect URI %q must use https", raw)
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewOIDCClient checks a client's registration as PUT
// /api/admin/oidc-clients/{id} does and returns the record to keep,
// based on old (nil for a new client). A confidential client gets a new
// secret when it is new, becomes confidential or newSecret is set; the
// secret is returned to show once, and only its hash is kept. The admin
// API and the command line both call it; the caller checks that the
// roles exist.
func NewOIDCClient(old *store.OIDCClient, id string, redirectURIs, roles []string, public, newSecret bool, now time.Time) (store.OIDCClient, string, error) {
	if err := CheckAppName(id); err != nil {
		return store.OIDCClient{}, "", errors.New(strings.Replace(err.Error(), "app", "client", 1))
	}
	if len(redirectURIs) == 0 || len(redirectURIs) > maxRedirectURIs {
		return store.OIDCClient{}, "", fmt.Errorf("give the client between 1 and %d redirect URIs", maxRedirectURIs)
	}
	for _, u := range redirectURIs {
		if err := CheckRedirectURI(u, public); err != nil {
			return store.OIDCClient{}, "", err
		}
	}
	if len(roles) == 0 {
		return store.OIDCClient{}, "", errors.New("give the client at least one role that may use it")
	}
	c := store.OIDCClient{ID: id, RedirectURIs: slices.Compact(slices.Clone(redirectURIs)), Roles: slices.Compact(slices.Sorted(slices.Values(roles))),
		Public: public, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
	if old != nil {
		c.CreatedAt, c.SecretHash = old.CreatedAt, old.SecretHash
	}
	var secret string
	switch {
	case public:
		c.SecretHash = ""
	case c.SecretHash == "" || newSecret:
		b := make([]byte, clientSecretBytes)
		rand.Read(b)
		secret = base64.RawURLEncoding.EncodeToString(b)
		c.SecretHash = secretHash(secret)
	}
	return c, secret, nil
}

// oidcClientJSON is a client in the admin API. Secret is there only in
// the answer that made it.
type oidcClientJSON struct {
	ID           string    `json:"id"`
	RedirectURIs []string  `json:"redirect_uris"`
	Roles        []string  `json:"roles"`
	Public       bool      `json:"public"`
	NewSecret    bool      `json:"new_secret,omitempty"`
	Secret       string    `json:"client_secret,omitempty"`
	CreatedAt    time.Time `json:"created_at,omitzero"`
	UpdatedAt    time.Time `json:"updated_at,omitzero"`
}

// issuedClient is a client as just stored, with its new secret if any.
type issuedClient struct {
	store.OIDCClient
	secret string
}

func oidcClientView(c store.OIDCClient) oidcClientJSON {
	return oidcClientJSON{ID: c.ID, RedirectURIs: nonNil(c.RedirectURIs), Roles: nonNil(c.Roles), Public: c.Public,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

func issuedClientView(c issuedClient) oidcClientJSON {
	j := oidcClientView(c.OIDCClient)
	j.Secret = c.secret
	return j
}

// putOIDCClient creates or replaces a client, in the audit trail.
func (s *Server) putOIDCClient(r *http.Request, v *visit, in oidcClientJSON) (issuedClient, bool, error) {
	var old *store.OIDCClient
	switch c, err := s.store.OIDCClient(r.Context(), in.ID); {
	case err == nil:
		old = &c
	case !errors.Is(err, store.ErrNotFound):
		return issuedClient{}, false, err
	}
	roles, err := s.checkRoles(r, in.Roles)
	if err != nil {
		if e := asError(err); e.Code == "no_roles" {
			e.Message = "give the client at least one role that may use it"
		}
		return issuedClient{}, false, err
	}
	c, secret, err := NewOIDCClient(old, in.ID, in.RedirectURIs, roles, in.Public, in.NewSecret, s.now())
	if err != nil {
		return issuedClient{}, false, invalid("bad_client", err)
	}
	if err := s.store.PutOIDCClient(r.Context(), c); err != nil {
		return issuedClient{}, false, err
	}
	reason := fmt.Sprintf("redirect_uris %s roles %s public %t", strings.Join(c.RedirectURIs, " "), strings.Join(c.Roles, ","), c.Public)
	if secret != "" {
		reason += " new secret"
	}
	return issuedClient{c, secret}, old == nil, s.audit(r, actorEvent(v, "admin.oidc_client.put", c.ID, reason))
}

// deleteOIDCClient removes a client: it gets no more codes, and its codes
// and tokens stop working as they expire.
func (s *Server) deleteOIDCClient(r *http.Request, v *visit, id string) error {
	if _, err := s.store.OIDCClient(r.Context(), id); errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Code: "no_such_client", Message: fmt.Sprintf("there is no OpenID Connect client %q", id)}
	} else if err != nil {
		return err
	}
	if err := s.store.DeleteOIDCClient(r.Context(), id); err != nil {
		return err
	}
	return s.audit(r, actorEvent(v, "admin.oidc_client.delete", id, ""))
}

// oidcClientsPage is the content of /admin/oidc-clients.
type oidcClientsPage struct {
	Console
	Clients []store.OIDCClient
	Roles   []roleChoice
	New     oidcClientJSON
	// Issued is the client just saved with its new secret, shown once.
	Issued *oidcClientJSON
}

func (s *Server) showOIDCClients(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string) {
	s.showOIDCClientsIssued(w, r, v, status, msg, nil)
}

func (s *Server) showOIDCClientsIssued(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string, issued *oidcClientJSON) {
	d := oidcClientsPage{Console: s.console(r, v, "oidc"), Issued: issued}
	var err error
	if d.Clients, err = s.store.OIDCClients(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	// A saved client's page shows a fresh form; a refused one's, the
	// form as posted.
	again := r.Method == http.MethodPost && issued == nil
	if again {
		d.New = oidcClientFromForm(r)
	}
	if d.Roles, err = s.formRoleChoices(r, d.New.Roles, again); err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, status, "admin_oidc_clients.html", page{Title: "OpenID Connect apps", Visit: v, Error: msg, Data: d})
}

func oidcClientFromForm(r *http.Request) oidcClientJSON {
	return oidcClientJSON{ID: strings.TrimSpace(r.PostFormValue("id")), RedirectURIs: strings.Fields(r.PostFormValue("redirect_uris")),
		Roles: r.PostForm["roles"], Public: formBool(r, "public"), NewSecret: formBool(r, "new_secret")}
}

func (s *Server) pageAdminOIDCClients(w http.ResponseWriter, r *http.Request, v *visit) {
	s.showOIDCClients(w, r, v, http.StatusOK, "")
}

// formPutOIDCClient saves a client; a new secret is shown on the page
// that answers the form, once, instead of the usual redirect.
func (s *Server) formPutOIDCClient(w http.ResponseWriter, r *http.Request, v *visit) {
	if !s.parseForm(w, r) {
		return
	}
	c, _, err := s.putOIDCClient(r, v, oidcClientFromForm(r))
	if err == nil && c.secret != "" {
		j := issuedClientView(c)
		s.showOIDCClientsIssued(w, r, v, http.StatusOK, "", &j)
		return
	}
	s.afterForm(w, r, v, err, "/admin/oidc-clients", "oidc-client", s.showOIDCClients)
}

func (s *Server) formDeleteOIDCClient(w http.ResponseWriter, r *http.Request, v *visit) {
	err := s.deleteOIDCClient(r, v, r.PathValue("name"))
	s.afterForm(w, r, v, err, "/admin/oidc-clients", "oidc-client-deleted", s.showOIDCClients)
}
