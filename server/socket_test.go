package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gatehouse/server"
)

// portalHost is the portal's public host name, which nginx sends as Host
// on the verify socket.
const portalHost = "portal.example.com"

// proxyClient is nginx on the verify socket: plain HTTP/1.1 over a Unix
// socket, Host the portal's public name, no cookie jar (it forwards the
// browser's Cookie header as given).
type proxyClient struct {
	t      *testing.T
	client *http.Client
	// base is the URL requests are made to (the socket's host is
	// portalHost whatever the dialer connects to).
	base string
}

// verifySocket serves the portal's verify socket handler with
// server.ProxyHTTPServer on a real Unix socket in a temporary directory,
// and returns a client of it.
func (p *portal) verifySocket(t *testing.T) *proxyClient {
	t.Helper()
	path := filepath.Join(t.TempDir(), "verify.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen on %s: %v", path, err)
	}
	srv := server.ProxyHTTPServer(p.proxy)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &proxyClient{t: t, base: "http://" + portalHost, client: &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// proxyOverTCP serves the same handler with server.ProxyHTTPServer on a
// TCP listener: a wiring mistake, which must trust nobody.
func (p *portal) proxyOverTCP(t *testing.T) *proxyClient {
	t.Helper()
	srv := httptest.NewUnstartedServer(p.proxy)
	srv.Config = server.ProxyHTTPServer(p.proxy)
	srv.Start()
	t.Cleanup(srv.Close)
	return &proxyClient{t: t, base: srv.URL, client: srv.Client()}
}

// do sends method path with header h.
func (c *proxyClient) do(method, path string, h http.Header) response {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s over the verify socket: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

// verify asks /auth/verify about original for the session cookie (none
// when empty), as nginx's auth subrequest does, with extra headers.
func (c *proxyClient) verify(cookie, original string, extra ...http.Header) response {
	c.t.Helper()
	h := http.Header{"X-Original-Url": {original}, "X-Forwarded-For": {"203.0.113.7"}}
	if cookie != "" {
		h.Set("Cookie", server.SessionCookieName+"="+cookie)
	}
	for _, x := range extra {
		for k, v := range x {
			h[k] = v
		}
	}
	return c.do(http.MethodGet, "/auth/verify", h)
}

func TestVerifySocket_AnswersForwardAuthAndNothingElse(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	withApps(t, p)
	p.addAccount("bob", bobPassword, "employee")
	bob := p.browser()
	bob.login("bob", bobPassword)
	sock := p.verifySocket(t)

	wantVerified(t, "bob on the wiki over the socket", sock.verify(bob.cookie(), "https://wiki.example.com/page"), "bob", "employee", "password")
	r := sock.verify(bob.cookie(), "https://ops.example.com:8443/console/")
	wantStatus(t, "bob on ops over the socket", r, http.StatusForbidden)

	// The login URL is built from the Host nginx sends: the portal's.
	r = sock.verify("", "https://wiki.example.com/page?x=1")
	wantStatus(t, "anonymous over the socket", r, http.StatusUnauthorized)
	if want := "https://" + portalHost + "/login?rd=" + url.QueryEscape("https://wiki.example.com/page?x=1"); r.Header.Get("Location") != want {
		t.Errorf("anonymous over the socket: Location %q, want %q", r.Header.Get("Location"), want)
	}
	// The portal's security headers, as over TLS.
	if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("over the socket: headers %v, want the portal's security headers", r.Header)
	}
	wantStatus(t, "healthz over the socket", sock.do(http.MethodGet, "/healthz", nil), http.StatusOK)

	// Nothing a browser could use: sign-in, the session, the account,
	// admin and help desk, OpenID Connect, metrics, pages, static files.
	cookie := http.Header{"Cookie": {server.SessionCookieName + "=" + bob.cookie()}}
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/"},
		{http.MethodGet, "/login"},
		{http.MethodPost, "/login"},
		{http.MethodPost, "/logout"},
		{http.MethodGet, "/api/session"},
		{http.MethodGet, "/account"},
		{http.MethodGet, "/admin"},
		{http.MethodGet, "/admin/users/bob"},
		{http.MethodGet, "/api/admin/users"},
		{http.MethodGet, "/helpdesk"},
		{http.MethodGet, "/oauth2/jwks"},
		{http.MethodGet, "/.well-known/openid-configuration"},
		{http.MethodGet, "/metrics"},
		{http.MethodGet, "/readyz"},
		{http.MethodGet, "/static/style.css"},
		{http.MethodPost, "/auth/verify"},
		{http.MethodGet, "/auth/verify/x"},
	} {
		r := sock.do(tc.method, tc.path, cookie)
		what := tc.method + " " + tc.path + " over the socket"
		wantStatus(t, what, r, http.StatusNotFound)
		if r.JSON(t)["code"] == nil || !strings.Contains(r.Body, `"code":"not_found"`) {
			t.Errorf("%s: %s, want the JSON error not_found", what, r.Body)
		}
	}
}

func TestVerifySocket_ForwardedCertificateCountsAsFromATrustedProxy(t *testing.T) {
	t.Parallel()
	p := newPortal(t) // no --trusted-proxy: the socket alone is trusted
	withApps(t, p)
	laptop := p.browser(p.AdminCert)
	laptop.login("admin", adminPassword)
	cookie := laptop.cookie()
	const ops = "https://ops.example.com:8443/console/"
	sock := p.verifySocket(t)

	// nginx forwards the certificate the browser presented to it.
	for form, cert := range forwardedForms(p) {
		if _, ok := cert["X-Client-Cert"]; !ok {
			continue // the other header: see below
		}
		wantVerified(t, form+" form over the socket", sock.verify(cookie, ops, cert), "admin", "admin,employee", "password,certificate")
	}
	// Without it, the session is password-only.
	wantStatus(t, "no certificate over the socket", sock.verify(cookie, ops), http.StatusForbidden)
	wantVerified(t, "no certificate over the socket, on the wiki", sock.verify(cookie, "https://wiki.example.com/"), "admin", "employee", "password")
	// The forwarded-certificate checks hold on the socket too.
	r := sock.verify(cookie, ops, forwardedForms(p)["Traefik"])
	wantStatus(t, "Traefik's header over the socket (X-Client-Cert configured)", r, http.StatusBadRequest)
	if !strings.Contains(r.Body, "wrong_client_cert_header") || r.Header.Get("Remote-User") != "" {
		t.Errorf("Traefik's header over the socket: %s, want wrong_client_cert_header and no user", r.Body)
	}
	r = sock.verify(cookie, ops, http.Header{"X-Client-Cert": {escapedPEM(p), ""}})
	wantStatus(t, "X-Client-Cert twice over the socket", r, http.StatusBadRequest)

	// The same header over TLS from an address that is no trusted proxy
	// counts for nothing.
	thief := p.browser()
	thief.setCookie(cookie)
	wantStatus(t, "forwarded certificate over TLS from a client", thief.verify(ops, forwardedForms(p)["nginx"]), http.StatusForbidden)
	// Nor does the socket's handler trust a TCP connection.
	tcp := p.proxyOverTCP(t)
	wantStatus(t, "forwarded certificate to the socket's handler over TCP", tcp.verify(cookie, ops, forwardedForms(p)["nginx"]), http.StatusForbidden)
}
