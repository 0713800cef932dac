package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"gatehouse/store"
	"gatehouse/store/cached"
	"gatehouse/store/redisstore"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/server"
)

// shutdownGrace is how long in-flight requests may take to finish after
// SIGTERM.
const shutdownGrace = 15 * time.Second

// gcPercent is the garbage collector's target for serve (GOGC): a new
// cycle starts when the heap has grown by 400 % of what the last one
// kept, not Go's default 100 %.
const gcPercent = 400

var serveCmd = &command{
	name:  "serve",
	args:  "[flags]",
	short: "run the portal over HTTPS (an empty data directory is initialised first, as by init)",
	setup: func(fs *flag.FlagSet) runFunc {
		o := addServeOptions(fs)
		return func(e *env, _ []string) error { return serve(e, o) }
	},
}

// serve runs the portal until e.ctx ends, then shuts down gracefully.
func serve(e *env, o *serveOptions) error {
	// Refused before anything is opened or made.
	if err := server.CheckSessionTimes(o.sessionIdle, o.sessionMax); err != nil {
		return fmt.Errorf("--session-idle %v, --session-max %v: %w", o.sessionIdle, o.sessionMax, err)
	}
	if o.verifySocket != "" {
		if err := checkVerifySocket(o.verifySocket); err != nil {
			return err
		}
	}
	logger := slog.New(slog.NewJSONHandler(e.stderr, nil))
	// Libraries that log through slog's default (the OpenID Provider's
	// request errors) or the log package write JSON events too.
	slog.SetDefault(logger)

	st, err := openStore(e, o.settings, logger)
	if err != nil {
		return err
	}
	backend := st // the store itself, for what only the backend can say
	st = withCache(st, o.storeLease, logger)
	defer st.Close()
	warnings := sharedEmailWarnings(e.ctx, st, logger)

	l := layout{o.data}
	if !initialised(l) {
		if err := initDataDir(e, o.settings, st, time.Now()); err != nil {
			return fmt.Errorf("initialise %s: %w", l.dir, err)
		}
	}
	watch := newStoreWatch(backend, logger)
	watch.check(e.ctx) // before serving, so the log says it first
	go watch.run(e.ctx, storeWatchInterval)

	certFile, keyFile := o.tlsCert, o.tlsKey
	if certFile == "" && keyFile == "" {
		certFile, keyFile = l.serverCert(), l.serverKey()
	}
	if certFile == "" || keyFile == "" {
		return errors.New("--tls-cert and --tls-key go together")
	}
	serverCert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("load server certificate: %w", err)
	}
	roots, caCerts, err := loadClientCAs(o.clientCAs, l)
	if err != nil {
		return err
	}
	intermediates, err := loadClientIntermediates(o.intermediates, roots, time.Now())
	if err != nil {
		return err
	}
	crls, err := newCRLWatcher(e.ctx, o.crls, slices.Concat(caCerts, intermediates), st, logger)
	if err != nil {
		return err
	}
	go crls.watch(e.ctx, o.crlRefresh)
	sessionKey, err := loadSessionKey(e, l)
	if err != nil {
		return err
	}
	totpKey, err := loadTOTPKey(e, l)
	if err != nil {
		return err
	}
	sealer, err := checkTOTPKey(e, st, totpKey, l)
	if err != nil {
		return err
	}
	// Each bcrypt computation keeps a Go processor (P) while it runs: the
	// hasher adds one P per slot while any runs and takes them back when
	// none does (auth.WithProcessors), so a login flood cannot starve
	// /auth/verify and the requests pay nothing for it otherwise.
	hasher, err := auth.NewHasher(auth.BcryptCost, auth.WithProcessors(runtime.GOMAXPROCS))
	if err != nil {
		return err
	}
	// The portal's live heap is small (its cache of records and the
	// sessions in flight) and nearly all its garbage lives for one
	// request, so the collector's pace, not the heap, is what costs:
	// collecting at gcPercent instead of Go's 100 takes about a sixth
	// off /auth/verify's CPU (docs/benchmarks.md), for a heap that may
	// grow to about five times what is live. GOGC in the environment
	// still decides when it is set (and GOMEMLIMIT caps the heap).
	if e.getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	issuer := loadIssuer(l, logger)
	proxies, err := parsePrefixes(o.proxies)
	if err != nil {
		return err
	}
	portal, err := server.NewServer(server.Config{
		Store:                 st,
		Verifier:              &auth.CertVerifier{Roots: roots, Intermediates: intermediates, CRLs: crls.current, Revoked: st.IsRevoked},
		Hasher:                hasher,
		SessionKey:            sessionKey,
		Sealer:                sealer,
		RecoveryKey:           recoveryKey(totpKey),
		UnknownNameKey:        unknownNameKey(totpKey),
		SessionIdle:           o.sessionIdle,
		SessionMax:            o.sessionMax,
		CookieDomain:          o.cookieDom,
		TrustedProxies:        proxies,
		ClientCertHeader:      o.certHeader,
		Warnings:              warnings,
		StoreWarnings:         watch.texts,
		Issuer:                issuer,
		EnrollWithTOTP:        o.enrollWithTOTP,
		MaxDeviceCertificates: o.maxDeviceCerts,
		Logger:                logger,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	// The handshake names the client CAs and intermediates, so browsers
	// offer only certificates that can count.
	hints := roots.Clone()
	for _, c := range intermediates {
		hints.AddCert(c)
	}
	srv := server.HTTPServer(o.addr, portal.Handler(), serverCert, hints)
	srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	if o.verifySocket != "" {
		sock, err := listenVerifySocket(o.verifySocket)
		if err != nil {
			ln.Close()
			return err
		}
		proxy := server.ProxyHTTPServer(portal.ProxyHandler())
		proxy.ErrorLog = srv.ErrorLog
		servers = append(servers, proxy)
		go func() { errc <- proxy.Serve(sock) }()
		logger.Info("listening for forward auth", "socket", o.verifySocket, "mode", fmt.Sprintf("%#o", verifySocketMode))
	}
	logger.Info("listening", "addr", ln.Addr().String(), "data", l.dir, "store", storeName(o.settings))
	fmt.Fprintf(e.stdout, "Gatehouse is listening on https://%s/\n", displayAddr(ln.Addr()))
	if o.verifySocket != "" {
		fmt.Fprintf(e.stdout, "Forward auth for a proxy on this host: unix:%s (GET /auth/verify)\n", o.verifySocket)
	}

	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		for _, s := range servers {
			s.Close() // the other listener too, and the socket file with it
		}
		return fmt.Errorf("serve: %w", err)
	case <-e.ctx.Done():
	}
	logger.Info("shutting down", "grace", shutdownGrace.String())
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	// Both listeners stop accepting at once, and their requests in
	// flight finish within the one grace period.
	shut := make(chan error, len(servers))
	for _, s := range servers {
		go func() { shut <- s.Shutdown(ctx) }()
	}
	var errs []error
	for range servers {
		if err := <-shut; err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
	}
	for range servers {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// displayAddr turns a listen address into one a browser can open.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// loadClientCAs builds the dedicated pool of client CAs: the --client-ca
// files, or the built-in CA. The system roots are never included. It also
// returns the CA certificates, against which CRL signatures are checked.
func loadClientCAs(files []string, l layout) (*x509.CertPool, []*x509.Certificate, error) {
	if len(files) == 0 {
		files = []string{l.caCert()}
	}
	pool := x509.NewCertPool()
	var all []*x509.Certificate
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("read client CA: %w", err)
		}
		certs, err := ca.ParseCertsPEM(data)
		if err != nil {
			return nil, nil, fmt.Errorf("client CA %s: %w", f, err)
		}
		for _, c := range certs {
			if !c.IsCA {
				return nil, nil, fmt.Errorf("client CA %s: %q is not a CA certificate", f, c.Subject)
			}
			pool.AddCert(c)
			all = append(all, c)
		}
	}
	return pool, all, nil
}

