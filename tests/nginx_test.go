package tests

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/auth/ca"
	"gatehouse/store/storetest"
	"gatehouse/tests/nginxconf"
)

// Forward auth through a real nginx: the portal at
// https://portal.gatehouse.test:PORT, nginx in front of a test app as
// https://app.gatehouse.test:N (the wiki, for employees),
// https://ops.gatehouse.test:N (for admins) and
// https://other.gatehouse.test:N (protected, but never registered), all
// sharing the session cookie through --cookie-domain gatehouse.test. The
// nginx configuration is the one docs/forward-auth.md shows.
//
// Every client here is a browser, not the proxy: it connects from
// 127.0.0.2, and only 127.0.0.1 (nginx) is a trusted proxy.

// nginxDomain is the domain every host of this test lives under: the
// clients resolve any name under it to 127.0.0.1.
const nginxDomain = "gatehouse.test"

// domainCookie is the session cookie's name with --cookie-domain: the
// __Secure- prefix, since __Host- forbids a Domain attribute.
const domainCookie = "__Secure-gatehouse"

// browserAddr is the source address of every client connection: not the
// trusted proxy.
var browserAddr = net.ParseIP("127.0.0.2")

func TestNginx_ForwardAuthWithCookieDomainAndForwardedCertificate(t *testing.T) {
	t.Parallel()
	nginxBin := nginxBinary(t)
	p, pki, portalURL := startProxiedPortal(t, "--trusted-proxy", "127.0.0.1/32")

	app := startEchoApp(t)
	n := startNginx(t, nginxBin, nginxSite{
		Portal:     p,
		PortalName: "portal." + nginxDomain,
		CA:         filepath.Join(p.Data, "pki", "ca.crt"),
		App:        app.Listener.Addr().String(),
		Hosts:      []string{"app." + nginxDomain, "ops." + nginxDomain, "other." + nginxDomain},
		certCA:     pki,
	})
	wikiURL := n.url("app") + "/"
	opsURL := n.url("ops") + "/"

	pool, adminCert, laptop := setUpNginxApps(t, p, portalURL, wikiURL, opsURL)
	adminPEM := ca.CertPEM(leafOf(t, adminCert))
	dana := newSiteClient(t, pool, nil)
	// An original URL whose query needs escaping inside rd.
	page := n.url("app") + "/some/page?x=1&y=a%20b"

	t.Run("AnonymousIsSentToTheLoginPageWithTheOriginalURL", func(t *testing.T) {
		hits := app.hits.Load()
		r := dana.get(t, page)
		wantStatus(t, r, http.StatusFound)
		if want := portalURL + "/login?rd=" + url.QueryEscape(page); r.location() != want {
			t.Errorf("Location = %q, want %q", r.location(), want)
		}
		app.wantNoHitsSince(t, hits)
	})

	t.Run("SignInReturnsToTheAppWhichSeesTheUser", func(t *testing.T) {
		form := loginForm("dana", danaPassword)
		form.Set("rd", page)
		r := dana.post(t, portalURL+"/login", form)
		wantRedirect(t, r, page)
		c := cookieNamed(r.SetCookies, domainCookie)
		if c == nil || c.Domain != nginxDomain || !c.Secure || !c.HttpOnly {
			t.Fatalf("login set %+v, want a Secure, HttpOnly %s cookie for Domain=%s", c, domainCookie, nginxDomain)
		}
		if dana.cookie(t, page) == "" {
			t.Fatalf("the browser would not send %s to %s", domainCookie, page)
		}

		r = dana.get(t, page)
		wantStatus(t, r, http.StatusOK)
		saw := decodeEcho(t, r)
		if saw.URI != "/some/page?x=1&y=a%20b" {
			t.Errorf("the app was asked for %q, want /some/page?x=1&y=a%%20b", saw.URI)
		}
		saw.want(t, "Remote-User", "dana")
		saw.want(t, "Remote-Email", "dana@example.com")
		saw.want(t, "Remote-Roles", "employee")
		saw.want(t, "Remote-Factors", "password")

		// A form posted to the app is let through too: nginx asks
		// GET /auth/verify whatever the method.
		r = dana.post(t, wikiURL+"form", url.Values{"title": {"Minutes"}})
		wantStatus(t, r, http.StatusOK)
		saw = decodeEcho(t, r)
		if saw.Method != http.MethodPost || saw.URI != "/form" {
			t.Errorf("the app got %s %s, want POST /form", saw.Method, saw.URI)
		}
		saw.want(t, "Remote-User", "dana")
	})

	t.Run("ClientRemoteHeadersNeverReachTheApp", func(t *testing.T) {
		forged := http.Header{
			"Remote-User":    {"admin"},
			"Remote-Roles":   {"admin"},
			"Remote-Email":   {"admin@example.com"},
			"Remote-Factors": {"password,certificate"},
			"Remote_user":    {"admin"}, // nginx drops names with "_"
			"X-Client-Cert":  {url.QueryEscape(string(adminPEM))},
		}
		r := dana.getWith(t, wikiURL, forged)
		wantStatus(t, r, http.StatusOK)
		saw := decodeEcho(t, r)
		saw.want(t, "Remote-User", "dana")
		saw.want(t, "Remote-Email", "dana@example.com")
		saw.want(t, "Remote-Roles", "employee")
		saw.want(t, "Remote-Factors", "password")
		for name, values := range saw.Headers {
			switch name {
			case "Remote-User", "Remote-Email", "Remote-Roles", "Remote-Factors":
			default:
				if strings.HasPrefix(strings.ToLower(name), "remote") {
					t.Errorf("the app got the client's %s: %q", name, values)
				}
			}
		}

		// Without a session, forged headers are no way in either.
		hits := app.hits.Load()
		anon := newSiteClient(t, pool, nil)
		wantStatus(t, anon.getWith(t, wikiURL, forged), http.StatusFound)
		app.wantNoHitsSince(t, hits)
	})

	t.Run("AdminAppNeedsTheAdminRoleWithItsCertificate", func(t *testing.T) {
		hits := app.hits.Load()
		wantStatus(t, dana.get(t, opsURL), http.StatusForbidden)

		phone := newSiteClient(t, pool, nil)
		wantRedirect(t, phone.post(t, portalURL+"/login", loginForm("admin", p.AdminPassword)), "/")
		wantStatus(t, phone.get(t, opsURL), http.StatusForbidden)
		app.wantNoHitsSince(t, hits)
		// The same password-only session still opens the wiki.
		r := phone.get(t, wikiURL)
		wantStatus(t, r, http.StatusOK)
		saw := decodeEcho(t, r)
		saw.want(t, "Remote-User", "admin")
		saw.want(t, "Remote-Roles", "employee")
		saw.want(t, "Remote-Factors", "password")

		// The certificate presented to nginx reaches the portal in
		// X-Client-Cert, and matches the one the session signed in with.
		r = laptop.get(t, opsURL)
		wantStatus(t, r, http.StatusOK)
		saw = decodeEcho(t, r)
		saw.want(t, "Remote-User", "admin")
		saw.wantListed(t, "Remote-Roles", "admin")
		saw.wantListed(t, "Remote-Factors", "certificate")
	})

	t.Run("StolenCookieWithoutTheCertificateIsPasswordOnly", func(t *testing.T) {
		stolen := laptop.cookie(t, opsURL)
		thief := newSiteClient(t, pool, nil)
		hits := app.hits.Load()
		h := http.Header{"Cookie": {domainCookie + "=" + stolen}}
		wantStatus(t, thief.getWith(t, opsURL, h), http.StatusForbidden)
		// Nor does the certificate (public, after all) in a header help,
		// in any form the portal reads: nginx sends X-Client-Cert only
		// from the TLS handshake, and clears X-Forwarded-Tls-Client-Cert.
		h.Set("X-Client-Cert", url.QueryEscape(string(adminPEM)))
		wantStatus(t, thief.getWith(t, opsURL, h), http.StatusForbidden)
		h.Del("X-Client-Cert")
		h.Set("X-Forwarded-Tls-Client-Cert", base64.StdEncoding.EncodeToString(leafOf(t, adminCert).Raw))
		wantStatus(t, thief.getWith(t, opsURL, h), http.StatusForbidden)
		app.wantNoHitsSince(t, hits)

		r := thief.getWith(t, wikiURL, h)
		wantStatus(t, r, http.StatusOK)
		saw := decodeEcho(t, r)
		saw.want(t, "Remote-User", "admin")
		saw.want(t, "Remote-Roles", "employee")
		saw.want(t, "Remote-Factors", "password")
	})

	t.Run("ForwardedCertificateCountsOnlyFromTheTrustedProxy", func(t *testing.T) {
		stolen := laptop.cookie(t, opsURL)
		verify := func(b *siteClient, original string) response {
			t.Helper()
			return b.getWith(t, portalURL+"/auth/verify", http.Header{
				"Cookie":         {domainCookie + "=" + stolen},
				"X-Original-Url": {original},
				"X-Client-Cert":  {url.QueryEscape(string(adminPEM))},
			})
		}
		// From 127.0.0.2 with no certificate in the handshake, the
		// header is ignored: the session is password-only.
		thief := newSiteClient(t, pool, nil)
		r := verify(thief, opsURL)
		wantStatus(t, r, http.StatusForbidden)
		if roles := r.Header.Get("Remote-Roles"); roles != "" {
			t.Errorf("a refused verify carries Remote-Roles %q", roles)
		}
		r = verify(thief, wikiURL)
		wantStatus(t, r, http.StatusOK)
		if roles := r.Header.Get("Remote-Roles"); inList(roles, "admin") {
			t.Errorf("Remote-Roles = %q from an untrusted address with a forwarded certificate, want no admin", roles)
		}
		if got := r.Header.Get("Remote-Factors"); got != "password" {
			t.Errorf("Remote-Factors = %q, want password", got)
		}
		// Control: the same request presenting the certificate in the
		// handshake is the admin.
		r = verify(laptop, opsURL)
		wantStatus(t, r, http.StatusOK)
		if roles := r.Header.Get("Remote-Roles"); !inList(roles, "admin") {
			t.Errorf("Remote-Roles = %q with the certificate in the handshake, want admin among them", roles)
		}
	})

	t.Run("UnregisteredAppIsRefused", func(t *testing.T) {
		hits := app.hits.Load()
		wantStatus(t, dana.get(t, n.url("other")+"/"), http.StatusForbidden)
		wantStatus(t, laptop.get(t, n.url("other")+"/"), http.StatusForbidden)
		app.wantNoHitsSince(t, hits)

		r := dana.getWith(t, portalURL+"/auth/verify", http.Header{"X-Original-Url": {n.url("unknown") + "/"}})
		wantStatus(t, r, http.StatusForbidden)
		var e apiError
		decodeJSON(t, r, &e)
		if e.Code != "unknown_app" {
			t.Errorf("verify of an unregistered URL: code %q, want unknown_app", e.Code)
		}

		// A request naming one site on a connection made to another is
		// refused by nginx itself (ssl_verify_client is on).
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, wikiURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = strings.TrimPrefix(n.url("ops"), "https://")
		wantStatus(t, send(t, dana.jar, req), http.StatusMisdirectedRequest)
		app.wantNoHitsSince(t, hits)

		// A name nginx serves no site for gets no TLS handshake, so no
		// protected site answers for it (with X-Original-URL naming a
		// host the portal might know as another app). An attacker does
		// not care whether the certificate fits: skip verification.
		d := tls.Dialer{
			NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: browserAddr}, Timeout: requestTimeout},
			Config:    &tls.Config{ServerName: "unlisted." + nginxDomain, InsecureSkipVerify: true},
		}
		if c, err := d.DialContext(t.Context(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port))); err == nil {
			c.Close()
			t.Error("nginx completed a TLS handshake for a host it serves no site for, want it refused")
		}
	})

	t.Run("ReturnURLToAnUnregisteredHostGoesHome", func(t *testing.T) {
		b := newSiteClient(t, pool, nil)
		form := loginForm("dana", danaPassword)
		form.Set("rd", "https://evil.example/")
		wantRedirect(t, b.post(t, portalURL+"/login", form), "/")
		form.Set("rd", "https://evil."+nginxDomain+":"+strconv.Itoa(n.port)+"/")
		wantRedirect(t, b.post(t, portalURL+"/login", form), "/")
	})
}

