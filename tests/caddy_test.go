package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"gatehouse/auth/ca"
	"gatehouse/store/storetest"
)

// Forward auth through a real Caddy: the portal at
// https://portal.gatehouse.test:PORT, Caddy in front of the test app as
// https://app.gatehouse.test:N, where / is the wiki (for employees) and
// /admin/ the admin tool (for admins, with their certificate). Caddy asks
// the browser for a certificate and forwards it to the portal in
// X-Client-Cert as base64 DER. The Caddyfile is the one
// docs/forward-auth.md shows.
//
// As in the nginx test, every client is a browser connecting from
// 127.0.0.2; only 127.0.0.1 (Caddy) is a trusted proxy.

func TestCaddy_ForwardAuthWithForwardedCertificate(t *testing.T) {
	t.Parallel()
	caddyBin := caddyBinary(t)
	p, pki, portalURL := startProxiedPortal(t, "--trusted-proxy", "127.0.0.1/32")

	app := startEchoApp(t)
	c := startCaddy(t, caddyBin, caddySite{
		PortalAddr: p.Addr,
		PortalName: "portal." + nginxDomain,
		CA:         filepath.Join(p.Data, "pki", "ca.crt"),
		App:        app.Listener.Addr().String(),
		Host:       "app." + nginxDomain,
		certCA:     pki,
	})
	wikiURL := c.url + "/"
	adminURL := c.url + "/admin/"

	pool, err := p.caPool()
	if err != nil {
		t.Fatal(err)
	}
	adminCert := p.adminCert(t)
	adminLeaf := leafOf(t, adminCert)

	laptop := newSiteClient(t, pool, &adminCert)
	wantRedirect(t, laptop.post(t, portalURL+"/login", loginForm("admin", p.AdminPassword)), "/")
	for name, a := range map[string]appJSONBody{
		"wiki":  {URL: wikiURL, Roles: []string{"employee"}},
		"admin": {URL: adminURL, Roles: []string{"admin"}},
	} {
		wantStatus(t, laptop.putJSON(t, portalURL+"/api/admin/apps/"+name, a), http.StatusCreated)
	}
	p.cli(t, danaPassword+"\n", "user", "add", "dana", "--role", "employee", "--email", "dana@example.com", "--password-stdin")
	dana := newSiteClient(t, pool, nil)
	page := c.url + "/some/page?x=1&y=a%20b"

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
		wantRedirect(t, dana.post(t, portalURL+"/login", form), page)
		r := dana.get(t, page)
		wantStatus(t, r, http.StatusOK)
		saw := decodeEcho(t, r)
		if saw.URI != "/some/page?x=1&y=a%20b" {
			t.Errorf("the app was asked for %q, want /some/page?x=1&y=a%%20b", saw.URI)
		}
		saw.want(t, "Remote-User", "dana")
		saw.want(t, "Remote-Email", "dana@example.com")
		saw.want(t, "Remote-Roles", "employee")
		saw.want(t, "Remote-Factors", "password")
		wantStatus(t, dana.get(t, adminURL), http.StatusForbidden)
	})

	t.Run("AdminPathNeedsTheCertificatePresentedToCaddy", func(t *testing.T) {
		r := laptop.get(t, adminURL+"users")
		wantStatus(t, r, http.StatusOK)
		saw := decodeEcho(t, r)
		saw.want(t, "Remote-User", "admin")
		saw.wantListed(t, "Remote-Roles", "admin")
		saw.wantListed(t, "Remote-Factors", "certificate")

		hits := app.hits.Load()
		phone := newSiteClient(t, pool, nil)
		wantRedirect(t, phone.post(t, portalURL+"/login", loginForm("admin", p.AdminPassword)), "/")
		r = phone.get(t, adminURL)
		wantStatus(t, r, http.StatusForbidden)
		if !strings.Contains(r.Body, "certificate") {
			t.Errorf("admin without the certificate: %s, want the reason to name the certificate", r.Body)
		}
		app.wantNoHitsSince(t, hits)
		r = phone.get(t, wikiURL)
		wantStatus(t, r, http.StatusOK)
		saw = decodeEcho(t, r)
		saw.want(t, "Remote-User", "admin")
		saw.want(t, "Remote-Roles", "employee")
		saw.want(t, "Remote-Factors", "password")
	})

	t.Run("ClientCertificateHeadersAreReplacedByCaddy", func(t *testing.T) {
		b64 := base64.StdEncoding.EncodeToString(adminLeaf.Raw)
		forgeries := map[string]http.Header{
			"Caddy's form": {"X-Client-Cert": {b64}},
			"nginx's form": {"X-Client-Cert": {url.QueryEscape(string(ca.CertPEM(adminLeaf)))}},
			"Traefik's":    {"X-Forwarded-Tls-Client-Cert": {b64}},
		}
		// A stolen cookie with the admin's certificate (public, after
		// all) in a header, on a connection without it: Caddy replaces
		// or clears the header, so the session is password-only.
		stolen := laptop.cookie(t, adminURL)
		thief := newSiteClient(t, pool, nil)
		hits := app.hits.Load()
		for what, h := range forgeries {
			h := h.Clone()
			h.Set("Cookie", domainCookie+"="+stolen)
			if r := thief.getWith(t, adminURL, h); r.Status != http.StatusForbidden {
				t.Errorf("stolen cookie with the certificate in %s: %d, want 403", what, r.Status)
			}
		}
		app.wantNoHitsSince(t, hits)

		// The holder of the certificate sending garbage, or a header
		// twice, still gets the certificate roles: the portal sees only
		// what Caddy took from the handshake.
		for what, h := range map[string]http.Header{
			"garbage in X-Client-Cert":            {"X-Client-Cert": {"garbage"}},
			"X-Client-Cert twice":                 {"X-Client-Cert": {b64, "garbage"}},
			"garbage in Traefik's":                {"X-Forwarded-Tls-Client-Cert": {"garbage"}},
			"X-Client-Cert and Traefik's, forged": {"X-Client-Cert": {b64}, "X-Forwarded-Tls-Client-Cert": {b64}},
		} {
			r := laptop.getWith(t, adminURL, h)
			if r.Status != http.StatusOK {
				t.Errorf("with the certificate and %s: %d, want 200", what, r.Status)
				continue
			}
			saw := decodeEcho(t, r)
			saw.wantListed(t, "Remote-Roles", "admin")
			for _, name := range []string{"X-Client-Cert", "X-Forwarded-Tls-Client-Cert"} {
				if v := saw.Headers.Values(name); len(v) > 0 {
					t.Errorf("with %s, the app got the client's %s: %q", what, name, v)
				}
			}
		}
	})

	t.Run("ClientRemoteHeadersNeverReachTheApp", func(t *testing.T) {
		forged := http.Header{
			"Remote-User":    {"admin"},
			"Remote-Roles":   {"admin"},
			"Remote-Email":   {"admin@example.com"},
			"Remote-Factors": {"password,certificate"},
		}
		r := dana.getWith(t, wikiURL, forged)
		wantStatus(t, r, http.StatusOK)
		saw := decodeEcho(t, r)
		saw.want(t, "Remote-User", "dana")
		saw.want(t, "Remote-Email", "dana@example.com")
		saw.want(t, "Remote-Roles", "employee")
		saw.want(t, "Remote-Factors", "password")

		hits := app.hits.Load()
		anon := newSiteClient(t, pool, nil)
		wantStatus(t, anon.getWith(t, wikiURL, forged), http.StatusFound)
		app.wantNoHitsSince(t, hits)
	})
}

