package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"gatehouse/server"
)

// serveInProcess sends one request straight to h, as from this machine,
// with ctx as the request's context, and returns the recorded answer.
func serveInProcess(t *testing.T, h http.Handler, ctx context.Context, method, target string, header http.Header, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:40000"
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// A client that closes its connection mid-request (wrk at the end of a
// run, a browser tab closed) cancels the request's context, and the
// store call under way fails with "context canceled". That is the
// client's doing: the answer is nginx's 499, logged at DEBUG, counted
// as a hang-up, never as a store error or a 503 verify answer. A real
// outage still is one.
func TestClientHangUp_IsNotAStoreError(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	withApps(t, p)
	p.addAccount("bob", bobPassword, "employee")
	bob := p.browser()
	bob.login("bob", bobPassword)
	cookie := http.Header{"Cookie": {server.SessionCookieName + "=" + bob.cookie()}}
	// A portal of its own on the same store, so that its metrics count
	// only these requests.
	h, err := server.New(p.cfg)
	if err != nil {
		t.Fatal(err)
	}

	gone, cancel := context.WithCancel(t.Context())
	cancel()
	original := http.Header{"X-Original-Url": {"https://wiki.example.com/"}}
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for _, tc := range []struct {
		name, method, target string
		header               http.Header
		body                 string
	}{
		{"verify, signed in", http.MethodGet, "/auth/verify", with(original, cookie), ""},
		{"verify, anonymous", http.MethodGet, "/auth/verify", original, ""},
		{"session API", http.MethodGet, "/api/session", cookie, ""},
		{"home page", http.MethodGet, "/", cookie, ""},
		{"sign-in", http.MethodPost, "/login", form, url.Values{"username": {"bob"}, "password": {bobPassword}}.Encode()},
		{"readiness", http.MethodGet, "/readyz", nil, ""},
	} {
		if rec := serveInProcess(t, h, gone, tc.method, tc.target, tc.header, tc.body); rec.Code != 499 {
			t.Errorf("%s abandoned by the client: status %d, want 499\n%s", tc.name, rec.Code, rec.Body)
		}
	}

	metrics := serveInProcess(t, h, t.Context(), http.MethodGet, "/metrics", nil, "").Body.String()
	for _, line := range []string{
		`gatehouse_store_errors_total 0`,
		`gatehouse_client_hangups_total 6`,
		`gatehouse_verify_requests_total{status="499"} 2`,
	} {
		if !strings.Contains(metrics, "\n"+line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, metrics)
		}
	}
	if strings.Contains(metrics, `status="503"`) {
		t.Errorf("a hang-up was counted as a 503 verify answer:\n%s", metrics)
	}
	for _, line := range strings.Split(p.logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
			t.Errorf("a hang-up was logged loudly: %s", line)
		}
	}

	// Control: the store really gone is a store error, a 503, at ERROR.
	if p.redis.External() {
		return // this test must not stop a shared Redis
	}
	p.redis.Stop()
	t.Cleanup(p.redis.Start)
	if rec := serveInProcess(t, h, t.Context(), http.MethodGet, "/auth/verify", with(original, cookie), ""); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("verify with Redis down: status %d, want 503", rec.Code)
	}
	metrics = serveInProcess(t, h, t.Context(), http.MethodGet, "/metrics", nil, "").Body.String()
	for _, line := range []string{`gatehouse_store_errors_total 1`, `gatehouse_verify_requests_total{status="503"} 1`} {
		if !strings.Contains(metrics, "\n"+line+"\n") {
			t.Errorf("with Redis down, metrics lack %q:\n%s", line, metrics)
		}
	}
	if !strings.Contains(p.logs.String(), "level=ERROR") {
		t.Error("with Redis down, nothing was logged at ERROR")
	}
}