// Forward auth through a real nginx that asks the portal over its verify
// socket (serve --verify-socket), as on one host: no TLS on that hop and
// no --trusted-proxy, yet the certificate nginx forwards counts, because
// the socket alone is trusted. The socket file is mode 0660 and is gone
// once the portal stops.
func TestNginx_ForwardAuthOverTheVerifySocket(t *testing.T) {
	t.Parallel()
	nginxBin := nginxBinary(t)
	sock := filepath.Join(t.TempDir(), "verify.sock")
	p, pki, portalURL := startProxiedPortal(t, "--verify-socket", sock)

	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Fatalf("--verify-socket %s: %v, %v; want a socket with mode 0660", sock, fi, err)
	}

	app := startEchoApp(t)
	n := startNginx(t, nginxBin, nginxSite{
		Portal:     p,
		PortalName: "portal." + nginxDomain,
		App:        app.Listener.Addr().String(),
		Hosts:      []string{"app." + nginxDomain, "ops." + nginxDomain},
		Socket:     sock,
		certCA:     pki,
	})
	wikiURL := n.url("app") + "/"
	opsURL := n.url("ops") + "/"

	pool, _, laptop := setUpNginxApps(t, p, portalURL, wikiURL, opsURL)

	// Anonymous: to the login page, at the portal's public address.
	hits := app.hits.Load()
	dana := newSiteClient(t, pool, nil)
	page := wikiURL + "some/page?x=1"
	r := dana.get(t, page)
	wantStatus(t, r, http.StatusFound)
	if want := portalURL + "/login?rd=" + url.QueryEscape(page); r.location() != want {
		t.Errorf("anonymous: Location = %q, want %q", r.location(), want)
	}
	app.wantNoHitsSince(t, hits)

	// Signed in: the app page, with the user.
	wantRedirect(t, dana.post(t, portalURL+"/login", loginForm("dana", danaPassword)), "/")
	r = dana.get(t, page)
	wantStatus(t, r, http.StatusOK)
	saw := decodeEcho(t, r)
	saw.want(t, "Remote-User", "dana")
	saw.want(t, "Remote-Email", "dana@example.com")
	saw.want(t, "Remote-Roles", "employee")
	hits = app.hits.Load()
	wantStatus(t, dana.get(t, opsURL), http.StatusForbidden)

	// The certificate the admin presents to nginx reaches the portal in
	// X-Client-Cert over the socket, and counts: the admin role, which
	// needs it, is in effect.
	r = laptop.get(t, opsURL)
	wantStatus(t, r, http.StatusOK)
	saw = decodeEcho(t, r)
	saw.want(t, "Remote-User", "admin")
	saw.wantListed(t, "Remote-Roles", "admin")
	saw.wantListed(t, "Remote-Factors", "certificate")
	// The same admin without it: password-only.
	phone := newSiteClient(t, pool, nil)
	wantRedirect(t, phone.post(t, portalURL+"/login", loginForm("admin", p.AdminPassword)), "/")
	wantStatus(t, phone.get(t, opsURL), http.StatusForbidden)
	app.wantNoHitsSince(t, hits+1)

	p.server.stop(t)
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the verify socket is still there after the portal stopped: %v", err)
	}
}

