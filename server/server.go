// Package server is Gatehouse's HTTP side: it decodes requests, loads and
// re-evaluates the session on every request, asks package auth to decide,
// persists through package store and renders pages and JSON. New returns
// the whole portal as one http.Handler; routes.go lists every route.
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
)

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
	// SessionIdle ends a session after this long without a request.
	// Default DefaultSessionIdle.
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
	// requests from them may carry the client's certificate in
	// X-Client-Cert and the client's address in X-Forwarded-For; from
	// anyone else those headers are ignored.
	TrustedProxies []netip.Prefix
	// Issuer, when set, is the built-in CA with its key: the help desk and
	// admins can then issue device certificates from the portal.
	Issuer *ca.CA
	// Warnings are problems found at start that an operator must fix
	// (a store that keeps nothing on disk); /readyz lists them.
	Warnings []string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives one structured event per line; never a secret.
	// Default slog.Default().
	Logger *slog.Logger
}

// Server is the portal. Build it with New.
type Server struct {
	store       store.Store
	verifier    *auth.CertVerifier
	hasher      *auth.Hasher
	sessions    *sessionStore
	devCookies  *auth.DeviceCookies
	sealer      *auth.Sealer
	recoveryKey []byte
	idle        time.Duration
	max         time.Duration
	now         func() time.Time
	log         *slog.Logger
	pages       map[string]*template.Template
	static      fs.FS
	cookieName  string
	proxies     []netip.Prefix
	warnings    []string
	metrics     metrics
	issuer      *ca.CA
}

// New checks cfg and returns the portal's handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Store == nil || cfg.Verifier == nil || cfg.Hasher == nil {
		return nil, errors.New("server config: Store, Verifier and Hasher are required")
	}
	if cfg.Sealer == nil || len(cfg.RecoveryKey) < MinSessionKeyBytes {
		return nil, fmt.Errorf("server config: Sealer and a recovery key of at least %d bytes are required", MinSessionKeyBytes)
	}
	if len(cfg.SessionKey) < MinSessionKeyBytes {
		return nil, fmt.Errorf("server config: session key must be at least %d bytes", MinSessionKeyBytes)
	}
	if cfg.SessionIdle == 0 {
		cfg.SessionIdle = DefaultSessionIdle
	}
	if cfg.SessionMax == 0 {
		cfg.SessionMax = DefaultSessionMax
	}
	if cfg.SessionIdle < time.Minute || cfg.SessionMax < cfg.SessionIdle {
		return nil, fmt.Errorf("server config: need 1m <= session idle (%v) <= session max (%v)", cfg.SessionIdle, cfg.SessionMax)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
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
	}
	mux := http.NewServeMux()
	s.addRoutes(mux)
	return s.secure(mux), nil
}
