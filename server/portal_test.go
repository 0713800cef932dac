package server_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/securecookie"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/server"
	"gatehouse/store"
	"gatehouse/store/redisstore"
	"gatehouse/store/storetest"
)

// adminPassword is the password of the "admin" account every portal
// starts with.
const adminPassword = "correct horse battery staple"

// testBcryptCost keeps tests fast: bcrypt.MinCost.
const testBcryptCost = 4

// pollWait bounds how long a test polls for something that happens by
// itself (Redis coming back).
const pollWait = 10 * time.Second

// externalRedis serialises tests when GATEHOUSE_TEST_REDIS names one shared
// server: StartRedis empties it and each test seeds its own accounts.
var externalRedis sync.Mutex

// clock is the portal's clock, moved by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and returns the new time.
func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// portal is a Gatehouse handler served over real TLS by httptest, on a
// Redis of its own, with a CA, an admin account and a clock the test
// controls.
type portal struct {
	t      testing.TB
	redis  *storetest.Redis
	store  *redisstore.Store
	ca     *ca.CA
	key    []byte
	clock  *clock
	srv    *httptest.Server
	url    *url.URL
	hasher *auth.Hasher
	logs   *lockedBuffer
	// sealer and recoveryKey are the portal's TOTP keys.
	sealer      *auth.Sealer
	recoveryKey []byte
	// nameKey is the portal's Config.UnknownNameKey.
	nameKey []byte
	// cfg is the Config the portal was made with.
	cfg server.Config
	// proxy is the verify socket's handler (Server.ProxyHandler).
	proxy http.Handler

	// AdminCert is a client certificate for "admin" (CN "admin").
	AdminCert tls.Certificate
	// AdminLeaf is AdminCert's leaf.
	AdminLeaf *x509.Certificate
}

// newPortal starts a portal for t. redisArgs go to redis-server.
func newPortal(t testing.TB, redisArgs ...string) *portal {
	t.Helper()
	return newPortalWith(t, nil, redisArgs...)
}