// TestNginx_DocsShowTheTestedConfigs keeps docs/forward-auth.md and the
// nginx configurations tests/nginxconf writes (over the verify socket,
// and over TLS) the same.
func TestNginx_DocsShowTheTestedConfigs(t *testing.T) {
	t.Parallel()
	docs, err := os.ReadFile(filepath.Join("..", "docs", "forward-auth.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, params := range map[string]nginxconf.Params{
		"over the verify socket": {PortalSocket: "/run/gatehouse/verify.sock", PortalHost: "portal.example.com:8443"},
		"over TLS": {PortalAddr: "portal.example.com:443", PortalHost: "portal.example.com",
			PortalName: "portal.example.com", CA: "/etc/gatehouse/ca.crt"},
	} {
		params.Dir = "/var/lib/nginx"
		params.Listen = "443"
		params.Hosts = []string{"wiki.example.com"}
		params.Cert, params.Key = "/etc/nginx/tls/wiki.example.com.crt", "/etc/nginx/tls/wiki.example.com.key"
		params.App = "127.0.0.1:8080"
		var conf bytes.Buffer
		if err := nginxconf.Write(&conf, params); err != nil {
			t.Fatal(err)
		}
		// The documentation leaves out the lines that only put nginx's
		// files in the test's directory.
		_, rest, ok := strings.Cut(conf.String(), "\n    ssl_protocols ")
		if !ok {
			t.Fatalf("%s: no ssl_protocols line in\n%s", name, conf.String())
		}
		want := "```nginx\nhttp {\n    ssl_protocols " + rest + "```\n"
		if !strings.Contains(string(docs), want) {
			t.Errorf("docs/forward-auth.md does not show the tested nginx configuration %s; it should hold:\n%s", name, want)
		}
	}
}

// nginxBinary finds nginx, or skips the test (fails it under CI=true).
func nginxBinary(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("nginx"); err == nil {
		return path
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	storetest.NeedService(t, "nginx is not installed (apt-get install nginx; it needs the auth_request module, which Debian's has)")
	return ""
}

// writeServerCertFiles issues a server certificate for hosts from c and
// writes DIR/NAME.crt and DIR/NAME.key.
func writeServerCertFiles(t *testing.T, c *testCA, dir, name string, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	leaf := c.sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		DNSNames:    hosts,
		NotBefore:   now.Add(-time.Minute),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, key.Public())
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeCertPEM(t, certFile, leaf)
	keyPEM, err := ca.KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	noteKeyFile(t, keyFile)
	return certFile, keyFile
}

// echoApp is the internal app behind nginx: it answers every request
// with the URI and headers it got, as JSON, and counts requests so that
// a test can tell the app was never reached.
type echoApp struct {
	*httptest.Server
	hits atomic.Int64
}

// echoed is what the app saw.
type echoed struct {
	Method  string      `json:"method"`
	URI     string      `json:"uri"`
	Headers http.Header `json:"headers"`
}

func startEchoApp(t *testing.T) *echoApp {
	t.Helper()
	a := &echoApp{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoed{Method: r.Method, URI: r.RequestURI, Headers: r.Header})
	}))
	t.Cleanup(a.Close)
	return a
}

