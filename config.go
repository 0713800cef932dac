package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gatehouse/server"
	"gatehouse/store"
	"gatehouse/store/redisstore"
	"gatehouse/store/sqlitestore"
)

// EmbeddedStoreFile is the embedded store's file in the data directory,
// the store used when --store is not given.
const EmbeddedStoreFile = "gatehouse.db"

// settings are the flags every command has: where the data directory
// and the store are.
type settings struct {
	data    string
	store   string
	storeCA string
}

// addSettings registers --data and --store on fs; every command calls it.
func addSettings(fs *flag.FlagSet) *settings {
	s := new(settings)
	fs.StringVar(&s.data, "data", "./data", "data `directory` (keys, certificates, initial credentials)")
	fs.StringVar(&s.store, "store", "", "the store's `URL`: redis://HOST:PORT/DB, rediss://…, unix:///PATH/redis.sock?db=DB, redis+sentinel://…, redis+cluster://HOST:PORT?addr=HOST2:PORT2…, or a file ending in .db (or file:PATH) for the embedded store (default DATA/"+EmbeddedStoreFile+")")
	fs.StringVar(&s.storeCA, "store-ca", "", "a PEM `file` of the CAs that issue the Redis servers' certificates, for a rediss:// store: trusted instead of the system's CAs (default: the system's)")
	return s
}

// isSetting reports whether a flag is one of the settings.
func isSetting(name string) bool { return name == "data" || name == "store" || name == "store-ca" }

// onStore is the runFunc of a command that works on the store: it opens
// the store the settings name, runs fn with it, and closes it. These
// commands work on the store directly, so they work while a server runs
// on the same store.
func (s *settings) onStore(fn func(e *env, st store.Store, args []string) error) runFunc {
	return func(e *env, args []string) error {
		if path, missing := s.missingEmbeddedStore(); missing {
			return fmt.Errorf("there is no store at %s: is --data (or --store) the one the server uses? gatehouse init sets up a new one", path)
		}
		st, err := openStore(e, s, nil)
		if err != nil {
			return err
		}
		defer st.Close()
		// On a store that lost its data, "no such account" would be a
		// lie, and a new account would hide the loss.
		if err := st.CheckMarker(e.ctx, ""); errors.Is(err, store.ErrDataLost) {
			return fmt.Errorf("%w: the store is not set up (run gatehouse init), or it has lost its data: restore it from a backup, or start afresh with gatehouse init --store-only", err)
		} else if err != nil {
			return err
		}
		return fn(e, st, args)
	}
}

// missingEmbeddedStore reports whether the settings name an embedded
// store whose file does not exist, and its path. Only init and serve
// make one: any other command given a mistyped --data or --store would
// otherwise make an empty store there, and then say that the store has
// lost its data.
func (s *settings) missingEmbeddedStore() (string, bool) {
	if strings.Contains(s.store, "://") {
		return "", false
	}
	path, explicit := strings.CutPrefix(s.store, "file:")
	if path != "" && !explicit && !strings.HasSuffix(path, ".db") {
		return "", false // not a store file: openStore says what to give
	}
	if path == "" {
		path = filepath.Join(s.data, EmbeddedStoreFile)
	}
	_, err := os.Stat(path)
	return path, errors.Is(err, fs.ErrNotExist)
}

// defaultAddr is the address serve listens on, and health asks, by
// default.
const defaultAddr = ":8443"

// serveOptions are serve's flags.
type serveOptions struct {
	*settings
	addr          string
	tlsCert       string
	tlsKey        string
	clientCAs     stringList
	intermediates stringList
	crls          stringList
	crlRefresh    time.Duration
	sessionIdle   time.Duration
	sessionMax    time.Duration
	cookieDom     string
	proxies       stringList
	certHeader    string
	// verifySocket, when set, is the path of the verify socket: forward
	// auth over plain HTTP for a proxy on the same host (socket.go).
	verifySocket string
	// enrollWithTOTP and maxDeviceCerts: see server.Config.
	enrollWithTOTP bool
	maxDeviceCerts int
	// storeLease: see redisstore.Store.BarrierOnly.
	storeLease bool
}