// newPortalWith is newPortal with configure applied to the server's
// Config before the server is made.
func newPortalWith(t testing.TB, configure func(*server.Config), redisArgs ...string) *portal {
	t.Helper()
	if os.Getenv("GATEHOUSE_TEST_REDIS") != "" {
		// Lock before StartRedis, which empties the shared server.
		externalRedis.Lock()
		t.Cleanup(externalRedis.Unlock)
	}
	r := storetest.StartRedis(t, redisArgs...)
	st, err := redisstore.Open(t.Context(), r.URL)
	if err != nil {
		t.Fatalf("open Redis store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Mark(t.Context()); err != nil { // as gatehouse init does
		t.Fatalf("mark the store: %v", err)
	}

	start := time.Now().Round(0).Truncate(time.Second)
	clk := &clock{now: start}
	authority, err := ca.New("Gatehouse test CA", start)
	if err != nil {
		t.Fatalf("create CA: %v", err)
	}
	hasher, err := auth.NewHasher(testBcryptCost)
	if err != nil {
		t.Fatalf("new hasher: %v", err)
	}
	key := make([]byte, server.MinSessionKeyBytes)
	rand.Read(key)
	roots := x509.NewCertPool()
	roots.AddCert(authority.Cert)
	logs := &lockedBuffer{}
	t.Cleanup(func() { // runs after the server has closed
		if t.Failed() {
			t.Logf("portal log:\n%s", logs.String())
		}
		if strings.Contains(logs.String(), adminPassword) {
			t.Errorf("the portal logged a password")
		}
	})

	totpKey := make([]byte, auth.SecretKeyBytes)
	rand.Read(totpKey)
	sealer, err := auth.NewSealer(totpKey)
	if err != nil {
		t.Fatal(err)
	}
	recoveryKey := make([]byte, 32)
	rand.Read(recoveryKey)
	nameKey := make([]byte, 32)
	rand.Read(nameKey)
	cfg := server.Config{
		Sealer:         sealer,
		RecoveryKey:    recoveryKey,
		UnknownNameKey: nameKey,
		Store:          st,
		Verifier:       &auth.CertVerifier{Roots: roots, Revoked: st.IsRevoked},
		Hasher:         hasher,
		SessionKey:     key,
		Issuer:         authority,
		Now:            clk.Now,
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if configure != nil {
		configure(&cfg)
	}
	gh, err := server.NewServer(cfg)
	if err != nil {
		t.Fatalf("server.NewServer: %v", err)
	}
	handler := gh.Handler()

	serverCert, err := authority.IssueServer([]string{"127.0.0.1"}, start)
	if err != nil {
		t.Fatalf("issue server certificate: %v", err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = server.TLSConfig(tlsCertificate(serverCert), roots)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}

	p := &portal{t: t, redis: r, store: st, ca: authority, key: key, clock: clk, srv: srv, url: u, hasher: hasher, logs: logs, sealer: sealer, recoveryKey: recoveryKey, nameKey: cfg.UnknownNameKey, cfg: cfg, proxy: gh.ProxyHandler()}

	ctx := t.Context()
	for _, role := range []store.Role{
		{Name: "admin", RequireCertificate: true},
		{Name: "employee"},
		{Name: "helpdesk", RequireCertificate: true},
	} {
		if err := st.PutRole(ctx, role); err != nil {
			t.Fatalf("put role %s: %v", role.Name, err)
		}
	}
	p.addAccount("admin", adminPassword, "admin", "employee")

	issued, err := authority.IssueClient(ca.ClientRequest{Name: "admin"}, start)
	if err != nil {
		t.Fatalf("issue client certificate: %v", err)
	}
	p.AdminCert = tlsCertificate(issued)
	p.AdminLeaf = issued.Cert
	return p
}

// addAccount creates an account with a bcrypt hash of password.
func (p *portal) addAccount(name, password string, roles ...string) {
	p.t.Helper()
	hash, err := p.hasher.Hash(p.t.Context(), password)
	if err != nil {
		p.t.Fatalf("hash password of %s: %v", name, err)
	}
	now := p.clock.Now()
	err = p.store.CreateAccount(p.t.Context(), store.Account{
		Name: name, PasswordHash: hash, Roles: roles, CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		p.t.Fatalf("create account %s: %v", name, err)
	}
}

// session returns the stored record of a session, or fails the test.
func (p *portal) session(id string) store.Session {
	p.t.Helper()
	rec, err := p.store.Session(p.t.Context(), id)
	if err != nil {
		p.t.Fatalf("load session record: %v", err)
	}
	return rec
}

// sessionGone fails the test unless the store has no record with id.
func (p *portal) sessionGone(id string) {
	p.t.Helper()
	if rec, err := p.store.Session(p.t.Context(), id); !errors.Is(err, store.ErrNotFound) {
		p.t.Errorf("session record %.8s… = %+v, %v; want store.ErrNotFound", id, rec, err)
	}
}

// signCookie signs a session ID with the portal's key the way the portal
// does, so a test can present an ID the portal never issued.
func (p *portal) signCookie(id string) string {
	p.t.Helper()
	return signCookie(p.t, p.key, id)
}

func signCookie(t testing.TB, key []byte, id string) string {
	t.Helper()
	codec := securecookie.New(key, nil)
	codec.SetSerializer(securecookie.JSONEncoder{})
	v, err := codec.Encode(server.SessionCookieName, id)
	if err != nil {
		t.Fatalf("sign cookie: %v", err)
	}
	return v
}

func tlsCertificate(is *ca.Issued) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{is.Cert.Raw}, PrivateKey: is.Key, Leaf: is.Cert}
}

// browser is an HTTPS client of the portal: it trusts the test CA, keeps
// cookies, presents a client certificate when given one, and does not
// follow redirects.
type browser struct {
	t      testing.TB
	p      *portal
	client *http.Client
	jar    *cookiejar.Jar
}

// browser returns a new client; certs are its client certificates.
func (p *portal) browser(certs ...tls.Certificate) *browser {
	p.t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	jar, err := cookiejar.New(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}
	p.t.Cleanup(tr.CloseIdleConnections)
	return &browser{
		t: p.t,
		p: p,
		client: &http.Client{
			Transport:     tr,
			Jar:           jar,
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		jar: jar,
	}
}

// response is what a request got back, read in full.
type response struct {
	Status int
	Header http.Header
	Body   string
}

// JSON decodes the body into a map of raw values, failing on anything
// that is not a JSON object.
func (r response) JSON(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want application/json; body: %s", ct, r.Body)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("decode JSON body %q: %v", r.Body, err)
	}
	return m
}

var alertRE = regexp.MustCompile(`(?s)<p class="alert" role="alert">(.*?)</p>`)

// Alert returns the error message a page shows, or "".
func (r response) Alert() string {
	m := alertRE.FindStringSubmatch(r.Body)
	if m == nil {
		return ""
	}
	return m[1]
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

func (b *browser) newRequest(method, path string, body io.Reader) *http.Request {
	b.t.Helper()
	req, err := http.NewRequestWithContext(b.t.Context(), method, b.p.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	return req
}

// get requests path; header, when given, is added to the request.
func (b *browser) get(path string, header ...http.Header) response {
	b.t.Helper()
	req := b.newRequest(http.MethodGet, path, nil)
	for _, h := range header {
		for k, v := range h {
			req.Header[k] = v
		}
	}
	return b.do(req)
}

// post sends form to path; header, when given, is added to the request.
func (b *browser) post(path string, form url.Values, header ...http.Header) response {
	b.t.Helper()
	req := b.newRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, h := range header {
		for k, v := range h {
			req.Header[k] = v
		}
	}
	return b.do(req)
}

// login signs in and fails the test unless the portal answers 303.
func (b *browser) login(user, password string) response {
	b.t.Helper()
	resp := b.post("/login", url.Values{"username": {user}, "password": {password}})
	if resp.Status != http.StatusSeeOther {
		b.t.Fatalf("login as %s: status %d, want 303; alert %q", user, resp.Status, resp.Alert())
	}
	return resp
}

// cookie returns the session cookie's value, or "".
func (b *browser) cookie() string {
	for _, c := range b.jar.Cookies(b.p.url) {
		if c.Name == server.SessionCookieName {
			return c.Value
		}
	}
	return ""
}

// setCookie plants a session cookie value, as an attacker or a broken
// client would.
func (b *browser) setCookie(value string) {
	b.jar.SetCookies(b.p.url, []*http.Cookie{{Name: server.SessionCookieName, Value: value, Path: "/", Secure: true}})
}

// sessionID decodes the browser's session cookie with the portal's key.
func (b *browser) sessionID() string {
	b.t.Helper()
	v := b.cookie()
	if v == "" {
		b.t.Fatal("the browser has no session cookie")
	}
	codec := securecookie.New(b.p.key, nil)
	codec.SetSerializer(securecookie.JSONEncoder{})
	var id string
	if err := codec.Decode(server.SessionCookieName, v, &id); err != nil {
		b.t.Fatalf("decode session cookie: %v", err)
	}
	return id
}

// wantStatus fails the test unless resp has the wanted status.
func wantStatus(t *testing.T, what string, resp response, want int) {
	t.Helper()
	if resp.Status != want {
		t.Fatalf("%s: status %d, want %d; body: %.300s", what, resp.Status, want, resp.Body)
	}
}

// lockedBuffer is an io.Writer safe for the portal's concurrent logging.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
