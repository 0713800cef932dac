package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A well-known forward-auth server, measured beside the portal: OAuth2
// Proxy (github.com/oauth2-proxy/oauth2-proxy), whose /oauth2/auth is
// the endpoint nginx's auth_request asks, with its sessions in Redis.
// SPEC "Performance" compares with Authelia, which this machine's module
// proxy does not serve; OAuth2 Proxy plays the same part for nginx and
// keeps its sessions in Redis the same way, so it is the comparison that
// can be run here. It signs people in through an OpenID Provider: the
// portal itself, so that the bench user's OAuth2 Proxy session comes
// from a real sign-in through the portal's provider.
//
// -oauth2-proxy PATH names its binary, built with
//
//	GOBIN=/tmp/gobin go install github.com/oauth2-proxy/oauth2-proxy/v7@v7.15.6
//
// It runs on the portals' CPUs, on the Redis portal's Redis, over TLS
// with the portal's server certificate, its request and auth logs off
// (the portal does not log each verify either).

// startOAuth2Proxy registers OAuth2 Proxy as an OpenID Connect app of
// p, starts it, signs the bench user in through it and returns the
// URL of its /oauth2/auth and the Cookie header of the bench user's
// session there. redisURL is the Redis its sessions go to.
func startOAuth2Proxy(dir, bin string, p *portal, redisURL string) (authURL, cookie string, stop func(), err error) {
	port, err := freePort()
	if err != nil {
		return "", "", nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return "", "", nil, err
	}
	base := "https://localhost:" + strconv.Itoa(port)
	out, err := p.cli("", "oidc-client", "set", "oauth2-proxy", "--redirect-uri", base+"/oauth2/callback", "--role", "employee", "--new-secret")
	if err != nil {
		return "", "", nil, err
	}
	_, secret, found := strings.Cut(out, "client secret (shown once): ")
	if !found {
		return "", "", nil, fmt.Errorf("oidc-client set printed no secret:\n%s", out)
	}
	secret = strings.TrimSpace(secret)
	seed := make([]byte, 32)
	rand.Read(seed)

	odir := filepath.Join(dir, "oauth2-proxy")
	if err := os.MkdirAll(odir, 0o700); err != nil {
		return "", "", nil, err
	}
	log, err := os.Create(filepath.Join(odir, "oauth2-proxy.log"))
	if err != nil {
		return "", "", nil, err
	}
	cmd := exec.Command(bin,
		"--provider=oidc",
		"--oidc-issuer-url="+p.url,
		"--provider-ca-file="+filepath.Join(p.data, "pki", "ca.crt"),
		"--client-id=oauth2-proxy",

		"--code-challenge-method=S256",
		"--scope=openid email profile",
		"--redirect-url="+base+"/oauth2/callback",
		"--https-address=127.0.0.1:"+strconv.Itoa(port),
		"--http-address=127.0.0.1:"+strconv.Itoa(httpPort),
		"--tls-cert-file="+filepath.Join(p.data, "pki", "server.crt"),
		"--tls-key-file="+filepath.Join(p.data, "pki", "server.key"),

		"--cookie-secure=true",
		"--email-domain=*",
		// The bench user has no email address: the account name stands in.
		"--oidc-email-claim=sub",
		"--upstream=static://200",
		"--skip-provider-button=true",
		"--session-store-type=redis",
		"--redis-connection-url="+redisURL,
		"--request-logging=false",
		"--auth-logging=false",
	)
	// The secrets go in the environment, not on the command line where
	// any local user could read them.
	cmd.Env = append(os.Environ(), "OAUTH2_PROXY_CLIENT_SECRET="+secret,
		"OAUTH2_PROXY_COOKIE_SECRET="+base64.RawURLEncoding.EncodeToString(seed))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return "", "", nil, err
	}
	stop = func() { cmd.Process.Signal(os.Interrupt); cmd.Wait(); log.Close() }
	fail := func(err error) (string, string, func(), error) {
		stop()
		return "", "", nil, fmt.Errorf("%w (see %s, with -keep)", err, log.Name())
	}
	if err := pin(cmd.Process.Pid, p.cpus); err != nil {
		return fail(err)
	}

	// A browser: one cookie jar for the portal and OAuth2 Proxy (both
	// "localhost"), trusting the portal's CA, dialing each by its port.
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{Timeout: 5 * time.Second}
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
		},
		TLSClientConfig: &tls.Config{RootCAs: p.roots, ServerName: "localhost"},
	}}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := browser.Get(base + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fail(errors.New("oauth2-proxy does not answer /ping"))
		}
	}
	resp, err := browser.PostForm(p.url+"/login", url.Values{"username": {benchUser}, "password": {benchPassword}})
	if err != nil {
		return fail(err)
	}
	resp.Body.Close()
	// /oauth2/start → the portal's /oauth2/authorize → its callback →
	// OAuth2 Proxy's callback (the code exchanged for tokens) → "/".
	resp, err = browser.Get(base + "/oauth2/start?rd=%2F")
	if err != nil {
		return fail(fmt.Errorf("sign-in through oauth2-proxy: %w", err))
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Host != "localhost:"+strconv.Itoa(port) {
		return fail(fmt.Errorf("sign-in through oauth2-proxy ended at %s with status %d: %s", resp.Request.URL, resp.StatusCode, body))
	}
	u, _ := url.Parse(base)
	for _, ck := range jar.Cookies(u) {
		if strings.HasPrefix(ck.Name, "_oauth2_proxy") && !strings.Contains(ck.Name, "csrf") {
			cookie = ck.Name + "=" + ck.Value
		}
	}
	if cookie == "" {
		return fail(errors.New("sign-in through oauth2-proxy set no session cookie"))
	}
	// Its answer to the session, and to nobody, as nginx would ask.
	if err := checkAnswers(browser.Transport, base+"/oauth2/auth", cookie, http.StatusAccepted, http.StatusUnauthorized); err != nil {
		return fail(err)
	}
	return base + "/oauth2/auth", cookie, stop, nil
}