// addServeOptions registers serve's flags, the settings among them, on fs.
func addServeOptions(fs *flag.FlagSet) *serveOptions {
	o := &serveOptions{settings: addSettings(fs)}
	fs.StringVar(&o.addr, "addr", defaultAddr, "HTTPS listen `address`")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "server certificate `file` (PEM; default DATA/pki/server.crt)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "server private key `file` (PEM; default DATA/pki/server.key)")
	fs.Var(&o.clientCAs, "client-ca", "client CA certificate `file` (PEM; repeatable; default DATA/pki/ca.crt)")
	fs.Var(&o.intermediates, "client-intermediate", "issuing CA certificate `file` under a client CA (PEM; repeatable): completes chains clients send without it, and may sign CRLs")
	fs.Var(&o.crls, "crl", "certificate revocation list `file` (PEM or DER, signed by a client CA or client intermediate; repeatable; reloaded when it changes)")
	fs.DurationVar(&o.crlRefresh, "crl-refresh", time.Minute, "how often to look for changed CRL files")
	fs.DurationVar(&o.sessionIdle, "session-idle", server.DefaultSessionIdle, "end a session after this long without activity (at least "+server.MinSessionIdle.String()+")")
	fs.DurationVar(&o.sessionMax, "session-max", server.DefaultSessionMax, "end a session this long after sign-in")
	fs.StringVar(&o.cookieDom, "cookie-domain", "", "share the session cookie with sibling hosts under this `domain` (for apps behind forward auth)")
	fs.Var(&o.proxies, "trusted-proxy", "accept a forwarded client certificate (see --client-cert-header) and X-Forwarded-For only from this `CIDR` (repeatable)")
	fs.StringVar(&o.verifySocket, "verify-socket", "", "also serve forward auth (GET /auth/verify, and /healthz) over plain HTTP on a Unix socket at this `path`, for a proxy on the same host; mode 0660: whoever can connect is trusted as a --trusted-proxy")
	fs.StringVar(&o.certHeader, "client-cert-header", "X-Client-Cert", "the `header` the trusted proxies forward the client certificate in: X-Client-Cert (nginx, Caddy) or X-Forwarded-Tls-Client-Cert (Traefik); a request with the other one is refused")
	fs.BoolVar(&o.enrollWithTOTP, "enroll-with-totp", false, "let a new device's certificate request be approved on that device with a fresh TOTP code (a phished password and code then become a certificate)")
	fs.BoolVar(&o.storeLease, "store-lease", true, "on one Redis server, let the store cache answer without asking Redis while this instance holds its lease (writers wait for it instead); false: every request waits for a round trip to Redis, for hosts whose clock can stop (virtual machines paused or restored from a snapshot)")
	fs.IntVar(&o.maxDeviceCerts, "max-device-certificates", server.DefaultMaxDeviceCertificates, "the most valid certificates an account may hold before a new device's request is refused")
	return o
}

// envFlags are the flags the environment may set, as GATEHOUSE_<FLAG>
// (upper-cased, "-" as "_"), on the commands that have them; a flag on
// the command line wins. A command's own choices (--role, --out…) are
// never taken from the environment.
var envFlags = []string{"data", "store", "store-ca", "addr", "tls-cert", "tls-key", "client-ca", "client-intermediate", "crl", "crl-refresh", "session-idle", "session-max", "cookie-domain", "trusted-proxy", "verify-socket", "client-cert-header", "enroll-with-totp", "max-device-certificates", "store-lease"}

// parse parses args into fs, allowing flags after positional arguments
// ("user add alice --role employee"), then fills unset envFlags from the
// environment. It returns the positional arguments. A flag fs cannot
// parse is a flagError; -h or --help is flag.ErrHelp.
func parse(e *env, fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, flagError{err}
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range envFlags {
		if set[name] || fs.Lookup(name) == nil {
			continue
		}
		val := e.getenv(envName(name))
		if val == "" {
			continue
		}
		values := []string{val}
		if _, ok := fs.Lookup(name).Value.(*stringList); ok {
			values = strings.Split(val, ",")
		}
		for _, v := range values {
			if err := fs.Set(name, strings.TrimSpace(v)); err != nil {
				return nil, fmt.Errorf("environment %s: %w", envName(name), err)
			}
		}
	}
	return positional, nil
}

// envName is the environment variable for a flag: data → GATEHOUSE_DATA.
func envName(flagName string) string {
	return "GATEHOUSE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*l = append(*l, v)
	return nil
}

// tlsHint says what to do about a Redis server's certificate that TLS
// refused, or "" when err is not that; storeURL is --store, whose
// tls_server_name, when given, is the name the certificate was checked
// against.
func tlsHint(err error, storeURL string) string {
	var wrongName x509.HostnameError
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &wrongName) && strings.Contains(storeURL, "tls_server_name="):
		return "Redis's TLS certificate does not name the tls_server_name in --store: give the name the servers' certificate holds"
	case errors.As(err, &wrongName):
		return "Redis's TLS certificate does not name the host it was reached at: the host in --store, or for a Cluster node or a Sentinel's master the address or host name it announces; give the server a certificate for that name, or, where every server shares one certificate, add tls_server_name=NAME (a name it holds) to the URL"
	case errors.As(err, &invalid) && (invalid.Reason == x509.Expired):
		return "Redis's TLS certificate has expired or is not valid yet"
	case errors.As(err, &unknown):
		return "Redis's TLS certificate is not from a CA this host trusts: for a private CA, give its certificate with --store-ca (GATEHOUSE_STORE_CA)"
	}
	var refused *tls.CertificateVerificationError
	if errors.As(err, &refused) {
		return "Redis's TLS certificate was refused"
	}
	return ""
}

