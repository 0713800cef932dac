package server

import (
	"net/http"
	"net/url"
	"strings"
)

// The help desk's HTML pages: find an account, then reset its password,
// reset its TOTP or unlock it, each with a reason. They run the same
// operations as /api/helpdesk/ (helpdesk.go).

// helpdeskPage is the content of /helpdesk.
type helpdeskPage struct {
	Console
	Query string
	Users []userJSON
	// Next is the link to the next page of matches, or empty.
	Next string
}

func (s *Server) pageHelpdesk(w http.ResponseWriter, r *http.Request, v *visit) {
	d := helpdeskPage{Console: s.console(r, v, "helpdesk"), Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	if d.Query != "" {
		lq, err := listParams(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var next string
		if d.Users, next, err = s.findUsers(r, d.Query, "", lq); err != nil {
			s.fail(w, r, err)
			return
		}
		d.Next = nextPage("/helpdesk", r, next)
	}
	s.render(w, r, http.StatusOK, "helpdesk.html", page{Title: "Help desk", Visit: v, Data: d})
}

// helpdeskUserPage is the content of /helpdesk/users/{name}.
type helpdeskUserPage struct {
	Console
	User userJSON
	// Refused says why this viewer may not act on the account, or is
	// empty.
	Refused string
	Reason  string
	// Waiting are the user's requests for a new device's certificate.
	Waiting []enrollmentJSON
}

func (s *Server) showHelpdeskUser(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string) {
	a, err := s.loadTarget(r, r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := helpdeskUserPage{Console: s.console(r, v, "helpdesk"), Reason: r.PostFormValue("reason")}
	if d.User, err = s.userView(r, a); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := checkHelpdeskTarget(v, a); err != nil {
		d.Refused = asError(err).Message
	} else {
		for _, e := range s.openEnrollments(a) {
			d.Waiting = append(d.Waiting, s.enrollmentView(nil, e))
		}
	}
	s.render(w, r, status, "helpdesk_user.html", page{Title: a.Name + " · Help desk", Visit: v, Error: msg, Data: d})
}

func (s *Server) pageHelpdeskUser(w http.ResponseWriter, r *http.Request, v *visit) {
	s.showHelpdeskUser(w, r, v, http.StatusOK, "")
}

// helpdeskDone names the confirmation of each action.
var helpdeskDone = map[string]string{"reset-totp": "totp-reset", "unlock": "unlocked"}

// formHelpdeskAction serves the three help-desk buttons. A password reset
// answers with the temporary password, shown once, rather than a
// redirect: it must not sit in a URL or the browser history.
func (s *Server) formHelpdeskAction(w http.ResponseWriter, r *http.Request, v *visit) {
	action := r.PathValue("action")
	op, ok := s.helpdeskOps()[action]
	if !ok {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "there is no such help-desk action; use reset-password, reset-totp or unlock"})
		return
	}
	if !s.parseForm(w, r) {
		return
	}
	name := r.PathValue("name")
	out, err := s.runHelpdesk(r, v, name, r.PostFormValue("reason"), op.audit, op.act)
	if err != nil || action != "reset-password" {
		s.afterForm(w, r, v, err, "/helpdesk/users/"+url.PathEscape(name), helpdeskDone[action], s.showHelpdeskUser)
		return
	}
	temporary, _ := out["temporary_password"].(string)
	d := onetimePage{Console: s.console(r, v, "helpdesk"), User: name, Password: temporary, Why: "reset"}
	s.render(w, r, http.StatusOK, "onetime.html", page{Title: "Temporary password", Visit: v, Data: d})
}
