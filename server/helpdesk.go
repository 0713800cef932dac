package server

import (
	"cmp"
	"net/http"
	"time"

	"gatehouse/auth"
	"gatehouse/store"
)

// The help desk's operations: reset a password, reset TOTP, unlock. Each
// needs a reason, never applies to oneself, applies to accounts holding
// admin or helpdesk only when the actor is an admin for this request,
// ends the target's sessions and lands in the audit trail.

// helpdeskAction is one of the help desk's operations on a target. guard
// is asked about the target in the atomic update that makes the change,
// so the help desk's boundaries hold for the account as it is then (an
// account made an admin a moment earlier is refused). result is nil when
// nothing was changed; set, with an error, when the change was made but
// a step after it failed.
type helpdeskAction func(r *http.Request, target store.Account, guard func(store.Account) error) (result map[string]any, err error)

// runHelpdesk checks the reason and the boundaries, runs act, ends the
// target's sessions and records the event. A change that was made is
// recorded even when a step after it (ending the sessions, clearing
// counters) failed, and the answer then says so.
func (s *Server) runHelpdesk(r *http.Request, v *visit, name, reason, action string, act helpdeskAction) (map[string]any, error) {
	reason, err := checkReason(reason)
	if err != nil {
		return nil, err
	}
	target, err := s.loadTarget(r, name)
	if err != nil {
		return nil, err
	}
	refused := func(why error) (map[string]any, error) {
		ev := actorEvent(v, action, name, reason)
		ev.Outcome = "failure"
		if aerr := s.audit(r, ev); aerr != nil {
			return nil, aerr
		}
		return nil, why
	}
	guard := func(a store.Account) error { return checkHelpdeskTarget(v, a) }
	if err := guard(target); err != nil {
		return refused(err)
	}
	out, actErr := act(r, target, guard)
	if out == nil {
		if e := asError(actErr); e.Code == "privileged_target" || e.Code == "self" {
			return refused(actErr)
		}
		return nil, actErr
	}
	sessErr := s.endSessions(r, name)
	ev := actorEvent(v, action, name, reason)
	if actErr != nil || sessErr != nil {
		ev.Reason += "; done, but the account's sessions or failure counts could not all be cleared"
	}
	if err := s.audit(r, ev); err != nil {
		return nil, err
	}
	if err := cmp.Or(actErr, sessErr); err != nil {
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: "partly_done", RetryAfter: 2, Err: err,
			Message: "the change was made and recorded, but the account's sessions or failure counts could not all be cleared; do it again in a moment to finish"}
	}
	return out, nil
}

// resetPassword gives the target a one-time temporary password that must
// be changed at the next sign-in, before anything else.
func (s *Server) resetPassword(r *http.Request, target store.Account, guard func(store.Account) error) (map[string]any, error) {
	temporary := auth.RandomPassword()
	hash, err := s.hasher.Hash(r.Context(), temporary)
	if err != nil {
		return nil, err
	}
	err = s.store.UpdateAccount(r.Context(), target.Name, func(a *store.Account) error {
		if err := guard(*a); err != nil {
			return err
		}
		a.PasswordHash, a.MustChangePassword, a.UpdatedAt = hash, true, s.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A new password starts with a clean count: the lock was about the
	// old one. It also ends every device cookie of the account (they are
	// tied to the password), and its known devices start on a fresh
	// count.
	out := map[string]any{"temporary_password": temporary}
	if err := s.forgetDeviceFailures(r, target.Name); err != nil {
		return out, err
	}
	return out, s.clearCounters(r, auth.FactorCounters(auth.CounterPassword, target.Name))
}

// resetTOTP removes the target's TOTP enrollment; its recovery codes go
// with it.
func (s *Server) resetTOTP(r *http.Request, target store.Account, guard func(store.Account) error) (map[string]any, error) {
	err := s.store.UpdateAccount(r.Context(), target.Name, func(a *store.Account) error {
		if err := guard(*a); err != nil {
			return err
		}
		a.TOTPSecret, a.TOTPPending, a.RecoveryCodes, a.TOTPEnrolledAt, a.UpdatedAt = "", "", nil, time.Time{}, s.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"totp_enrolled": false}, s.clearCounters(r, auth.FactorCounters(auth.CounterTOTP, target.Name))
}

// unlock clears the target's failed-attempt counters, those of its
// known devices included. It writes no account record to guard: the
// target is read again just before, which narrows the moment a change
// of its roles could slip in to the clearing of some counters.
func (s *Server) unlock(r *http.Request, target store.Account, guard func(store.Account) error) (map[string]any, error) {
	now, err := s.loadTarget(r, target.Name)
	if err != nil {
		return nil, err
	}
	if err := guard(now); err != nil {
		return nil, err
	}
	out := map[string]any{"unlocked": true}
	if err := s.forgetDeviceFailures(r, target.Name); err != nil {
		return out, err
	}
	return out, s.clearCounters(r, auth.AccountCounters(target.Name))
}

func (s *Server) clearCounters(r *http.Request, keys []string) error {
	for _, k := range keys {
		if err := s.store.ResetFailures(r.Context(), k); err != nil {
			return err
		}
	}
	return nil
}

// helpdeskOps maps the routes' action names to operations and audit
// actions.
func (s *Server) helpdeskOps() map[string]struct {
	audit string
	act   helpdeskAction
} {
	return map[string]struct {
		audit string
		act   helpdeskAction
	}{
		"reset-password": {"helpdesk.reset_password", s.resetPassword},
		"reset-totp":     {"helpdesk.reset_totp", s.resetTOTP},
		"unlock":         {"helpdesk.unlock", s.unlock},
	}
}

func (s *Server) apiHelpdeskUsers(w http.ResponseWriter, r *http.Request, v *visit) {
	lq, err := listParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	users, next, err := s.findUsers(r, r.URL.Query().Get("q"), "", lq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, withNext(map[string]any{"users": users}, next))
}

// apiHelpdeskAction serves POST /api/helpdesk/users/{name}/{action}.
func (s *Server) apiHelpdeskAction(w http.ResponseWriter, r *http.Request, v *visit) {
	op, ok := s.helpdeskOps()[r.PathValue("action")]
	if !ok {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "there is no such help-desk action; use reset-password, reset-totp or unlock"})
		return
	}
	var in struct {
		Reason string `json:"reason"`
	}
	if err := decodeInput(r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	out, err := s.runHelpdesk(r, v, r.PathValue("name"), in.Reason, op.audit, op.act)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, out)
}