// loadClientIntermediates reads the --client-intermediate files: issuing
// CAs of a two-tier PKI, which complete the chains clients send without
// them and may sign CRLs. Each must be a CA certificate that chains to a
// client CA (through the others if need be), checked at start: a wrong
// file stops the portal instead of quietly verifying nothing.
func loadClientIntermediates(files []string, roots *x509.CertPool, now time.Time) ([]*x509.Certificate, error) {
	type loaded struct {
		file string
		cert *x509.Certificate
	}
	var all []loaded
	pool := x509.NewCertPool()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read client intermediate: %w", err)
		}
		certs, err := ca.ParseCertsPEM(data)
		if err != nil {
			return nil, fmt.Errorf("client intermediate %s: %w", f, err)
		}
		for _, c := range certs {
			if !c.IsCA {
				return nil, fmt.Errorf("client intermediate %s: %q is not a CA certificate", f, c.Subject)
			}
			pool.AddCert(c)
			all = append(all, loaded{f, c})
		}
	}
	out := make([]*x509.Certificate, 0, len(all))
	for _, l := range all {
		_, err := l.cert.Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: pool,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		var unknown x509.UnknownAuthorityError
		switch {
		case errors.As(err, &unknown):
			return nil, fmt.Errorf("client intermediate %s: %q is not signed by a configured client CA (--client-ca) or by another client intermediate", l.file, l.cert.Subject)
		case err != nil:
			return nil, fmt.Errorf("client intermediate %s: %q does not chain to a configured client CA: %w", l.file, l.cert.Subject, err)
		}
		out = append(out, l.cert)
	}
	return out, nil
}

