package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gatehouse/store/storetest"
)

// The real binary's /metrics is what Prometheus expects: promtool, the
// checker that comes with Prometheus, accepts it, and the Go runtime's
// and the process's standard metrics come with the portal's own.
func TestMetrics_PromtoolAcceptsTheExposition(t *testing.T) {
	t.Parallel()
	promtool := promtoolBinary(t)
	p := startPortal(t)
	admin := p.client(t, nil)
	wantRedirect(t, admin.login(t, "admin", p.AdminPassword), "/")
	wantStatus(t, p.client(t, nil).login(t, "admin", "not the password at all"), http.StatusUnauthorized)
	wantStatus(t, admin.get(t, "/auth/verify"), http.StatusBadRequest)

	// As Prometheus asks (it prefers OpenMetrics and takes the text
	// format), from this machine.
	req := admin.newRequest(t, http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.6,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	r := send(t, admin.bare, req)
	wantStatus(t, r, http.StatusOK)
	for _, name := range []string{
		"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_start_time_seconds",
		`gatehouse_logins_total{factors="password",outcome="success"} 1`,
		`gatehouse_logins_total{factors="none",outcome="failure"} 1`,
		`gatehouse_verify_requests_total{status="400"} 1`,
		"gatehouse_verify_duration_seconds_bucket", "gatehouse_store_errors_total 0",
		"gatehouse_client_hangups_total", "gatehouse_bcrypt_runs_total",
	} {
		if !strings.Contains(r.Body, "\n"+name) {
			t.Errorf("metrics lack %s", name)
		}
	}

	// Every series the dashboard in docs/ draws is one the portal serves.
	for _, name := range dashboardMetrics(t) {
		if !strings.Contains(r.Body, "\n"+name) {
			t.Errorf("docs/grafana-dashboard.json queries %s, which the portal does not serve", name)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	check := exec.CommandContext(ctx, promtool, "check", "metrics")
	check.Stdin = strings.NewReader(r.Body)
	var out bytes.Buffer
	check.Stdout, check.Stderr = &out, &out
	if err := check.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\nContent-Type: %s\n%s", err, out.String(), r.Header.Get("Content-Type"), r.Body)
	}
}

// promtoolBinary finds promtool, or skips the test (fails it under
// CI=true).
func promtoolBinary(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("promtool"); err == nil {
		return path
	}
	storetest.NeedService(t, "promtool is not installed (apt-get install prometheus, which brings it)")
	return ""
}

// dashboardMetrics lists the portal's metric names that the queries of
// docs/grafana-dashboard.json use.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dashboard); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	name := regexp.MustCompile(`gatehouse_[a-z_]+`)
	ids := map[int]bool{}
	var names []string
	for _, panel := range dashboard.Panels {
		if ids[panel.ID] {
			t.Errorf("docs/grafana-dashboard.json: two panels have id %d", panel.ID)
		}
		ids[panel.ID] = true
		if len(panel.Targets) == 0 {
			t.Errorf("docs/grafana-dashboard.json: panel %q has no query", panel.Title)
		}
		for _, target := range panel.Targets {
			names = append(names, name.FindAllString(target.Expr, -1)...)
		}
	}
	if len(names) == 0 {
		t.Fatal("docs/grafana-dashboard.json queries none of the portal's metrics")
	}
	return names
}
