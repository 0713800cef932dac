package tests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// sessionCookie is the name of the portal's session cookie.
const sessionCookie = "__Host-gatehouse"

// requestTimeout only guards against a hung test; no assertion depends
// on how long a request takes.
const requestTimeout = time.Minute

// caPool returns a pool that holds only DATA/pki/ca.crt: the clients
// trust the portal's own CA and nothing else.
func (p *portal) caPool() (*x509.CertPool, error) {
	b, err := os.ReadFile(filepath.Join(p.Data, "pki", "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("DATA/pki/ca.crt holds no PEM certificate")
	}
	return pool, nil
}

// transport connects to the portal's listen address whatever the URL's
// host resolves to, so that requests go to https://localhost:PORT (the
// name a browser would use, and the TLS server name) without depending on
// how this machine resolves localhost. When the server asks for a client
// certificate, it gets cert (or none when cert is nil) and requested is
// incremented.
func (p *portal) transport(roots *x509.CertPool, cert *tls.Certificate, requested *atomic.Int32) *http.Transport {
	addr := p.Addr
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig: &tls.Config{
			RootCAs:    roots,
			MinVersion: tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if requested != nil {
					requested.Add(1)
				}
				if cert == nil {
					return &tls.Certificate{}, nil // present no certificate
				}
				return cert, nil
			},
		},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
	}
}

// client is a browser-like HTTPS client of one portal: it trusts only the
// portal's CA, presents one client certificate (or none) on every
// connection, keeps cookies, and does not follow redirects so that tests
// can see them.
type client struct {
	p *portal
	// jar is the client with a cookie jar; bare shares its transport (and
	// so its certificate) but sends only the cookies a test gives it.
	jar, bare *http.Client
	// certRequests counts the handshakes in which the server asked for a
	// client certificate.
	certRequests atomic.Int32
}

// client returns a new client of p presenting cert, or no certificate
// when cert is nil.
func (p *portal) client(t *testing.T, cert *tls.Certificate) *client {
	t.Helper()
	pool, err := p.caPool()
	if err != nil {
		t.Fatal(err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{p: p}
	tr := p.transport(pool, cert, &c.certRequests)
	t.Cleanup(tr.CloseIdleConnections)
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.jar = &http.Client{Transport: tr, Jar: jar, CheckRedirect: noRedirect, Timeout: requestTimeout}
	c.bare = &http.Client{Transport: tr, CheckRedirect: noRedirect, Timeout: requestTimeout}
	return c
}

// response is what a test looks at: the body is read in full.
type response struct {
	Status int
	Header http.Header
	Body   string
	// SetCookies are the cookies the response set.
	SetCookies []*http.Cookie
}

// location is the redirect target.
func (r response) location() string { return r.Header.Get("Location") }

// sessionCookie returns the session cookie the response set, or nil.
func (r response) sessionCookie() *http.Cookie {
	for _, c := range r.SetCookies {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

// send sends req with hc and reads the whole response.
func send(t *testing.T, hc *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	for _, c := range resp.Cookies() {
		noteSecret(c.Value)
	}
	for _, c := range req.Cookies() {
		noteSecret(c.Value)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(body), SetCookies: resp.Cookies()}
}

// newRequest makes a request to path on the portal; form, when not nil,
// is sent as an urlencoded body.
func (c *client) newRequest(t *testing.T, method, path string, form url.Values) *http.Request {
	t.Helper()
	var body io.Reader
	if form != nil {
		noteFormSecrets(form)
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, c.p.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return req
}

// get sends GET path with the client's cookies.
func (c *client) get(t *testing.T, path string) response {
	t.Helper()
	return send(t, c.jar, c.newRequest(t, http.MethodGet, path, nil))
}

// post sends POST path with the form and the client's cookies.
func (c *client) post(t *testing.T, path string, form url.Values) response {
	t.Helper()
	return send(t, c.jar, c.newRequest(t, http.MethodPost, path, form))
}

// login posts the login form.
func (c *client) login(t *testing.T, username, password string) response {
	t.Helper()
	return c.post(t, "/login", loginForm(username, password))
}

func loginForm(username, password string) url.Values {
	return url.Values{"username": {username}, "password": {password}}
}

// withCookie sends a request carrying exactly one cookie,
// __Host-gatehouse=value, and none from the client's jar: a stolen or
// planted cookie, replayed over this client's connection.
func (c *client) withCookie(t *testing.T, method, path string, form url.Values, value string) response {
	t.Helper()
	req := c.newRequest(t, method, path, form)
	req.Header.Set("Cookie", sessionCookie+"="+value)
	return send(t, c.bare, req)
}

// cookieValue is the value of the session cookie in the client's jar.
func (c *client) cookieValue(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(c.p.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range c.jar.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			return ck.Value
		}
	}
	t.Fatalf("the client holds no %s cookie", sessionCookie)
	return ""
}

// sessionInfo is the body of GET /api/session.
type sessionInfo struct {
	User           string    `json:"user"`
	Roles          []string  `json:"roles"`
	EffectiveRoles []string  `json:"effective_roles"`
	Factors        []string  `json:"factors"`
	Certificate    *certInfo `json:"certificate"`
	ExpiresAt      time.Time `json:"expires_at"`
	Notices        []string  `json:"notices"`
}

type certInfo struct {
	Subject     string    `json:"subject"`
	Fingerprint string    `json:"fingerprint"`
	NotAfter    time.Time `json:"not_after"`
}

// apiError is the body of every JSON error.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// session gets /api/session with the client's cookies and wants 200.
func (c *client) session(t *testing.T) sessionInfo {
	t.Helper()
	return decodeSession(t, c.get(t, "/api/session"))
}

// sessionWithCookie gets /api/session carrying only the given cookie
// value over this client's connection, and wants 200.
func (c *client) sessionWithCookie(t *testing.T, value string) sessionInfo {
	t.Helper()
	return decodeSession(t, c.withCookie(t, http.MethodGet, "/api/session", nil, value))
}

func decodeSession(t *testing.T, r response) sessionInfo {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	var s sessionInfo
	decodeJSON(t, r, &s)
	return s
}

// wantUnauthenticated checks the JSON answer to a request without a
// usable session: 401 {"error": "...", "code": "unauthenticated"}.
func wantUnauthenticated(t *testing.T, r response) {
	t.Helper()
	wantStatus(t, r, http.StatusUnauthorized)
	var e apiError
	decodeJSON(t, r, &e)
	if e.Code != "unauthenticated" || e.Error == "" {
		t.Errorf("401 body = %+v, want code %q and a message", e, "unauthenticated")
	}
}

func decodeJSON(t *testing.T, r response, v any) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want application/json; body:\n%s", ct, r.Body)
	}
	if err := json.Unmarshal([]byte(r.Body), v); err != nil {
		t.Fatalf("decode JSON: %v; body:\n%s", err, r.Body)
	}
}

func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body:\n%s", r.Status, status, r.Body)
	}
}

// wantRedirect checks a 303 See Other to location.
func wantRedirect(t *testing.T, r response, location string) {
	t.Helper()
	wantStatus(t, r, http.StatusSeeOther)
	if got := r.location(); got != location {
		t.Fatalf("Location = %q, want %q", got, location)
	}
}

// wantNotice checks that one of the notices contains text.
func wantNotice(t *testing.T, s sessionInfo, text string) {
	t.Helper()
	if !slices.ContainsFunc(s.Notices, func(n string) bool { return strings.Contains(n, text) }) {
		t.Errorf("notices = %q, want one containing %q", s.Notices, text)
	}
}
