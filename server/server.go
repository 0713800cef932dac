// Package server is Gatehouse's HTTP side: it decodes requests, loads and
// re-evaluates the session on every request, asks package auth to decide,
// persists through package store and renders pages and JSON. New returns
// the whole portal as one http.Handler; NewServer also gives the verify
// socket's handler, for a proxy on the same host (socket.go); routes.go
// lists every route of both.
package server

import (
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zitadel/oidc/v3/pkg/op"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/static"
	"gatehouse/store"
	"gatehouse/templates"
)

// Defaults for Config fields left zero.
const (
	DefaultSessionIdle = 30 * time.Minute
	DefaultSessionMax  = 12 * time.Hour
	// MinSessionKeyBytes is the least key material for signing cookies.
	MinSessionKeyBytes = 32
	// MinSessionIdle is the shortest idle timeout accepted. A shorter one
	// signs people out while they read a page or pick a certificate, and
	// its idle clock, refreshed every quarter of so short an idle time,
	// would make nearly every request write to the store.
	MinSessionIdle = time.Minute
)

// CheckSessionTimes explains in plain words what is wrong with an idle
// timeout and an absolute session lifetime (zero means the default), or
// returns nil. New runs it; so does "gatehouse serve" before anything
// else, so that a bad setting is refused at once.
func CheckSessionTimes(idle, max time.Duration) error {
	if idle == 0 {
		idle = DefaultSessionIdle
	}
	if max == 0 {
		max = DefaultSessionMax
	}
	switch {
	case idle < MinSessionIdle:
		return fmt.Errorf("session idle time %v is too short: it must be at least %s, or people are signed out while they read a page",
			idle, humanDuration(MinSessionIdle))
	case max < idle:
		return fmt.Errorf("session lifetime %v is shorter than the idle time %v: make the lifetime at least as long", max, idle)
	}
	return nil
}

// Config is everything the portal needs. Fields without a default must be
// set; New rejects a Config that is incomplete or contradictory.
type Config struct {
	// Store keeps accounts, roles and sessions. Required.
	Store store.Store
	// Verifier checks client certificates against the client CAs. Required.
	Verifier *auth.CertVerifier
	// Hasher checks passwords. Required.
	Hasher *auth.Hasher
	// SessionKey signs the session cookie (at least 32 bytes); the key
	// that signs device cookies is derived from it. Required.
	SessionKey []byte
	// Sealer encrypts TOTP secrets at rest. Required.
	Sealer *auth.Sealer
	// RecoveryKey keys the hashes of TOTP recovery codes (at least 32
	// bytes), so a store dump alone cannot be searched for codes.
	// Required.
	RecoveryKey []byte
	// UnknownNameKey keys the hash that stands for a name typed at
	// sign-in that matches no account (at least 32 bytes): such a name
	// is often a password typed into the wrong field, so logs, the audit
	// trail and throttle counters hold only this hash of it. Instances
	// sharing a store must use the same key, so that one name gives one
	// hash on each of them and after restarts. Required.
	UnknownNameKey []byte
	// SessionIdle ends a session after this long without a request; at
	// least MinSessionIdle. Default DefaultSessionIdle.
	SessionIdle time.Duration
	// SessionMax ends a session this long after login, whatever its
	// activity. Default DefaultSessionMax.
	SessionMax time.Duration
	// CookieDomain, when set, shares the session cookie with every host
	// under it (apps on sibling hosts that ask /auth/verify). The cookie
	// is then "__Secure-gatehouse" with that Domain instead of the
	// host-only "__Host-gatehouse".
	CookieDomain string
	// TrustedProxies are the addresses of TLS-terminating proxies. Only
	// requests from them may carry the client's certificate (in
	// X-Client-Cert or X-Forwarded-Tls-Client-Cert, see forwarded.go) and
	// the client's address in X-Forwarded-For; from anyone else those
	// headers are ignored.
	TrustedProxies []netip.Prefix
	// ClientCertHeader is the one header the trusted proxies forward the
	// client's certificate in: "X-Client-Cert" (nginx, Caddy; the
	// default) or "X-Forwarded-Tls-Client-Cert" (Traefik). A request
	// with the other one is refused: the proxy did not set it.
	ClientCertHeader string
	// Issuer, when set, is the built-in CA with its key: the help desk and
	// admins can then issue device certificates from the portal.
	Issuer *ca.CA
	// EnrollWithTOTP lets the session that asked for a device certificate
	// approve its own request with a fresh TOTP code. Off by default: a
	// phished password and code would then become a certificate.
	EnrollWithTOTP bool
	// MaxDeviceCertificates is how many valid certificates an account may
	// hold before a new device's request is refused. Default
	// DefaultMaxDeviceCertificates.
	MaxDeviceCertificates int
	// Registry receives the portal's metrics, and /metrics serves all it
	// holds. A registry serves one portal: New fails when the portal's
	// metrics are registered there already. Default: a registry of the
	// portal's own with the Go runtime and process collectors.
	Registry *prometheus.Registry
	// Warnings are problems found at start that an operator must fix
	// (accounts that share an email); /readyz lists them.
	Warnings []string
	// StoreWarnings, when set, returns what an operator must fix about
	// the store as it is now (a Redis that keeps nothing on disk, found
	// again after every reconnect); /readyz lists them after Warnings.
	StoreWarnings func() []string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives one structured event per line; never a secret.
	// Default slog.Default().
	Logger *slog.Logger
}