// wantNoHitsSince fails when the app got a request after it had hits.
func (a *echoApp) wantNoHitsSince(t *testing.T, hits int64) {
	t.Helper()
	if got := a.hits.Load(); got != hits {
		t.Errorf("the app got %d request(s) it should never have seen", got-hits)
	}
}

func decodeEcho(t *testing.T, r response) echoed {
	t.Helper()
	var e echoed
	decodeJSON(t, r, &e)
	return e
}

// want checks that the app got exactly one header name, with value.
func (e echoed) want(t *testing.T, name, value string) {
	t.Helper()
	if got := e.Headers.Values(name); len(got) != 1 || got[0] != value {
		t.Errorf("the app saw %s %q, want exactly %q", name, got, value)
	}
}

// wantListed checks that the app got one header name whose
// comma-separated list includes item.
func (e echoed) wantListed(t *testing.T, name, item string) {
	t.Helper()
	if got := e.Headers.Values(name); len(got) != 1 || !inList(got[0], item) {
		t.Errorf("the app saw %s %q, want one list containing %q", name, got, item)
	}
}

// inList reports whether the comma-separated list holds item.
func inList(list, item string) bool {
	for _, v := range strings.Split(list, ",") {
		if strings.TrimSpace(v) == item {
			return true
		}
	}
	return false
}

