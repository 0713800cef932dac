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
		f := passwordForm{Must: v.Account.MustChangePassword, Done: r.URL.Query().Has("done")}
		s.render(w, r, http.StatusOK, "password.html", page{Title: "Change password", Visit: v, Data: f})
	})
}

// handlePasswordPost changes the signed-in user's password. The current
// password is required, so a session left open on a shared screen cannot
// be turned into a stolen account. The session gets a new ID afterwards.
func (s *Server) handlePasswordPost() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.visitAny(w, r)
		if v == nil {
			return
		}
		if err := r.ParseForm(); err != nil {
			s.fail(w, r, badForm(err))
			return
		}
		current, next, confirm := r.PostForm.Get("current"), r.PostForm.Get("new"), r.PostForm.Get("confirm")
		f := passwordForm{Must: v.Account.MustChangePassword}
		again := func(status int, msg string) {
			s.render(w, r, status, "password.html", page{Title: "Change password", Visit: v, Error: msg, Data: f})
		}
		if err := s.hasher.Check(v.Account.PasswordHash, current); err != nil {
			if err := s.audit(r, store.AuditEvent{Action: "account.password", Outcome: "failure", Actor: v.Account.Name,
				ActorFactors: v.Decision.Factors, Target: v.Account.Name, Reason: "bad_current_password"}); err != nil {
				s.fail(w, r, err)
				return
			}
			again(http.StatusUnauthorized, "your current password is not right")
			return
		}
		if err := auth.CheckNewPassword(next, v.Account.Name); err != nil {
			again(http.StatusBadRequest, err.Error())
			return
		}
		if next != confirm {
			again(http.StatusBadRequest, "the two new passwords do not match")
			return
		}
		if next == current {
			again(http.StatusBadRequest, "the new password must differ from the current one")
			return
		}
		hash, err := s.hasher.Hash(next)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		err = s.store.UpdateAccount(r.Context(), v.Account.Name, func(a *store.Account) error {
			a.PasswordHash = hash
			a.MustChangePassword = false
			a.UpdatedAt = s.now()
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			s.fail(w, r, &Error{Status: http.StatusNotFound, Code: "no_account", Message: "your account no longer exists"})
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		v.Account.MustChangePassword = false
		v.Decision.Next = auth.StepNone
		// A privilege change: continue on a fresh session ID.
		if err := s.startSession(w, r, v.Account, v.Decision, &v.Record); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.audit(r, store.AuditEvent{Action: "account.password", Outcome: "success", Actor: v.Account.Name,
			ActorFactors: v.Decision.Factors, Target: v.Account.Name}); err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/account/password?done", http.StatusSeeOther)
	})
}
