package server

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
)

// maxBodyBytes bounds every request body; larger bodies get 413.
const maxBodyBytes = 64 << 10

// contentSecurityPolicy allows nothing inline and nothing from elsewhere:
// pages use only the portal's own stylesheet and images.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// securityHeaders go on every response. The names are canonical and the
// values full slices (len == cap) shared by every response: assigning
// them costs no canonicalisation and no allocation per request, and a
// handler that adds to one gets a copy. Nothing writes into them.
var securityHeaders = [...]struct {
	name  string
	value []string
}{
	{"Strict-Transport-Security", []string{"max-age=63072000; includeSubDomains"}},
	{"Content-Security-Policy", []string{contentSecurityPolicy}},
	{"Referrer-Policy", []string{"no-referrer"}},
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"X-Frame-Options", []string{"DENY"}},
	{"Cross-Origin-Opener-Policy", []string{"same-origin"}},
}

// verifyHeaders go on the answers of /auth/verify instead of
// securityHeaders. Those answers are for the proxy, and the few it
// passes on to a browser (Caddy and Traefik hand over a 401 or a
// redirect as it is) arrive as the app's own response, on the app's
// host. So they carry what keeps such a body inert there (no sniffing,
// a policy that loads nothing and allows no framing, no referrer), and
// not the portal's HSTS, which would set the transport policy of the
// app's host, and with includeSubDomains of its whole domain, on the
// portal's say. With Cache-Control and the four Remote-* headers, an
// answer's headers fit Go's smallest map: this runs on every request to
// every app.
var verifyHeaders = [...]struct {
	name  string
	value []string
}{
	{"Content-Security-Policy", []string{"default-src 'none'; frame-ancestors 'none'"}},
	{"Referrer-Policy", []string{"no-referrer"}},
	{"X-Content-Type-Options", []string{"nosniff"}},
}

// verifyPath is the forward-auth route, whose answers get verifyHeaders.
const verifyPath = "/auth/verify"

// noStore is Cache-Control for everything but static files.
var noStore = []string{"no-store"}

// secure wraps the whole portal: security headers on every response,
// no caching of anything but static files, a body size limit, rejection
// of cross-origin state-changing browser requests (CSRF), and, from a
// trusted proxy, of a request that forwards a client certificate more
// than once.
func (s *Server) secure(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &Error{Status: http.StatusForbidden, Code: "cross_origin",
			Message: "this request came from another site and was refused"})
	}))
	inner := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if r.URL.Path == verifyPath {
			for _, sh := range verifyHeaders {
				h[sh.name] = sh.value
			}
		} else {
			for _, sh := range securityHeaders {
				h[sh.name] = sh.value
			}
		}
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h["Cache-Control"] = noStore
		}
		// A body is read whole here, within the limit, so that one over
		// it is refused (413) on every route, also one that never reads
		// its body and would act on the request all the same. Verify
		// reads none: a proxy may pass on the body of the request it
		// asks about (an upload to the app), which is not the portal's.
		switch {
		case r.URL.Path == verifyPath:
			r.Body = http.NoBody
		case r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0:
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(err, &tooLarge):
				s.fail(w, r, err)
				return
			case err != nil:
				s.fail(w, r, &Error{Status: http.StatusBadRequest, Code: "bad_body", Err: err,
					Message: "the request's body could not be read to its end"})
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		trusted := s.fromTrustedProxy(r)
		if !trusted && !hostMatchesSNI(r) {
			s.fail(w, r, &Error{Status: http.StatusMisdirectedRequest, Code: "misdirected",
				Message: "this request names a different host than the one its connection was made to; open the portal at its own address"})
			return
		}
		if trusted {
			if err := checkForwardedCertHeaders(r.Header); err != nil {
				s.fail(w, r, err)
				return
			}
			if err := checkProxyCertHeader(r.Header, s.certHeader); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		inner.ServeHTTP(w, r)
	})
}

// hostMatchesSNI reports whether the Host header names the host the TLS
// connection was opened for (its SNI). A connection to one name must not
// carry requests for another: that is how requests are smuggled past
// virtual-host rules and certificate checks. Without SNI (a client that
// connected to an IP address) the Host must be an IP address too.
func hostMatchesSNI(r *http.Request) bool {
	if r.TLS == nil {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if r.TLS.ServerName == "" {
		return net.ParseIP(host) != nil
	}
	return strings.EqualFold(host, strings.TrimSuffix(r.TLS.ServerName, "."))
}