// nginxSite is what the nginx configuration needs to know.
type nginxSite struct {
	Portal *portal
	// PortalName is the portal's host name (its certificate's name).
	PortalName string
	// CA verifies the portal's certificate.
	CA string
	// App is the host:port of the internal app.
	App string
	// Hosts are the protected sites, one server block each.
	Hosts []string
	// Socket, when set, is the portal's verify socket: nginx asks the
	// portal there, over plain HTTP, instead of over TLS.
	Socket string

	certCA *testCA
}

// runningNginx is an nginx started for one test.
type runningNginx struct {
	port int
}

// url is https://NAME.gatehouse.test:PORT.
func (n *runningNginx) url(name string) string {
	return "https://" + net.JoinHostPort(name+"."+nginxDomain, strconv.Itoa(n.port))
}

// startNginx writes the configuration into a temporary directory, checks
// it with nginx -t, and runs nginx in the foreground until the test
// ends. Its error log is shown when the test fails.
func startNginx(t *testing.T, bin string, site nginxSite) *runningNginx {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := writeServerCertFiles(t, site.certCA, dir, "sites", site.Hosts...)
	n := &runningNginx{port: freePort(t)}
	data := nginxconf.Params{
		Dir:          dir,
		Listen:       net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)),
		Hosts:        site.Hosts,
		Cert:         certFile,
		Key:          keyFile,
		App:          site.App,
		PortalAddr:   site.Portal.Addr,
		PortalHost:   net.JoinHostPort(site.PortalName, strconv.Itoa(port(site.Portal.Addr))),
		PortalName:   site.PortalName,
		CA:           site.CA,
		PortalSocket: site.Socket,
	}
	if os.Geteuid() == 0 {
		// The temporary directory is private to the user running the
		// tests; workers write their temporary files in it.
		data.User = "root"
	}
	var conf bytes.Buffer
	if err := nginxconf.Write(&conf, data); err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(dir, "error.log")
	args := []string{"-p", dir, "-c", confFile, "-e", errorLog,
		"-g", fmt.Sprintf("daemon off; pid %s; error_log %s info;", filepath.Join(dir, "nginx.pid"), errorLog)}

	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\nnginx.conf:\n%s", err, out, conf.String())
	}
	// Registered before the process's own cleanup, so it runs once nginx
	// has stopped.
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(errorLog)
			t.Logf("nginx error.log:\n%s", b)
		}
	})
	proc := startProcess(t, exec.Command(bin, args...), dir, "nginx")
	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.DialTimeout("tcp", data.Listen, time.Second)
		if err == nil {
			c.Close()
			return n
		}
		select {
		case <-proc.done:
			t.Fatalf("nginx exited: %v", proc.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s within %v: %v", data.Listen, readyTimeout, err)
		}
		time.Sleep(readyPoll)
	}
}

