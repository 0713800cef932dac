package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Prometheus metrics at GET /metrics, in the text exposition format
// (written by hand: a few counters and one histogram do not need a
// client library). They carry no user names, addresses or secrets: a
// login is counted by outcome and factors only.

// verifyBuckets are the upper bounds (seconds) of the verify latency
// histogram.
var verifyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

type metrics struct {
	mu sync.Mutex
	// logins counts login events by outcome and factors.
	logins map[[2]string]uint64
	// verify counts /auth/verify answers by status.
	verify       map[int]uint64
	verifyBucket [len(verifyBuckets) + 1]uint64
	verifySum    float64
	verifyCount  uint64
	storeErrors  uint64
	busy         uint64
	hangUps      uint64
}

func (m *metrics) login(outcome string, factors []string) {
	f := strings.Join(factors, "+")
	if f == "" {
		f = "none"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.logins == nil {
		m.logins = make(map[[2]string]uint64)
	}
	m.logins[[2]string{outcome, f}]++
}

func (m *metrics) verified(status int, d time.Duration) {
	sec := d.Seconds()
	i, _ := slices.BinarySearch(verifyBuckets[:], sec)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.verify == nil {
		m.verify = make(map[int]uint64)
	}
	m.verify[status]++
	m.verifyBucket[i]++
	m.verifySum += sec
	m.verifyCount++
}

func (m *metrics) failed(e *Error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e.Code {
	case errUnavailable.Code:
		m.storeErrors++
	case "busy":
		m.busy++
	case "client_closed_request":
		m.hangUps++
	}
}

// write renders the metrics; bcryptRuns comes from the hasher.
func (m *metrics) write(b *strings.Builder, bcryptRuns uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b.WriteString("# HELP gatehouse_logins_total Sign-in events by outcome (success, failure, pending, warning) and factors.\n")
	b.WriteString("# TYPE gatehouse_logins_total counter\n")
	keys := make([][2]string, 0, len(m.logins))
	for k := range m.logins {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
	for _, k := range keys {
		fmt.Fprintf(b, "gatehouse_logins_total{outcome=%q,factors=%q} %d\n", k[0], k[1], m.logins[k])
	}
	b.WriteString("# HELP gatehouse_verify_requests_total /auth/verify answers by status.\n")
	b.WriteString("# TYPE gatehouse_verify_requests_total counter\n")
	statuses := make([]int, 0, len(m.verify))
	for st := range m.verify {
		statuses = append(statuses, st)
	}
	slices.Sort(statuses)
	for _, st := range statuses {
		fmt.Fprintf(b, "gatehouse_verify_requests_total{status=\"%d\"} %d\n", st, m.verify[st])
	}
	b.WriteString("# HELP gatehouse_verify_duration_seconds Time to answer /auth/verify.\n")
	b.WriteString("# TYPE gatehouse_verify_duration_seconds histogram\n")
	var cum uint64
	for i, le := range verifyBuckets {
		cum += m.verifyBucket[i]
		fmt.Fprintf(b, "gatehouse_verify_duration_seconds_bucket{le=%q} %d\n", strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	fmt.Fprintf(b, "gatehouse_verify_duration_seconds_bucket{le=\"+Inf\"} %d\n", m.verifyCount)
	fmt.Fprintf(b, "gatehouse_verify_duration_seconds_sum %g\n", m.verifySum)
	fmt.Fprintf(b, "gatehouse_verify_duration_seconds_count %d\n", m.verifyCount)
	b.WriteString("# HELP gatehouse_store_errors_total Requests answered 503 because the store could not be reached.\n")
	b.WriteString("# TYPE gatehouse_store_errors_total counter\n")
	fmt.Fprintf(b, "gatehouse_store_errors_total %d\n", m.storeErrors)
	b.WriteString("# HELP gatehouse_client_hangups_total Requests the client abandoned before the answer was ready (answered 499).\n")
	b.WriteString("# TYPE gatehouse_client_hangups_total counter\n")
	fmt.Fprintf(b, "gatehouse_client_hangups_total %d\n", m.hangUps)
	b.WriteString("# HELP gatehouse_bcrypt_busy_total Password checks refused because every bcrypt slot stayed taken.\n")
	b.WriteString("# TYPE gatehouse_bcrypt_busy_total counter\n")
	fmt.Fprintf(b, "gatehouse_bcrypt_busy_total %d\n", m.busy)
	b.WriteString("# HELP gatehouse_bcrypt_runs_total bcrypt computations (hashes and comparisons, dummy ones included).\n")
	b.WriteString("# TYPE gatehouse_bcrypt_runs_total counter\n")
	fmt.Fprintf(b, "gatehouse_bcrypt_runs_total %d\n", bcryptRuns)
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// metricsAllowed reports whether a request may read /metrics: from this
// machine or a trusted proxy only. Sign-in volumes and outcomes are no
// one else's business.
func (s *Server) metricsAllowed(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback() || s.fromTrustedProxy(r)
}

func (s *Server) handleMetrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.metricsAllowed(r) {
			s.fail(w, r, &Error{Status: http.StatusForbidden, Code: "forbidden",
				Message: "metrics are served to this machine and to trusted proxies only"})
			return
		}
		var b strings.Builder
		s.metrics.write(&b, s.hasher.Runs())
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write([]byte(b.String()))
	})
}