// caddyBinary finds caddy, or skips the test (fails it under CI=true).
func caddyBinary(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("caddy"); err == nil {
		return path
	}
	storetest.NeedService(t, "caddy is not installed (apt-get install caddy)")
	return ""
}

// caddySite is what the Caddyfile needs to know.
type caddySite struct {
	// PortalAddr is the portal's host:port; PortalName its host name
	// (its certificate's name).
	PortalAddr, PortalName string
	// CA verifies the portal's certificate.
	CA string
	// App is the host:port of the internal app.
	App string
	// Host is the protected site's name.
	Host string

	certCA *testCA
}

// caddyGlobals keep a test's Caddy to itself: no admin endpoint, no
// certificate management, no HTTP port.
const caddyGlobals = `{
	admin off
	auto_https off
}

`

// caddySiteConfig is the site block docs/forward-auth.md shows (the docs
// test below renders it with the documentation's names and compares).
var caddySiteConfig = template.Must(template.New("Caddyfile").Parse(`{{.Site}} {
{{if .Bind}}	bind {{.Bind}}
{{end}}	tls {{.Cert}} {{.Key}} {
		# Ask for a client certificate; Gatehouse verifies it.
		client_auth {
			mode request
		}
	}

	route {
		# Whatever the client sent under these names goes nowhere.
		request_header -Remote-User
		request_header -Remote-Email
		request_header -Remote-Roles
		request_header -Remote-Factors
		request_header -X-Client-Cert
		request_header -X-Forwarded-Tls-Client-Cert

		forward_auth https://{{.PortalAddr}} {
			uri /auth/verify?redirect=true
			copy_headers Remote-User Remote-Email Remote-Roles Remote-Factors

			# The portal's own name; the app's URL travels in
			# X-Forwarded-Proto, -Host and -Uri.
			header_up Host {{.PortalHost}}
			header_up X-Forwarded-Proto {scheme}
			header_up X-Forwarded-Host {hostport}
			# The certificate the browser presented to Caddy, if any.
			header_up X-Client-Cert {http.request.tls.client.certificate_der_base64}

			transport http {
				tls_server_name {{.PortalName}}
				tls_trusted_ca_certs {{.CA}}
			}
		}

		reverse_proxy {{.App}}
	}
}
`))

