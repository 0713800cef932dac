package server

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"gatehouse/store"
)

// Forward auth: a proxy (nginx auth_request, Caddy forward_auth, Traefik
// forwardAuth) asks GET /auth/verify before passing a request on to an
// internal app. The answer is 200 with the user in Remote-* headers, 401
// (not signed in; Location is the login page that returns to the
// original URL), or 403 (signed in, but not with a role the app needs).
//
// This is the hot path of every internal app: it reads the session
// (re-evaluated exactly as on the portal's own pages, certificate
// included), never runs bcrypt and renders no template.

// originalURL is the URL the client asked the proxy for: X-Original-URL
// (nginx), or X-Forwarded-Proto, -Host and -Uri (Caddy, Traefik). Some
// proxies pass the client's own headers on to the portal, so a request
// that carries both forms, naming different URLs, is refused: the client
// may have written one of them to have another app's roles checked.
func originalURL(r *http.Request) (string, error) {
	orig := r.Header.Get("X-Original-URL")
	fwd := ""
	if host := r.Header.Get("X-Forwarded-Host"); host != "" {
		proto, uri := r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Uri")
		if proto == "" {
			proto = "https"
		}
		if uri == "" {
			uri = "/"
		}
		fwd = proto + "://" + host + uri
	}
	switch {
	case orig != "" && fwd != "" && orig != fwd:
		return "", &Error{Status: http.StatusBadRequest, Code: "conflicting_original_url",
			Message: "X-Original-URL and X-Forwarded-Host/-Uri name different URLs; the proxy must set one form and clear the other"}
	case orig != "":
		return orig, nil
	case fwd != "":
		return fwd, nil
	}
	return "", &Error{Status: http.StatusBadRequest, Code: "no_original_url",
		Message: "the proxy did not say which URL was asked for; send X-Original-URL or X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Uri"}
}

func (s *Server) handleVerify() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w := &statusRecorder{ResponseWriter: rw}
		defer func() { s.metrics.verified(w.status, time.Since(start)) }()
		original, err := originalURL(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		v, err := s.visitOnce(w, r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		// A session brings the app definitions with it (one read in
		// all); without one, they are read alone.
		apps := []store.App(nil)
		if v != nil {
			apps = v.apps
		} else if apps, err = s.store.Apps(r.Context()); err != nil {
			s.fail(w, r, err)
			return
		}
		app, ok := appFor(apps, original)
		if !ok {
			// Fail closed: a URL no app claims is nobody's to open.
			if _, plain := normalTarget(original); !plain {
				s.fail(w, r, &Error{Status: http.StatusForbidden, Code: "unsafe_url",
					Message: "this address is not one the portal lets through to an app: it must be https, with a plain ASCII host and no \\, control character, .. or // in its path; open the app's own address"})
				return
			}
			s.fail(w, r, &Error{Status: http.StatusForbidden, Code: "unknown_app",
				Message: "this address is not a registered app; an administrator can add it in the admin console"})
			return
		}
		if v == nil || !v.Complete() {
			login := "https://" + r.Host + "/login?rd=" + url.QueryEscape(original)
			w.Header().Set("Location", login)
			status := http.StatusUnauthorized
			if r.URL.Query().Get("redirect") == "true" {
				// Caddy and Traefik hand the answer to the browser as it
				// is: a redirect takes it straight to the login page.
				status = http.StatusFound
			}
			s.writeJSON(w, status, map[string]string{"error": "sign in first", "code": "unauthenticated", "login": login})
			return
		}
		if !mayOpen(v, app) {
			e := forbiddenFor(v, app.Roles)
			e.Message = app.Name + ": " + e.Message
			s.fail(w, r, e)
			return
		}
		// The four values share one array: this runs on every request
		// to every app. (The names are canonical already, and the client's
		// own Remote-* headers are on the request, never the response.)
		vals := [...]string{v.Account.Name, v.Account.Email,
			strings.Join(v.Decision.EffectiveRoles, ","), strings.Join(v.Decision.Factors, ",")}
		h := w.Header()
		h["Remote-User"], h["Remote-Email"], h["Remote-Roles"], h["Remote-Factors"] = vals[0:1:1], vals[1:2:2], vals[2:3:3], vals[3:4:4]
		w.WriteHeader(http.StatusOK)
	})
}
