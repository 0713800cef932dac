package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Prometheus metrics at GET /metrics, through client_golang and a
// registry of the portal's own (Config.Registry): no global state, so
// several portals can live in one process (tests do). They carry no user
// names, addresses or secrets: a login is counted by outcome and factors
// only.

// verifyBuckets are the upper bounds (seconds) of the verify latency
// histogram.
var verifyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

// metrics are the portal's own collectors.
type metrics struct {
	// logins counts login events by outcome and factors.
	logins *prometheus.CounterVec
	// verify counts /auth/verify answers by status.
	verify *prometheus.CounterVec
	// verifyOK is verify's 200 series, looked up once: the answer to
	// nearly every request on the hot path.
	verifyOK       prometheus.Counter
	verifyDuration prometheus.Histogram
	storeErrors    prometheus.Counter
	busy           prometheus.Counter
	hangUps        prometheus.Counter
}

// newRegistry is the default Config.Registry: the Go runtime's and the
// process's standard metrics (go_goroutines,
// process_resident_memory_bytes, …), to which New adds the portal's.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// newMetrics registers the portal's metrics with reg; bcryptRuns is read
// at each scrape.
func newMetrics(reg prometheus.Registerer, bcryptRuns func() uint64) (*metrics, error) {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_logins_total",
			Help: "Sign-in events by outcome (success, failure, pending, warning) and factors.",
		}, []string{"outcome", "factors"}),
		verify: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_verify_requests_total",
			Help: "/auth/verify answers by status (499: the client left before the answer).",
		}, []string{"status"}),
		verifyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_verify_duration_seconds",
			Help:    "Time to answer /auth/verify.",
			Buckets: verifyBuckets,
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_store_errors_total",
			Help: "Requests answered 503 because the store could not be reached.",
		}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_bcrypt_busy_total",
			Help: "Password checks refused because every bcrypt slot stayed taken.",
		}),
		hangUps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_client_hangups_total",
			Help: "Requests the client abandoned before the answer was ready (answered 499).",
		}),
	}
	m.verifyOK = m.verify.WithLabelValues(strconv.Itoa(http.StatusOK))
	runs := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gatehouse_bcrypt_runs_total",
		Help: "bcrypt computations (hashes and comparisons, dummy ones included).",
	}, func() float64 { return float64(bcryptRuns()) })
	for _, c := range []prometheus.Collector{m.logins, m.verify, m.verifyDuration, m.storeErrors, m.busy, m.hangUps, runs} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) login(outcome string, factors []string) {
	f := strings.Join(factors, "+")
	if f == "" {
		f = "none"
	}
	m.logins.WithLabelValues(outcome, f).Inc()
}

func (m *metrics) verified(status int, d time.Duration) {
	if status == http.StatusOK {
		m.verifyOK.Inc()
	} else {
		m.verify.WithLabelValues(strconv.Itoa(status)).Inc()
	}
	m.verifyDuration.Observe(d.Seconds())
}

func (m *metrics) failed(e *Error) {
	switch e.Code {
	case errUnavailable.Code:
		m.storeErrors.Inc()
	case "busy":
		m.busy.Inc()
	case "client_closed_request":
		m.hangUps.Inc()
	}
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
// machine or a trusted proxy only, and not on behalf of anyone else.
// Sign-in volumes and outcomes are no one else's business, and a proxy
// in front of the portal's pages (on loopback, or trusted for client
// addresses) relays every client's request: one that names a client it
// relays for (X-Forwarded-For, Forwarded, X-Real-IP) is refused unless
// every address it names is this machine or a trusted proxy. Forwarded
// is not parsed: its presence refuses.
func (s *Server) metricsAllowed(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	if !ap.Addr().Unmap().IsLoopback() && !s.fromTrustedProxy(r) {
		return false
	}
	if len(r.Header.Values("Forwarded")) > 0 {
		return false
	}
	for _, h := range []string{"X-Forwarded-For", "X-Real-Ip"} {
		for _, v := range r.Header.Values(h) {
			for _, hop := range strings.Split(v, ",") {
				a, err := netip.ParseAddr(strings.TrimSpace(hop))
				if err != nil {
					return false
				}
				a = a.Unmap()
				if !a.IsLoopback() && !slices.ContainsFunc(s.proxies, func(p netip.Prefix) bool { return p.Contains(a) }) {
					return false
				}
			}
		}
	}
	return true
}

// promLog passes the exposition's own errors (a collector that failed)
// to the portal's log.
type promLog struct{ s *Server }

func (l promLog) Println(v ...any) { l.s.log.Error("metrics", "err", fmt.Sprint(v...)) }

func (s *Server) handleMetrics() http.Handler {
	expose := promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
		ErrorLog:      promLog{s},
		ErrorHandling: promhttp.ContinueOnError,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.metricsAllowed(r) {
			s.fail(w, r, &Error{Status: http.StatusForbidden, Code: "forbidden",
				Message: "metrics are served to this machine and to trusted proxies only"})
			return
		}
		expose.ServeHTTP(w, r)
	})
}