// caddySiteData fills caddySiteConfig.
type caddySiteData struct {
	Site, Bind, Cert, Key                       string
	PortalAddr, PortalHost, PortalName, CA, App string
}

// TestCaddy_DocsShowTheTestedCaddyfile keeps docs/forward-auth.md and
// the Caddyfile the test runs the same.
func TestCaddy_DocsShowTheTestedCaddyfile(t *testing.T) {
	t.Parallel()
	var want bytes.Buffer
	err := caddySiteConfig.Execute(&want, caddySiteData{
		Site: "wiki.example.com",
		Cert: "/etc/caddy/tls/wiki.example.com.crt", Key: "/etc/caddy/tls/wiki.example.com.key",
		PortalAddr: "portal.example.com", PortalHost: "portal.example.com", PortalName: "portal.example.com",
		CA: "/etc/gatehouse/ca.crt", App: "127.0.0.1:8080",
	})
	if err != nil {
		t.Fatal(err)
	}
	docs, err := os.ReadFile(filepath.Join("..", "docs", "forward-auth.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(docs), "```caddyfile\n"+want.String()+"```\n") {
		t.Errorf("docs/forward-auth.md does not show the tested Caddyfile; it should hold:\n%s", want.String())
	}
}

// runningCaddy is a Caddy started for one test.
type runningCaddy struct {
	// url is https://HOST:PORT.
	url string
}

// startCaddy writes the Caddyfile into a temporary directory, checks it
// with caddy validate, and runs caddy in the foreground until the test
// ends. Caddy's home, data and configuration directories are in that
// directory too.
func startCaddy(t *testing.T, bin string, site caddySite) *runningCaddy {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := writeServerCertFiles(t, site.certCA, dir, "site", site.Host)
	listenPort := freePort(t)
	conf := bytes.NewBufferString(caddyGlobals)
	err := caddySiteConfig.Execute(conf, caddySiteData{
		Site:       "https://" + net.JoinHostPort(site.Host, strconv.Itoa(listenPort)),
		Bind:       "127.0.0.1",
		Cert:       certFile,
		Key:        keyFile,
		PortalAddr: site.PortalAddr,
		PortalHost: net.JoinHostPort(site.PortalName, strconv.Itoa(port(site.PortalAddr))),
		PortalName: site.PortalName,
		CA:         site.CA,
		App:        site.App,
	})
	if err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(confFile, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))

	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	validate := exec.CommandContext(ctx, bin, "validate", "--config", confFile, "--adapter", "caddyfile")
	validate.Env = env
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s\nCaddyfile:\n%s", err, out, conf.String())
	}
	cmd := exec.Command(bin, "run", "--config", confFile, "--adapter", "caddyfile")
	cmd.Env = env
	proc := startProcess(t, cmd, dir, "caddy")
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(listenPort))
	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
			return &runningCaddy{url: "https://" + net.JoinHostPort(site.Host, strconv.Itoa(listenPort))}
		}
		select {
		case <-proc.done:
			t.Fatalf("caddy exited: %v\n%s", proc.err, proc.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy does not listen on %s within %v: %v", listen, readyTimeout, err)
		}
		time.Sleep(readyPoll)
	}
}
