package server_test

import (
	"net/http"
	"strings"
	"testing"
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
		`gatehouse_logins_total{outcome="success",factors="password"} 1`,
		`gatehouse_logins_total{outcome="success",factors="password+certificate"} 1`,
		`gatehouse_logins_total{outcome="failure",factors="none"} 1`,
		`gatehouse_verify_requests_total{status="200"} 2`,
		`gatehouse_verify_requests_total{status="401"} 1`,
		`gatehouse_verify_duration_seconds_bucket{le="+Inf"} 3`,
		`gatehouse_verify_duration_seconds_count 3`,
		`gatehouse_store_errors_total 0`,
	} {
		if !strings.Contains(r.Body, "\n"+line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, r.Body)
		}
	}
	if !strings.Contains(r.Body, "gatehouse_bcrypt_runs_total ") {
		t.Error("metrics lack gatehouse_bcrypt_runs_total")
	}
	for _, secret := range []string{"bob", "admin", "127.0.0.1", bobPassword} {
		if strings.Contains(r.Body, secret) {
			t.Errorf("metrics mention %q", secret)
		}
	}
}
