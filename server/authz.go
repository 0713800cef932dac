package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"gatehouse/store"
)

// Roles with special meaning to the portal.
const (
	roleAdmin    = "admin"
	roleHelpdesk = "helpdesk"
)

// requireRole serves h only to a complete session whose effective roles
// (for this very request) include one of roles. Anyone else gets 403, with
// the reason when the account holds the role but this sign-in does not
// meet its requirements ("admin access needs your certificate").
func (s *Server) requireRole(h func(http.ResponseWriter, *http.Request, *visit), roles ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		for _, role := range roles {
			if slices.Contains(v.Decision.EffectiveRoles, role) {
				h(w, r, v)
				return
			}
		}
		s.fail(w, r, forbiddenFor(v, roles))
	})
}

// forbiddenFor explains why v may not use a route that needs one of roles.
func forbiddenFor(v *visit, roles []string) *Error {
	for _, role := range roles {
		if !slices.Contains(v.Account.Roles, role) {
			continue
		}
		for _, n := range v.Decision.Notices {
			who, _, ok := strings.Cut(n, " access needs ")
			if ok && slices.Contains(strings.FieldsFunc(strings.ReplaceAll(who, " and ", ","), func(r rune) bool { return r == ',' || r == ' ' }), role) {
				return &Error{Status: http.StatusForbidden, Code: "factor_required",
					Message: n + "; sign in again with it to use this page"}
			}
		}
		return &Error{Status: http.StatusForbidden, Code: "factor_required",
			Message: fmt.Sprintf("%s access needs more than this sign-in has; sign in again with your certificate (and code)", role)}
	}
	return &Error{Status: http.StatusForbidden, Code: "forbidden",
		Message: fmt.Sprintf("this needs the %s role, which your account does not have", strings.Join(roles, " or "))}
}

// privileged reports whether an account holds a role that help desk
// staff may not act on.
func privileged(a store.Account) bool {
	return slices.Contains(a.Roles, roleAdmin) || slices.Contains(a.Roles, roleHelpdesk)
}

// errSelf refuses actions on one's own account through the admin and
// help-desk routes: nobody raises their own roles or resets their own
// factors there (the account pages are for that, with the password).
var errSelf = &Error{Status: http.StatusForbidden, Code: "self",
	Message: "you cannot do this to your own account here; use your account page, or ask another administrator"}

// checkHelpdeskTarget applies the help-desk boundary: not oneself, and,
// unless the actor is an admin for this request, nobody holding admin or
// helpdesk.
func checkHelpdeskTarget(v *visit, target store.Account) error {
	if target.Name == v.Account.Name {
		return errSelf
	}
	if privileged(target) && !slices.Contains(v.Decision.EffectiveRoles, roleAdmin) {
		return &Error{Status: http.StatusForbidden, Code: "privileged_target",
			Message: fmt.Sprintf("%s holds the admin or helpdesk role; only an administrator can do this", target.Name)}
	}
	return nil
}

// maxReasonBytes bounds the reason (ticket reference) of an action.
const maxReasonBytes = 200

// checkReason requires a reason for help-desk and admin actions, so every
// one of them can be traced to a ticket.
func checkReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return "", &Error{Status: http.StatusBadRequest, Code: "reason_required", Message: "give a reason (for example the ticket number)"}
	case len(reason) > maxReasonBytes:
		return "", &Error{Status: http.StatusBadRequest, Code: "reason_too_long", Message: fmt.Sprintf("the reason is longer than %d bytes", maxReasonBytes)}
	case strings.ContainsFunc(reason, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", &Error{Status: http.StatusBadRequest, Code: "bad_reason", Message: "the reason contains control characters"}
	}
	return reason, nil
}

// actorEvent starts an audit event for an action v takes on target.
func actorEvent(v *visit, action, target, reason string) store.AuditEvent {
	return store.AuditEvent{Action: action, Outcome: "success", Actor: v.Account.Name,
		ActorFactors: v.Decision.Factors, Target: target, Reason: reason}
}
