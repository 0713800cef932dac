package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"gatehouse/auth"
	"gatehouse/store"
)

func TestHumanDuration(t *testing.T) {
	tests := map[time.Duration]string{
		time.Minute:                     "1 minute",
		30 * time.Minute:                "30 minutes",
		time.Hour:                       "1 hour",
		12 * time.Hour:                  "12 hours",
		90 * time.Minute:                "1 hour 30 minutes",
		2*time.Hour + time.Minute:       "2 hours 1 minute",
		29*time.Minute + 40*time.Second: "30 minutes",
	}
	for d, want := range tests {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// A password check that found no free bcrypt slot is a 503 with a short
// Retry-After and plain words, never a wrong-password answer.
func TestAsError_BusyIs503(t *testing.T) {
	e := asError(fmt.Errorf("check password: %w", auth.ErrBusy))
	if e.Status != http.StatusServiceUnavailable || e.Code != "busy" || e.RetryAfter < 1 || e.Message == "" {
		t.Errorf("asError(ErrBusy) = %+v, want 503 busy with Retry-After and a message", e)
	}
}

// /metrics answers this machine and trusted proxies only.
func TestMetricsAllowed(t *testing.T) {
	s := &Server{proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.7/32")}}
	for addr, want := range map[string]bool{
		"127.0.0.1:5000":        true,
		"[::1]:5000":            true,
		"[::ffff:127.0.0.1]:80": true,
		"10.0.0.7:443":          true,
		"10.0.0.8:443":          false,
		"203.0.113.5:1234":      false,
		"bogus":                 false,
	} {
		r := &http.Request{RemoteAddr: addr}
		if got := s.metricsAllowed(r); got != want {
			t.Errorf("metricsAllowed(%s) = %v, want %v", addr, got, want)
		}
	}
}

// The error path tells a client's hang-up (the request's own context
// canceled, and the error caused by it) from a failure on our side.
func TestFail_ClientHangUpIs499(t *testing.T) {
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	canceled := fmt.Errorf("load session: %w: %w", store.ErrUnavailable, context.Canceled)
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want int
	}{
		{"store call cut short by the client", gone, canceled, 499},
		{"bcrypt slot wait cut short by the client", gone, fmt.Errorf("check password: %w: %w", auth.ErrBusy, context.Canceled), 499},
		{"store down, client gone too", gone, fmt.Errorf("ping: %w: dial tcp: connection refused", store.ErrUnavailable), http.StatusServiceUnavailable},
		{"canceled, but not by the client", t.Context(), canceled, http.StatusServiceUnavailable},
		{"store down", t.Context(), fmt.Errorf("ping: %w", store.ErrUnavailable), http.StatusServiceUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newMetrics(prometheus.NewRegistry(), func() uint64 { return 0 })
			if err != nil {
				t.Fatal(err)
			}
			s := &Server{log: slog.New(slog.DiscardHandler), metrics: m}
			r := httptest.NewRequestWithContext(tc.ctx, http.MethodGet, "/api/session", nil)
			w := httptest.NewRecorder()
			s.fail(w, r, tc.err)
			if w.Code != tc.want {
				t.Errorf("status %d, want %d", w.Code, tc.want)
			}
			if n := counterValue(t, m.storeErrors); (tc.want == 499) == (n != 0) {
				t.Errorf("store errors counted: %v, want them counted only for a 503", n)
			}
			if n := counterValue(t, m.hangUps); (tc.want == 499) != (n == 1) {
				t.Errorf("hang-ups counted: %v, want one for a 499 only", n)
			}
		})
	}
}

// counterValue reads a counter's value.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