// siteClient is a person's browser: it resolves every name under
// gatehouse.test to 127.0.0.1, connects from 127.0.0.2 (so it is never
// the trusted proxy), trusts only the portal's CA, presents one client
// certificate (or none) to every server that asks, keeps cookies, and
// does not follow redirects.
type siteClient struct {
	jar  *http.Client
	bare *http.Client // no cookies but those a test sets
}

// startProxiedPortal starts a portal behind a proxy under nginxDomain:
// its certificate names portal.gatehouse.test (and localhost, for the
// harness's readiness check), the session cookie is shared with the
// domain's apps, and flags are added. It returns the portal, the CA that
// issued its certificates and the portal's public URL.
func startProxiedPortal(t *testing.T, flags ...string) (*portal, *testCA, string) {
	t.Helper()
	p := initPortal(t)
	pki := p.builtinCA(t)
	portalCert, portalKey := writeServerCertFiles(t, pki, t.TempDir(), "portal", "portal."+nginxDomain, "localhost")
	p.start(t, append([]string{"--tls-cert", portalCert, "--tls-key", portalKey, "--cookie-domain", nginxDomain}, flags...)...)
	return p, pki, "https://" + net.JoinHostPort("portal."+nginxDomain, strconv.Itoa(port(p.Addr)))
}

