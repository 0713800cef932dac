package server_test

import (
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"gatehouse/server"
)

func TestMetrics_CountLoginsVerifyAndNoNames(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	withApps(t, p)
	p.addAccount("bob", bobPassword, "employee")
	bob := p.browser()
	bob.login("bob", bobPassword)
	failLogin(t, p, "bob")
	laptop := p.browser(p.AdminCert)
	laptop.login("admin", adminPassword)
	wantStatus(t, "verify", bob.verify("https://wiki.example.com/"), http.StatusOK)
	wantStatus(t, "verify", bob.verify("https://wiki.example.com/x"), http.StatusOK)
	wantStatus(t, "verify anonymous", p.browser().verify("https://wiki.example.com/"), http.StatusUnauthorized)

	r := p.browser().get("/metrics")
	wantStatus(t, "metrics", r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q, want the Prometheus text format", ct)
	}
	for _, line := range []string{
		`gatehouse_logins_total{factors="password",outcome="success"} 1`,
		`gatehouse_logins_total{factors="password+certificate",outcome="success"} 1`,
		`gatehouse_logins_total{factors="none",outcome="failure"} 1`,
		`gatehouse_verify_requests_total{status="200"} 2`,
		`gatehouse_verify_requests_total{status="401"} 1`,
		`gatehouse_verify_duration_seconds_bucket{le="+Inf"} 3`,
		`gatehouse_verify_duration_seconds_count 3`,
		`gatehouse_store_errors_total 0`,
		`gatehouse_client_hangups_total 0`,
		`gatehouse_bcrypt_busy_total 0`,
	} {
		if !strings.Contains(r.Body, "\n"+line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, r.Body)
		}
	}
	// The standard collectors come with the portal's own metrics.
	want := []string{"gatehouse_bcrypt_runs_total", "go_goroutines", "go_memstats_heap_alloc_bytes", "go_gc_duration_seconds"}
	if runtime.GOOS == "linux" {
		want = append(want, "process_resident_memory_bytes", "process_open_fds")
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(r.Body))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	for _, name := range want {
		if families[name] == nil {
			t.Errorf("metrics lack %s", name)
		}
	}
	for _, secret := range []string{"bob", "admin", "127.0.0.1", bobPassword} {
		if strings.Contains(r.Body, secret) {
			t.Errorf("metrics mention %q", secret)
		}
	}
}

// The portal's metrics go to the registry it is given, and a registry
// serves one portal.
func TestMetrics_InjectedRegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	p := newPortalWith(t, func(c *server.Config) { c.Registry = reg })
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{"gatehouse_store_errors_total", "gatehouse_bcrypt_runs_total", "gatehouse_client_hangups_total"} {
		if !names[want] {
			t.Errorf("the given registry lacks %s: %v", want, names)
		}
	}
	if names["go_goroutines"] {
		t.Error("the portal added the Go collector to a registry it was given; that is the caller's choice")
	}
	if _, err := server.New(p.cfg); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Errorf("a second portal on the same registry: %v, want it refused", err)
	}
}

// /metrics is for this machine and the portal's own proxies, not for the
// clients a proxy relays: a request that a proxy (trusted, or any on
// loopback) forwards for an outside address is refused.
func TestMetrics_NotForClientsAProxyRelays(t *testing.T) {
	plain := newPortal(t)
	trusting := newPortalWith(t, func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	for _, tc := range []struct {
		name   string
		p      *portal
		header http.Header
		want   int
	}{
		{"this machine", plain, nil, http.StatusOK},
		{"a loopback hop relaying an outside client", plain, http.Header{"X-Forwarded-For": {"203.0.113.9"}}, http.StatusForbidden},
		{"a loopback hop, Forwarded", plain, http.Header{"Forwarded": {"for=203.0.113.9"}}, http.StatusForbidden},
		{"a loopback hop, X-Real-IP", plain, http.Header{"X-Real-Ip": {"203.0.113.9"}}, http.StatusForbidden},
		{"a trusted proxy relaying an outside client", trusting, http.Header{"X-Forwarded-For": {"203.0.113.9"}}, http.StatusForbidden},
		{"a trusted proxy relaying itself", trusting, http.Header{"X-Forwarded-For": {"127.0.0.1"}}, http.StatusOK},
		{"a trusted proxy", trusting, nil, http.StatusOK},
	} {
		r := tc.p.browser().get("/metrics", tc.header)
		if r.Status != tc.want {
			t.Errorf("%s: GET /metrics = %d, want %d", tc.name, r.Status, tc.want)
		}
	}
}