// loadSessionKey reads the cookie signing key from GATEHOUSE_SESSION_KEY
// (hex) or DATA/session.key. Every portal instance that shares a store
// must use the same key.
func loadSessionKey(e *env, l layout) ([]byte, error) {
	text := e.getenv("GATEHOUSE_SESSION_KEY")
	source := "GATEHOUSE_SESSION_KEY"
	if text == "" {
		b, err := os.ReadFile(l.sessionKey())
		if err != nil {
			return nil, fmt.Errorf("read session key: %w", err)
		}
		text, source = string(b), l.sessionKey()
	}
	key, err := hex.DecodeString(strings.TrimSpace(text))
	if err != nil || len(key) < server.MinSessionKeyBytes {
		return nil, fmt.Errorf("session key in %s must be at least %d bytes of hex", source, server.MinSessionKeyBytes)
	}
	return key, nil
}

// loadTOTPKey reads the key that encrypts TOTP secrets from
// GATEHOUSE_TOTP_KEY (hex) or DATA/totp.key. A data directory made before
// TOTP existed gets a new key file.
func loadTOTPKey(e *env, l layout) ([]byte, error) {
	text, source := e.getenv("GATEHOUSE_TOTP_KEY"), "GATEHOUSE_TOTP_KEY"
	if text == "" {
		source = l.totpKey()
		b, err := os.ReadFile(l.totpKey())
		if errors.Is(err, fs.ErrNotExist) {
			text = hex.EncodeToString(randomBytes(auth.SecretKeyBytes))
			if err := writeNew(l.totpKey(), []byte(text+"\n"), 0o600); err != nil {
				return nil, err
			}
		} else if err != nil {
			return nil, fmt.Errorf("read TOTP key: %w", err)
		} else {
			text = string(b)
		}
	}
	key, err := hex.DecodeString(strings.TrimSpace(text))
	if err != nil || len(key) != auth.SecretKeyBytes {
		return nil, fmt.Errorf("TOTP key in %s must be %d bytes of hex", source, auth.SecretKeyBytes)
	}
	return key, nil
}

// totpKeyCheck is sealed with the TOTP key and kept in the store the
// first time a portal starts, so that a later start with another key is
// refused with a clear message instead of producing wrong codes.
const totpKeyCheck = "gatehouse TOTP key check"

func checkTOTPKey(e *env, st store.Store, key []byte, l layout) (*auth.Sealer, error) {
	sealer, err := auth.NewSealer(key)
	if err != nil {
		return nil, err
	}
	kept, err := st.SetMetaOnce(e.ctx, "totp-key-check", sealer.Seal([]byte(totpKeyCheck), "key-check"))
	if err != nil {
		return nil, err
	}
	if plain, err := sealer.Open(kept, "key-check"); err != nil || string(plain) != totpKeyCheck {
		return nil, fmt.Errorf("the TOTP key (%s or GATEHOUSE_TOTP_KEY) is not the one this store's TOTP secrets were encrypted with; restore the original key file, or nobody enrolled in TOTP can sign in", l.totpKey())
	}
	return sealer, nil
}

// recoveryKey derives the key for recovery-code hashes from the TOTP key,
// so there is one secret to keep, not two.
func recoveryKey(totpKey []byte) []byte { return deriveKey(totpKey, "gatehouse recovery codes") }

// unknownNameKey derives the key that hashes sign-in names matching no
// account (server.Config.UnknownNameKey) from the TOTP key: every
// instance sharing a store has that key (checkTOTPKey makes sure), and it
// outlives restarts, so one name gives one hash everywhere.
func unknownNameKey(totpKey []byte) []byte { return deriveKey(totpKey, "gatehouse unknown names") }

