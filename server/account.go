package server

import (
	"errors"
	"net/http"
	"net/url"

	"gatehouse/auth"
	"gatehouse/store"
)

// passwordForm is the change-password page's content.
type passwordForm struct {
	Must bool
	Done bool
	// Return is where a sign-in that had to change its password goes on
	// to once it has.
	Return string
}

// visitAny returns the request's session even when it has a pending
// step, or redirects to the login page and returns nil.
func (s *Server) visitAny(w http.ResponseWriter, r *http.Request) *visit {
	v, err := s.visit(w, r)
	if err != nil {
		s.fail(w, r, err)
		return nil
	}
	if v != nil && v.Decision.Next == auth.StepTOTP {
		// Half signed in: the TOTP step comes before anything else.
		http.Redirect(w, r, "/login/totp", http.StatusSeeOther)
		return nil
	}
	if v == nil {
		if wantsJSON(r) {
			s.fail(w, r, &Error{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: "you are not signed in"})
			return nil
		}
		http.Redirect(w, r, "/login?rd="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
		return nil
	}
	return v
}

func (s *Server) handlePasswordGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.visitAny(w, r)
		if v == nil {
			return
		}
		f := passwordForm{Must: v.Account.MustChangePassword, Done: r.URL.Query().Has("done"), Return: s.returnTo(r, r.URL.Query().Get("rd"))}
		s.allowFormRedirect(w, r, f.Return)
		s.render(w, r, http.StatusOK, "password.html", page{Title: "Change password", Visit: v, Data: f})
	})
}

// changePassword sets the signed-in user's password. The current
// password is required, so a session left open on a shared screen cannot
// be turned into a stolen account. Every other session of the account
// ends; this one continues on a new ID.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, v *visit, current, next, confirm string) error {
	if err := s.recheckPassword(r, v, current); err != nil {
		if e := asError(err); e.Code == "bad_password" {
			ev := actorEvent(v, "account.password", v.Account.Name, "bad_current_password")
			ev.Outcome = "failure"
			if err := s.audit(r, ev); err != nil {
				return err
			}
			e.Message = "your current password is not right"
		}
		return err
	}
	if err := auth.CheckNewPassword(next, v.Account.Name, v.Account.Email); err != nil {
		return invalid("weak_password", err)
	}
	// Compared as they are hashed (NFKC): the same password typed with
	// its accents composed one way and the other is the same password.
	if auth.NormalizePassword(next) != auth.NormalizePassword(confirm) {
		return &Error{Status: http.StatusBadRequest, Code: "mismatch", Message: "the two new passwords do not match"}
	}
	if auth.NormalizePassword(next) == auth.NormalizePassword(current) {
		return &Error{Status: http.StatusBadRequest, Code: "unchanged", Message: "the new password must differ from the current one"}
	}
	hash, err := s.hasher.Hash(r.Context(), next)
	if err != nil {
		return err
	}
	err = s.store.UpdateAccount(r.Context(), v.Account.Name, func(a *store.Account) error {
		a.PasswordHash = hash
		a.MustChangePassword = false
		a.UpdatedAt = s.now()
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Code: "no_account", Message: "your account no longer exists"}
	}
	if err != nil {
		return err
	}
	if err := s.endSessions(r, v.Account.Name); err != nil {
		return err
	}
	v.Account.PasswordHash, v.Account.MustChangePassword = hash, false
	v.Decision.Next = auth.StepNone
	// A privilege change: continue on a fresh session ID.
	if err := s.startSession(w, r, v.Account, v.Decision, &v.Record); err != nil {
		return err
	}
	// The new password ended every device cookie of the account; this
	// device has just proved it, so it stays known.
	s.setDeviceCookie(w, v.Account.Name, hash)
	return s.audit(r, actorEvent(v, "account.password", v.Account.Name, ""))
}

func (s *Server) handlePasswordPost() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.visitAny(w, r)
		if v == nil {
			return
		}
		var in struct {
			Current string `json:"current"`
			New     string `json:"new"`
			Confirm string `json:"confirm"`
			Return  string `json:"rd"`
		}
		if err := decodeInput(r, &in); err != nil {
			s.fail(w, r, err)
			return
		}
		if wantsJSON(r) && in.Confirm == "" {
			in.Confirm = in.New // scripts send the new password once
		}
		must := v.Account.MustChangePassword
		rd := s.returnTo(r, in.Return)
		err := s.changePassword(w, r, v, in.Current, in.New, in.Confirm)
		switch e := asError(err); {
		case err == nil && wantsJSON(r):
			w.WriteHeader(http.StatusNoContent)
		case err == nil && must:
			// The sign-in goes on to where it was going.
			s.allowFormRedirect(w, r, rd)
			http.Redirect(w, r, orHome(rd), http.StatusSeeOther)
		case err == nil:
			http.Redirect(w, r, "/account/password?done", http.StatusSeeOther)
		case wantsJSON(r) || e.Status >= 500:
			s.fail(w, r, err)
		default:
			setRetryAfter(w, e)
			f := passwordForm{Must: v.Account.MustChangePassword, Return: rd}
			s.allowFormRedirect(w, r, rd)
			s.render(w, r, e.Status, "password.html", page{Title: "Change password", Visit: v, Error: e.Message, Data: f})
		}
	})
}

// recheckPassword asks a signed-in user for their password again before
// a sensitive change. Wrong answers count against the account's password
// throttle like failed sign-ins, so a session left open cannot be used to
// guess the password.
func (s *Server) recheckPassword(r *http.Request, v *visit, password string) error {
	th := accountThrottle(auth.CounterPassword, v.Account.Name)
	if err := s.check(r.Context(), &th); err != nil {
		if e := asError(err); e.Code == "locked" {
			e.Message = "your password is " + e.Message
		}
		return err
	}
	err := s.hasher.Check(r.Context(), v.Account.PasswordHash, password)
	switch {
	case errors.Is(err, auth.ErrBadPassword) || errors.Is(err, auth.ErrPasswordTooLong):
		if err := s.failed(r.Context(), &th); err != nil {
			return err
		}
		return &Error{Status: http.StatusUnauthorized, Code: "bad_password", Message: "your password is not right"}
	case err != nil:
		return err
	}
	return s.succeeded(r.Context(), &th)
}
