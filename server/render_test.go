package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"gatehouse/auth"
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