// deriveKey derives from key a key for one purpose (HMAC-SHA-256 of the
// purpose's label), so that one kept secret serves several uses without
// one use's key revealing another's.
func deriveKey(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// parsePrefixes parses --trusted-proxy values: CIDRs, or single addresses.
func parsePrefixes(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, fmt.Errorf("--trusted-proxy %q: not an address or CIDR (such as 10.0.0.5 or 10.0.0.0/24)", v)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			// Requests are compared by their unmapped address.
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// storeWatchInterval is how often a running portal looks at its store
// for what an operator must hear about (the marker, persistence), so the
// log says it even when nobody asks /readyz.
const storeWatchInterval = 10 * time.Second

// storeWatch tells the log, loudly and once per change, what an operator
// must hear about the store while the portal runs: that it lost its data
// (its marker is gone), and that a Redis keeps nothing on disk (read
// again by the store whenever it reconnects, so a Redis restarted with
// other settings is noticed without restarting the portal).
type storeWatch struct {
	st       store.Store
	warnings func() []redisstore.Warning
	log      *slog.Logger
	// lost and warned are what the log said last; only check and run
	// use them, one at a time.
	lost   bool
	warned map[string]bool
}

func newStoreWatch(st store.Store, logger *slog.Logger) *storeWatch {
	w := &storeWatch{st: st, log: logger, warnings: func() []redisstore.Warning { return nil }, warned: map[string]bool{}}
	if rs, ok := st.(*redisstore.Store); ok {
		w.warnings = rs.PersistenceWarnings
	}
	return w
}

// withCache puts the store cache (store/cached) in front of a backend
// that can feed it. Without a feed, or when it cannot start, the portal
// reads the store on every request, as correct and slower. Without
// lease, a cache on Redis waits for a read barrier on every request.
func withCache(st store.Store, lease bool, logger *slog.Logger) store.Store {
	src, ok := st.(cached.Source)
	if !ok {
		return st
	}
	if rs, isRedis := st.(*redisstore.Store); isRedis && !lease {
		src = rs.BarrierOnly()
	}
	c, err := cached.New(st, src, nil, logger)
	if err != nil {
		logger.Warn("store cache off", "err", err.Error())
		return st
	}
	return c
}

// texts returns the store's warnings in words, for /readyz and the home
// page.
func (w *storeWatch) texts() []string {
	var out []string
	for _, pw := range w.warnings() {
		out = append(out, pw.Text)
	}
	return out
}

// check looks once and logs what changed since the last look.
func (w *storeWatch) check(ctx context.Context) {
	err := w.st.CheckMarker(ctx, "")
	switch lost := errors.Is(err, store.ErrDataLost); {
	case lost && !w.lost:
		w.log.Error("STORE HAS LOST ITS DATA: nobody can sign in until it is restored",
			"err", err.Error(), "advice", "restore the store from a backup (Redis: its RDB or append-only file) and the portal recovers by itself; with no backup, start afresh with gatehouse init --store-only")
		w.lost = true
	case !lost && err == nil && w.lost:
		w.log.Info("the store's marker is back: sign-ins work again")
		w.lost = false
	}
	now := map[string]bool{}
	for _, pw := range w.warnings() {
		now[pw.Text] = true
		if !w.warned[pw.Text] {
			headline, advice := "REDIS HAS NO PERSISTENCE", "set appendonly yes (or save) on the Redis server"
			switch {
			case pw.Eviction:
				headline, advice = "REDIS DROPS KEYS WHEN FULL", "set maxmemory-policy noeviction on the Redis server (a full Redis then refuses writes, and the portal answers 503)"
			case pw.Unsure:
				headline = "REDIS MAY HAVE NO PERSISTENCE"
			}
			w.log.Warn(headline, "detail", pw.Text, "advice", advice)
		}
	}
	w.warned = now
}

// run checks every interval until ctx ends.
func (w *storeWatch) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.check(ctx)
		}
	}
}

// sharedEmailWarnings finds accounts that share an email (compared as
// store.EmailKey does), which a store written before emails were unique
// may hold: a certificate with that email counts for none of them, and
// they keep their email until an admin gives each its own. The log names
// them; the warning for /readyz, which anyone may ask for, only counts
// them.
func sharedEmailWarnings(ctx context.Context, st store.Store, logger *slog.Logger) []string {
	holders := map[string][]string{}
	err := store.EachAccount(ctx, st, func(a store.Account) error {
		if k := store.EmailKey(a.Email); k != "" {
			holders[k] = append(holders[k], a.Name)
		}
		return nil
	})
	if err != nil {
		logger.Warn("could not check whether accounts share an email", "err", err.Error())
		return nil
	}
	shared := 0
	for _, email := range slices.Sorted(maps.Keys(holders)) {
		if names := holders[email]; len(names) > 1 {
			shared++
			logger.Warn("accounts share an email: a certificate with it counts for none of them",
				"email", email, "accounts", strings.Join(names, ","), "advice", "give each account its own email")
		}
	}
	if shared == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%d email address(es) belong to more than one account (made before emails were unique): certificates with them count for none of those accounts; the log names them; give each account its own email", shared)}
}

// loadIssuer loads the built-in CA with its key, so that the help desk
// can issue device certificates from the portal. Without the key (kept
// offline, or an enterprise CA only) certificates come from the CLI where
// the key is.
func loadIssuer(l layout, logger *slog.Logger) *ca.CA {
	certPEM, err := os.ReadFile(l.caCert())
	if err != nil {
		return nil
	}
	keyPEM, err := os.ReadFile(l.caKey())
	if err != nil {
		logger.Info("the built-in CA's key is not here: device certificates are issued with the CLI only", "key", l.caKey())
		return nil
	}
	authority, err := ca.Load(certPEM, keyPEM)
	if err != nil {
		logger.Warn("the built-in CA does not load: device certificates are issued with the CLI only", "err", err.Error())
		return nil
	}
	return authority
}