// readCAs reads a PEM file of CA certificates.
func readCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// openStore opens the store named by --store: Redis for a redis URL,
// else the embedded store's file (by default DATA/gatehouse.db; the data
// directory is created, mode 0700, if need be). The Redis client's own
// messages go to log (the server's), or nowhere for a command, whose
// error says what failed.
func openStore(e *env, o *settings, log *slog.Logger) (store.Store, error) {
	switch {
	case strings.HasPrefix(o.store, "redis://"), strings.HasPrefix(o.store, "rediss://"), strings.HasPrefix(o.store, "unix://"),
		strings.HasPrefix(o.store, "redis+sentinel://"), strings.HasPrefix(o.store, "rediss+sentinel://"),
		strings.HasPrefix(o.store, "redis+cluster://"), strings.HasPrefix(o.store, "rediss+cluster://"):
		redisstore.SetClientLog(log)
		var opts []redisstore.Option
		if o.storeCA != "" {
			pool, err := readCAs(o.storeCA)
			if err != nil {
				return nil, fmt.Errorf("--store-ca: %w", err)
			}
			opts = append(opts, redisstore.WithCAs(pool))
		}
		s, err := redisstore.Open(e.ctx, o.store, opts...)
		if hint := tlsHint(err, o.store); hint != "" {
			return nil, fmt.Errorf("open store %s: %w (%s; README, \"Redis over TLS\")", redactURL(o.store), err, hint)
		}
		if errors.Is(err, store.ErrUnavailable) {
			where := "is Redis running at that address? check --store or GATEHOUSE_STORE"
			if strings.HasPrefix(o.store, "unix://") {
				where = "is Redis listening on that socket, and may this user open it? see unixsocket and unixsocketperm in Redis's configuration, and the socket's group; check --store or GATEHOUSE_STORE"
			}
			return nil, fmt.Errorf("open store %s: %w (%s)", redactURL(o.store), err, where)
		}
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", redactURL(o.store), err)
		}
		return s, nil
	case o.storeCA != "":
		return nil, errors.New("--store-ca is for a Redis store over TLS (rediss://…); the embedded store has no server to check")
	case strings.Contains(o.store, "://"):
		return nil, fmt.Errorf("unsupported --store %q: use redis://HOST:PORT/DB, rediss://…, unix:///PATH/redis.sock?db=DB, redis+sentinel://…, redis+cluster://… or a file for the embedded store", redactURL(o.store))
	}
	path, explicit := strings.CutPrefix(o.store, "file:")
	if path != "" && !explicit && !strings.HasSuffix(path, ".db") {
		// "localhost:6379" with its scheme forgotten must not quietly
		// become a new, empty database file.
		return nil, fmt.Errorf("--store %q: give redis://HOST:PORT/DB for Redis, or a file ending in .db (or file:PATH) for the embedded store", redactURL(o.store))
	}
	if path == "" {
		path = filepath.Join(o.data, EmbeddedStoreFile)
		if err := os.MkdirAll(o.data, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	s, err := sqlitestore.Open(e.ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open embedded store %s: the directory %s does not exist: create it or choose another --store", path, filepath.Dir(path))
	}
	if err != nil {
		return nil, fmt.Errorf("open embedded store %s: %w", path, err)
	}
	return s, nil
}

// storeName describes the store for the log, without a password.
func storeName(o *settings) string {
	if o.store == "" {
		return "embedded " + filepath.Join(o.data, EmbeddedStoreFile)
	}
	return redactURL(o.store)
}

// redactURL hides the passwords in a store URL before it is printed or
// logged: the one in its user part (for Sentinel, the Sentinels') and
// any parameter whose name holds "password" (for Sentinel, password= is
// the master's). A URL that does not parse is shown by its scheme only:
// where its parts begin and end cannot be told, nor where a password is.
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		// Not a URL (a file, or a URL without its scheme): whatever
		// comes before an "@" may be a password.
		if at := strings.LastIndex(s, "@"); at >= 0 {
			return "xxxxx@" + s[at+1:]
		}
		return s
	}
	u, err := neturl.Parse(s)
	if err != nil {
		if scheme, _, ok := strings.Cut(s, "://"); ok && !strings.ContainsAny(scheme, ":@/?#") {
			return scheme + "://…"
		}
		return "…"
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q[k] = []string{"xxxxx"}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// layout names the files of a data directory. The layout is fixed so that
// scripts can rely on it.
type layout struct{ dir string }

func (l layout) path(parts ...string) string {
	return filepath.Join(append([]string{l.dir}, parts...)...)
}
func (l layout) caCert() string       { return l.path("pki", "ca.crt") }
func (l layout) caKey() string        { return l.path("pki", "ca.key") }
func (l layout) serverCert() string   { return l.path("pki", "server.crt") }
func (l layout) serverKey() string    { return l.path("pki", "server.key") }
func (l layout) sessionKey() string   { return l.path("session.key") }
func (l layout) totpKey() string      { return l.path("totp.key") }
func (l layout) initialAdmin() string { return l.path("initial-admin.txt") }
func (l layout) adminPrefix() string  { return l.path("initial-admin") }
