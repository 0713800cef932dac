package tests

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// resumeAttempts bounds how many new connections a test opens waiting
// for one that resumes its TLS session. With a session cache, the second
// connection normally resumes.
const resumeAttempts = 5

// resumingClient is an HTTPS client of a portal that opens a new TCP
// connection for every request and keeps TLS sessions in a cache, so
// that every connection after the first can resume a TLS session
// instead of running a full handshake. Go's server restores the client
// certificate of a resumed session from the ticket, without asking for
// one and without running any verification callback.
type resumingClient struct {
	p  *portal
	hc *http.Client
	// dials counts the TCP connections opened.
	dials atomic.Int32
}

// resumingClient returns a new resumingClient of p presenting cert (or
// none when nil) in full handshakes, at most TLS version maxVersion (0
// for the highest).
func (p *portal) resumingClient(t *testing.T, cert *tls.Certificate, maxVersion uint16) *resumingClient {
	t.Helper()
	pool, err := p.caPool()
	if err != nil {
		t.Fatal(err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := &resumingClient{p: p}
	addr := p.Addr
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			rc.dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig: &tls.Config{
			RootCAs:            pool,
			MinVersion:         tls.VersionTLS12,
			MaxVersion:         maxVersion,
			ClientSessionCache: tls.NewLRUClientSessionCache(8),
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if cert == nil {
					return &tls.Certificate{}, nil
				}
				return cert, nil
			},
		},
		// A new connection, so a new (resumed) handshake, per request.
		DisableKeepAlives:   true,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	rc.hc = &http.Client{
		Transport:     tr,
		Jar:           jar,
		Timeout:       requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return rc
}

// do sends req and returns the response and the TLS state of the
// connection it came over.
func (rc *resumingClient) do(t *testing.T, req *http.Request) (response, tls.ConnectionState) {
	t.Helper()
	resp, err := rc.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	if resp.TLS == nil {
		t.Fatalf("%s %s: the response came without TLS", req.Method, req.URL.Path)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(body), SetCookies: resp.Cookies()}, *resp.TLS
}

// request makes a request to path on the portal carrying the session
// cookie value (none when empty) besides the client's own cookies.
func (rc *resumingClient) request(t *testing.T, method, path string, body io.Reader, cookie string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, rc.p.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	}
	return req
}

// getResumed gets path, carrying cookie (when not empty), over new
// connections until one resumes its TLS session, and fails the test when
// none of resumeAttempts does: without resumption the test would prove
// nothing about resumed connections.
func (rc *resumingClient) getResumed(t *testing.T, path, cookie string) response {
	t.Helper()
	for range resumeAttempts {
		before := rc.dials.Load()
		r, state := rc.do(t, rc.request(t, http.MethodGet, path, nil, cookie))
		if rc.dials.Load() == before {
			t.Fatalf("GET %s reused a connection; every request should open a new one", path)
		}
		if state.DidResume {
			return r
		}
	}
	t.Fatalf("none of %d new connections resumed its TLS session (session tickets off, or the client cache unused?): the test cannot show that checks run on resumed connections", resumeAttempts)
	return response{}
}

func TestTLSResumption_DoesNotSkipChecks(t *testing.T) {
	t.Parallel()
	p := startPortal(t)

	for _, tc := range []struct {
		name    string
		version uint16
	}{
		{"TLS 1.3", tls.VersionTLS13},
		{"TLS 1.2", tls.VersionTLS12},
	} {
		t.Run("revoked certificate on a resumed "+tc.name+" connection", func(t *testing.T) {
			t.Parallel()
			// A certificate of its own, so that revoking it leaves the
			// other subtests alone.
			prefix := filepath.Join(t.TempDir(), "admin")
			p.cli(t, "", "cert", "issue", "admin", "--out", prefix)
			cert := loadCert(t, prefix)
			fp := fingerprintOfFile(t, prefix+".crt")
			rc := p.resumingClient(t, &cert, tc.version)

			// Connection 1: a full handshake presenting the certificate.
			login := rc.request(t, http.MethodPost, "/login", strings.NewReader(loginForm("admin", p.AdminPassword).Encode()), "")
			login.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r, state := rc.do(t, login)
			wantRedirect(t, r, "/")
			if state.DidResume {
				t.Fatal("the very first connection resumed a TLS session")
			}
			if state.Version != tc.version {
				t.Fatalf("negotiated TLS version %x, want %x", state.Version, tc.version)
			}

			// Before the revocation, a resumed connection carries the
			// certificate restored from the ticket: the session keeps admin.
			s := decodeSession(t, rc.getResumed(t, "/api/session", ""))
			if !slices.Contains(s.EffectiveRoles, "admin") || s.Certificate == nil || s.Certificate.Fingerprint != fp {
				t.Fatalf("over a resumed connection before the revocation: effective_roles %q, certificate %+v, notices %q; want admin with certificate %s",
					s.EffectiveRoles, s.Certificate, s.Notices, fp)
			}

			p.cli(t, "", "cert", "revoke", fp, "--reason", "resumption test")

			s = decodeSession(t, rc.getResumed(t, "/api/session", ""))
			wantRevoked(t, s)
		})
	}

	t.Run("stolen cookie on a resumed connection without a certificate", func(t *testing.T) {
		t.Parallel()
		adminCert := p.adminCert(t)
		owner := p.client(t, &adminCert)
		wantRedirect(t, owner.login(t, "admin", p.AdminPassword), "/")
		stolen := owner.cookieValue(t)
		if s := owner.session(t); !slices.Contains(s.EffectiveRoles, "admin") {
			t.Fatalf("the owner's own session lacks admin: %+v", s)
		}

		thief := p.resumingClient(t, nil, 0)
		if _, state := thief.do(t, thief.request(t, http.MethodGet, "/healthz", nil, "")); state.DidResume {
			t.Fatal("the thief's first connection resumed a TLS session")
		}
		s := decodeSession(t, thief.getResumed(t, "/api/session", stolen))
		if s.User != "admin" {
			t.Errorf("user = %q, want admin (the cookie is still a password session)", s.User)
		}
		if diff := cmp.Diff([]string{"employee"}, s.EffectiveRoles); diff != "" {
			t.Errorf("effective_roles (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"password"}, s.Factors); diff != "" {
			t.Errorf("factors (-want +got):\n%s", diff)
		}
		wantNotice(t, s, "did not present the certificate you signed in with")
	})
}