// setUpNginxApps signs the admin in with the certificate (laptop), has
// it register the wiki app (for employees) and the ops app (for admins),
// and adds dana, an employee.
func setUpNginxApps(t *testing.T, p *portal, portalURL, wikiURL, opsURL string) (*x509.CertPool, tls.Certificate, *siteClient) {
	t.Helper()
	pool, err := p.caPool()
	if err != nil {
		t.Fatal(err)
	}
	adminCert := p.adminCert(t)
	laptop := newSiteClient(t, pool, &adminCert)
	wantRedirect(t, laptop.post(t, portalURL+"/login", loginForm("admin", p.AdminPassword)), "/")
	for name, a := range map[string]appJSONBody{
		"wiki": {URL: wikiURL, Roles: []string{"employee"}},
		"ops":  {URL: opsURL, Roles: []string{"admin"}},
	} {
		wantStatus(t, laptop.putJSON(t, portalURL+"/api/admin/apps/"+name, a), http.StatusCreated)
	}
	p.cli(t, danaPassword+"\n", "user", "add", "dana", "--role", "employee", "--email", "dana@example.com", "--password-stdin")
	return pool, adminCert, laptop
}

func newSiteClient(t *testing.T, roots *x509.CertPool, cert *tls.Certificate) *siteClient {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, p, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if !strings.HasSuffix(host, "."+nginxDomain) {
				return nil, fmt.Errorf("no such host in this test: %s", host)
			}
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: browserAddr}}
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", p))
		},
		TLSClientConfig: &tls.Config{
			RootCAs:    roots,
			MinVersion: tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if cert == nil {
					return &tls.Certificate{}, nil
				}
				return cert, nil
			},
		},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &siteClient{
		jar:  &http.Client{Transport: tr, Jar: jar, CheckRedirect: noRedirect, Timeout: requestTimeout},
		bare: &http.Client{Transport: tr, CheckRedirect: noRedirect, Timeout: requestTimeout},
	}
}

func (b *siteClient) get(t *testing.T, rawURL string) response {
	t.Helper()
	return b.getWith(t, rawURL, nil)
}

// getWith sends GET rawURL with extra headers. With a Cookie header it
// sends only that (a replayed cookie), not the jar's.
func (b *siteClient) getWith(t *testing.T, rawURL string, h http.Header) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if h.Get("Cookie") != "" {
		return send(t, b.bare, req)
	}
	return send(t, b.jar, req)
}

// post sends an urlencoded form.
func (b *siteClient) post(t *testing.T, rawURL string, form url.Values) response {
	t.Helper()
	noteFormSecrets(form)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return send(t, b.jar, req)
}

// appJSONBody is an app in the admin API.
type appJSONBody struct {
	URL   string   `json:"url"`
	Roles []string `json:"roles"`
}

// putJSON sends PUT rawURL with v as JSON.
func (b *siteClient) putJSON(t *testing.T, rawURL string, v any) response {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return send(t, b.jar, req)
}

// cookie is the value of the session cookie the browser would send to
// rawURL, or "".
func (b *siteClient) cookie(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := cookieNamed(b.jar.Jar.Cookies(u), domainCookie)
	if c == nil {
		return ""
	}
	return c.Value
}

func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}
