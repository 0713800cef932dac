package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
)

// An app's authorization request is tied to the browser that started it.
// Without that, anyone could start a sign-in at an app in their own
// browser, send the /oauth2/login?id=… link to someone signed in to the
// portal, and take the code their session granted at the callback. The
// browser that asks /oauth2/authorize gets a cookie keyed to the request
// (an HMAC of its ID under a key of the server's); /oauth2/login, the
// refusal and the callback serve only a browser that carries it.

// oidcBindingCookiePrefix starts the cookie of one authorization request;
// the rest of the name is the start of its MAC, so that requests made in
// several tabs do not replace each other's cookies.
const oidcBindingCookiePrefix = "__Host-gatehouse-oidc-"

// oidcBindingMAC is the MAC of an authorization request's ID.
func (s *Server) oidcBindingMAC(id string) string {
	m := hmac.New(sha256.New, s.sessionKey)
	m.Write([]byte("gatehouse oidc request binding v1\x00" + id))
	return hex.EncodeToString(m.Sum(nil))
}

// oidcBound reports whether r carries the cookie of request id.
func (s *Server) oidcBound(r *http.Request, id string) bool {
	want := s.oidcBindingMAC(id)
	c, err := r.Cookie(oidcBindingCookiePrefix + want[:16])
	return err == nil && hmac.Equal([]byte(c.Value), []byte(want))
}

// errOIDCOtherBrowser refuses a step of an authorization request made in
// another browser.
var errOIDCOtherBrowser = &Error{Status: http.StatusForbidden, Code: "oidc_other_browser",
	Message: "this sign-in request was started in another browser; go back to the app in this browser and sign in from there"}

// requireOIDCBinding serves h only to the browser that started the
// request ?id= names.
func (s *Server) requireOIDCBinding(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.oidcBound(r, r.URL.Query().Get("id")) {
			s.fail(w, r, errOIDCOtherBrowser)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bindOIDCRequests wraps the authorize endpoint: when it sends the
// browser on to /oauth2/login?id=…, the browser gets that request's
// cookie with the redirect.
func (s *Server) bindOIDCRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&bindingWriter{ResponseWriter: w, s: s}, r)
	})
}

// bindingWriter sets the binding cookie as the redirect is written.
type bindingWriter struct {
	http.ResponseWriter
	s       *Server
	written bool
}

func (b *bindingWriter) WriteHeader(status int) {
	if !b.written {
		b.written = true
		if loc, err := url.Parse(b.Header().Get("Location")); err == nil && strings.HasSuffix(loc.Path, oidcLoginPath) {
			if id := loc.Query().Get("id"); id != "" {
				mac := b.s.oidcBindingMAC(id)
				http.SetCookie(b.ResponseWriter, &http.Cookie{Name: oidcBindingCookiePrefix + mac[:16], Value: mac,
					Path: "/", MaxAge: int(oidcRequestLifetime.Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
			}
		}
	}
	b.ResponseWriter.WriteHeader(status)
}

func (b *bindingWriter) Write(p []byte) (int, error) {
	if !b.written {
		b.WriteHeader(http.StatusOK)
	}
	return b.ResponseWriter.Write(p)
}