// Server is the portal. Build it with NewServer.
type Server struct {
	store       store.Store
	verifier    *auth.CertVerifier
	hasher      *auth.Hasher
	sessions    *sessionStore
	devCookies  *auth.DeviceCookies
	sealer      *auth.Sealer
	recoveryKey []byte
	nameKey     []byte
	idle        time.Duration
	max         time.Duration
	now         func() time.Time
	log         *slog.Logger
	pages       map[string]*template.Template
	static      fs.FS
	cookieName  string
	proxies     []netip.Prefix
	warnings    []string
	// storeWarnings: see Config.StoreWarnings; never nil.
	storeWarnings func() []string
	metrics       *metrics
	registry      *prometheus.Registry
	issuer        *ca.CA
	// sessionKey signs cookies; keys for other purposes derive from it.
	sessionKey []byte
	// oidc is the OpenID Provider (oidc.go).
	oidc *op.Provider
	// certHeader, enrollWithTOTP and maxDeviceCerts: see Config.
	certHeader     string
	enrollWithTOTP bool
	maxDeviceCerts int
	// handler is the whole portal, proxyHandler the verify socket's
	// routes; each wrapped once by s.secure.
	handler      http.Handler
	proxyHandler http.Handler
}

// New checks cfg and returns the portal's handler.
func New(cfg Config) (http.Handler, error) {
	s, err := NewServer(cfg)
	if err != nil {
		return nil, err
	}
	return s.Handler(), nil
}

// NewServer checks cfg and returns the portal, whose Handler serves
// people and proxies over TLS and whose ProxyHandler serves a proxy on
// the same host over the verify socket.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Verifier == nil || cfg.Hasher == nil {
		return nil, errors.New("server config: Store, Verifier and Hasher are required")
	}
	if cfg.Sealer == nil || len(cfg.RecoveryKey) < MinSessionKeyBytes {
		return nil, fmt.Errorf("server config: Sealer and a recovery key of at least %d bytes are required", MinSessionKeyBytes)
	}
	if len(cfg.UnknownNameKey) < MinSessionKeyBytes {
		return nil, fmt.Errorf("server config: an unknown-name key of at least %d bytes is required", MinSessionKeyBytes)
	}
	if len(cfg.SessionKey) < MinSessionKeyBytes {
		return nil, fmt.Errorf("server config: session key must be at least %d bytes", MinSessionKeyBytes)
	}
	if err := CheckSessionTimes(cfg.SessionIdle, cfg.SessionMax); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	if cfg.SessionIdle == 0 {
		cfg.SessionIdle = DefaultSessionIdle
	}
	if cfg.SessionMax == 0 {
		cfg.SessionMax = DefaultSessionMax
	}
	var err error
	if cfg.ClientCertHeader, err = CheckClientCertHeader(cfg.ClientCertHeader); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	if cfg.MaxDeviceCertificates == 0 {
		cfg.MaxDeviceCertificates = DefaultMaxDeviceCertificates
	}
	if cfg.MaxDeviceCertificates < 1 {
		return nil, fmt.Errorf("server config: the most device certificates per account must be at least 1, not %d", cfg.MaxDeviceCertificates)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = newRegistry()
	}
	m, err := newMetrics(cfg.Registry, cfg.Hasher.Runs)
	if err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	if cfg.StoreWarnings == nil {
		cfg.StoreWarnings = func() []string { return nil }
	}
	cookieName := SessionCookieName
	if cfg.CookieDomain != "" {
		if err := checkCookieDomain(cfg.CookieDomain); err != nil {
			return nil, err
		}
		cookieName = DomainCookieName
	}
	pages, err := parsePages(templates.FS)
	if err != nil {
		return nil, err
	}
	s := &Server{
		store:       cfg.Store,
		verifier:    cfg.Verifier,
		hasher:      cfg.Hasher,
		sessions:    newSessionStore(cfg.Store, cfg.SessionKey, cfg.SessionMax, cfg.CookieDomain),
		devCookies:  auth.NewDeviceCookies(cfg.SessionKey),
		sealer:      cfg.Sealer,
		recoveryKey: cfg.RecoveryKey,
		nameKey:     cfg.UnknownNameKey,
		idle:        cfg.SessionIdle,
		max:         cfg.SessionMax,
		now:         cfg.Now,
		log:         cfg.Logger,
		pages:       pages,
		static:      static.FS,
		cookieName:  cookieName,
		proxies:     cfg.TrustedProxies,
		warnings:    cfg.Warnings,
		issuer:      cfg.Issuer,
		metrics:     m,
		registry:    cfg.Registry,
		sessionKey:  cfg.SessionKey,

		certHeader:     cfg.ClientCertHeader,
		storeWarnings:  cfg.StoreWarnings,
		enrollWithTOTP: cfg.EnrollWithTOTP,
		maxDeviceCerts: cfg.MaxDeviceCertificates,
	}
	if s.oidc, err = newOIDCProvider(s); err != nil {
		return nil, fmt.Errorf("server config: OpenID Provider: %w", err)
	}
	mux := http.NewServeMux()
	s.addRoutes(mux)
	s.handler = s.secure(mux)
	proxyMux := http.NewServeMux()
	s.addProxyRoutes(proxyMux)
	s.proxyHandler = s.secure(proxyMux)
	return s, nil
}

// Handler is the whole portal, for its TLS listener (HTTPServer).
func (s *Server) Handler() http.Handler { return s.handler }

// ProxyHandler is the verify socket's handler (addProxyRoutes): forward
// auth and liveness only, for a proxy on the same host, served by
// ProxyHTTPServer on a Unix socket whose file permissions decide who may
// connect. Requests on it count as from a trusted proxy.
func (s *Server) ProxyHandler() http.Handler { return s.proxyHandler }
