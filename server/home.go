package server

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"gatehouse/auth"
	"gatehouse/store"
)

// homePage is the home page's own content.
type homePage struct {
	Apps []store.App
	// Waiting are the account's requests for a new device's certificate
	// that this session may approve (or, without a certificate, see);
	// Mine are this session's own.
	Waiting, Mine []enrollmentJSON
	// Renew is this session's certificate when it ends within
	// RenewalWindow.
	Renew *auth.CertInfo
	// NeedsCertificate: a notice says a role needs a certificate.
	NeedsCertificate bool
}

// needsCertificate reports whether a role of the account waits for a
// certificate this sign-in does not have.
func needsCertificate(v *visit) bool {
	for _, n := range v.Decision.Notices {
		if strings.Contains(n, "needs your certificate") {
			return true
		}
	}
	return false
}

// requireVisit returns the request's complete session, or answers the
// request itself: 401 JSON for scripts, a redirect to the login page (or
// to the session's pending step) for people. It returns nil when it
// answered.
func (s *Server) requireVisit(w http.ResponseWriter, r *http.Request) *visit {
	v, err := s.visit(w, r)
	if err != nil {
		s.fail(w, r, err)
		return nil
	}
	if v != nil && v.Complete() {
		return v
	}
	if wantsJSON(r) {
		e := &Error{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: "you are not signed in"}
		if v != nil {
			e.Code, e.Message = "incomplete", "finish signing in first: change your password at /account/password"
			if v.Decision.Next == auth.StepTOTP {
				e.Message = "finish signing in first: enter your TOTP code at /login/totp"
			}
		}
		s.fail(w, r, e)
		return nil
	}
	if v != nil && v.Decision.Next == auth.StepTOTP {
		http.Redirect(w, r, withReturn("/login/totp", safeReturn(r.URL.RequestURI())), http.StatusSeeOther)
		return nil
	}
	if v != nil {
		rd := safeReturn(r.URL.RequestURI())
		if rd == "/" {
			rd = ""
		}
		http.Redirect(w, r, withReturn("/account/password", rd), http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, withReturn("/login", safeReturn(r.URL.RequestURI())), http.StatusSeeOther)
	return nil
}

func (s *Server) handleHome() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		d := homePage{Apps: appsFor(v), NeedsCertificate: needsCertificate(v)}
		for _, e := range s.openEnrollments(v.Account) {
			if j := s.enrollmentView(v, e); !j.Mine {
				d.Waiting = append(d.Waiting, j)
			} else {
				d.Mine = append(d.Mine, j)
			}
		}
		if c := v.Decision.Cert; c.Valid() && renewalDue(c.Info, s.now()) {
			d.Renew = c.Info
		}
		s.render(w, r, http.StatusOK, "home.html", page{Title: "Home", Visit: v, Data: d})
	})
}

// visitWithInput is requireVisit, then decodeInput into in; it returns
// nil when it answered the request itself.
func (s *Server) visitWithInput(w http.ResponseWriter, r *http.Request, in any) *visit {
	v := s.requireVisit(w, r)
	if v == nil {
		return nil
	}
	if err := decodeInput(r, in); err != nil {
		s.fail(w, r, err)
		return nil
	}
	return v
}

// handleAccount is the account page: what the account is, and the links
// to everything a person can change about it.
func (s *Server) handleAccount() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		s.render(w, r, http.StatusOK, "account.html", page{Title: "Your account", Visit: v})
	})
}

func (s *Server) handleNotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "there is no page at this address"})
	})
}

func (s *Server) handleStatic() http.Handler {
	files := http.StripPrefix("/static/", http.FileServerFS(s.static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

func (s *Server) handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// handleReadyz reports whether the portal can serve sign-ins: the store
// must answer and still hold its marker. A store that answers without
// its marker has lost its data (a Redis restarted without persistence, a
// store URL naming another database): it is not ready, whatever it says.
func (s *Server) handleReadyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := s.store.Ping(r.Context())
		if err == nil {
			err = s.store.CheckMarker(r.Context(), "")
		}
		if clientGone(r, err) {
			s.fail(w, r, err)
			return
		}
		if err != nil {
			e := asError(err)
			if errors.Is(err, store.ErrDataLost) {
				s.log.Error("STORE HAS LOST ITS DATA", "err", err.Error(), "advice", dataLostAdvice)
			} else {
				s.log.Error("readiness check", "err", err.Error())
			}
			w.Header().Set("Retry-After", "5")
			out := map[string]string{"status": "unavailable", "error": e.Message, "code": e.Code}
			if errors.Is(err, store.ErrDataLost) {
				// Where the marker is missing, for the operator; it never
				// names an account.
				out["reason"] = err.Error()
			}
			if se := (*store.ServerError)(nil); errors.As(err, &se) {
				// Which server of several, so the operator knows where
				// to look. One server is named by the configuration.
				out["server"] = se.Server
			}
			s.writeJSON(w, http.StatusServiceUnavailable, out)
			return
		}
		out := map[string]any{"status": "ready"}
		if warnings := append(slices.Clone(s.warnings), s.storeWarnings()...); len(warnings) > 0 {
			out["warnings"] = warnings
		}
		s.writeJSON(w, http.StatusOK, out)
	})
}

// dataLostAdvice is what the log tells an operator whose store lost its
// data.
const dataLostAdvice = "restore the store from a backup (Redis: its RDB or append-only file) and the portal recovers by itself; with no backup, start afresh with gatehouse init --store-only"
