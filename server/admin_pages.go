package server

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"gatehouse/store"
)

// The admin console's HTML pages. They call the same operations as the
// JSON API (admin.go), so the rules and the audit trail are the same; a
// page only adds form parsing and rendering. Every change is a POST that
// answers with a redirect back to the page (so a reload repeats nothing)
// carrying a fixed confirmation key, or, when the input was refused, the
// page again with the reason.

// console is what every admin and help-desk page shares.
type Console struct {
	// Section is the console tab this page belongs to.
	Section string
	// Done confirms the change just made, in plain words.
	Done string
	// IsAdmin reports whether the viewer may use the admin console.
	IsAdmin bool
}

// doneMessages are the confirmations a redirect may ask a page to show,
// by key: a page never echoes text from the query string.
var doneMessages = map[string]string{
	"created":             "The account was created.",
	"updated":             "The account was changed. Its sessions were ended, so the change applies at once.",
	"disabled":            "The account was disabled and its sessions ended.",
	"enabled":             "The account was enabled again. Its owner signs in afresh.",
	"deleted":             "The account was deleted and its sessions ended.",
	"unchanged":           "Nothing was changed.",
	"sessions":            "The sessions were ended.",
	"session":             "The session was ended.",
	"role":                "The role was saved. Live sessions are re-evaluated on their next request.",
	"role-deleted":        "The role was deleted and taken off every account.",
	"revoked":             "The certificate was revoked. Sessions that relied on it lost the roles that need it.",
	"app":                 "The app was saved. /auth/verify uses it from the next request.",
	"oidc-client":         "The OpenID Connect app was saved; its secret is unchanged.",
	"oidc-client-deleted": "The OpenID Connect app was deleted: it gets no more sign-ins.",
	"app-deleted":         "The app was deleted: its addresses are refused from now on.",
	"unlocked":            "The account was unlocked and its sessions ended.",
	"enrollment-approved": "The request is approved. The new device can now take its certificate; nobody else can.",
	"totp-reset":          "Two-step sign-in was removed from the account, its recovery codes are void and its sessions ended.",
}

func (s *Server) console(r *http.Request, v *visit, section string) Console {
	return Console{Section: section, Done: doneMessages[r.URL.Query().Get("done")],
		IsAdmin: slices.Contains(v.Decision.EffectiveRoles, roleAdmin)}
}

// showPage renders a console page, or the error page when its data could
// not be loaded.
type showPage func(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string)

// afterForm finishes a console form: on success a 303 to back with the
// done key; on an input error the page again, with the message and the
// error's status; on anything else the error page.
func (s *Server) afterForm(w http.ResponseWriter, r *http.Request, v *visit, err error, back, done string, show showPage) {
	if err == nil {
		sep := "?"
		if strings.Contains(back, "?") {
			sep = "&"
		}
		http.Redirect(w, r, back+sep+"done="+done, http.StatusSeeOther)
		return
	}
	e := asError(err)
	if e.Status >= 500 || e.Status == http.StatusNotFound {
		s.fail(w, r, err)
		return
	}
	s.log.Info("form refused", "code", e.Code, "path", r.URL.Path, "user", v.Account.Name)
	show(w, r, v, e.Status, e.Message)
}

// formBool reads a checkbox.
func formBool(r *http.Request, name string) bool {
	v := r.PostFormValue(name)
	return v == "on" || v == "true" || v == "1"
}

// parseForm reads a console form, or answers 400/413 and returns false.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, badForm(err))
		return false
	}
	return true
}

func userPath(name string) string { return "/admin/users/" + url.PathEscape(name) }

// roleChoice is a role offered as a checkbox.
type roleChoice struct {
	store.Role
	Checked bool
}

func (s *Server) roleChoices(r *http.Request, checked []string) ([]roleChoice, error) {
	roles, err := s.store.Roles(r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]roleChoice, 0, len(roles))
	for _, x := range roles {
		out = append(out, roleChoice{Role: x, Checked: slices.Contains(checked, x.Name)})
	}
	return out, nil
}

// formRoleChoices are the role boxes of a "new" form: as posted when a
// refused form is shown again (again), employee ticked on a fresh one.
func (s *Server) formRoleChoices(r *http.Request, posted []string, again bool) ([]roleChoice, error) {
	if !again {
		posted = []string{"employee"}
	}
	return s.roleChoices(r, posted)
}

// nextPage is the link to the page of the list at path that continues at
// cursor, with the filters of r's query; "" when there is no next page.
func nextPage(path string, r *http.Request, cursor string) string {
	if cursor == "" {
		return ""
	}
	q := url.Values{}
	for k, vs := range r.URL.Query() {
		if k != "cursor" && k != "before" && k != "done" {
			q[k] = vs
		}
	}
	q.Set("cursor", cursor)
	return path + "?" + q.Encode()
}

// usersPage is the content of /admin.
type usersPage struct {
	Console
	Query, Role string
	Users       []userJSON
	// Next is the link to the next page of accounts, or empty.
	Next  string
	Roles []roleChoice
	// New holds what a refused create form had, to fill it in again.
	New newUser
}

func (s *Server) showUsers(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string) {
	q := r.URL.Query()
	d := usersPage{Console: s.console(r, v, "users"), Query: q.Get("q"), Role: q.Get("role")}
	if r.Method == http.MethodPost {
		d.New = newUser{Name: r.PostFormValue("name"), Email: r.PostFormValue("email"), Roles: r.PostForm["roles"]}
	}
	lq, err := listParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var next string
	if d.Users, next, err = s.findUsers(r, d.Query, d.Role, lq); err != nil {
		s.fail(w, r, err)
		return
	}
	d.Next = nextPage("/admin", r, next)
	if d.Roles, err = s.formRoleChoices(r, d.New.Roles, r.Method == http.MethodPost); err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, status, "admin_users.html", page{Title: "Users", Visit: v, Error: msg, Data: d})
}

func (s *Server) pageAdminUsers(w http.ResponseWriter, r *http.Request, v *visit) {
	s.showUsers(w, r, v, http.StatusOK, "")
}

// onetimePage shows a temporary password once.
type onetimePage struct {
	Console
	User, Password, Why string
}

func (s *Server) formCreateUser(w http.ResponseWriter, r *http.Request, v *visit) {
	if !s.parseForm(w, r) {
		return
	}
	in := newUser{Name: strings.TrimSpace(r.PostFormValue("name")), Email: strings.TrimSpace(r.PostFormValue("email")),
		Roles: r.PostForm["roles"], Password: r.PostFormValue("password")}
	a, temporary, err := s.createUser(r, v, in)
	if err != nil || temporary == "" {
		s.afterForm(w, r, v, err, userPath(a.Name), "created", s.showUsers)
		return
	}
	d := onetimePage{Console: s.console(r, v, "users"), User: a.Name, Password: temporary, Why: "created"}
	s.render(w, r, http.StatusCreated, "onetime.html", page{Title: "Temporary password", Visit: v, Data: d})
}

// userPage is the content of /admin/users/{name}: the first page of the
// account's sessions and certificates, with links to the rest.
type userPage struct {
	Console
	User                    userJSON
	Roles                   []roleChoice
	Sessions                []liveSessionJSON
	Certificates            []issuedCertJSON
	MoreSessions, MoreCerts string
	Self                    bool
}

func (s *Server) showUser(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string) {
	a, err := s.loadTarget(r, r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := userPage{Console: s.console(r, v, "users"), Self: a.Name == v.Account.Name}
	if d.User, err = s.userView(r, a); err != nil {
		s.fail(w, r, err)
		return
	}
	if d.Roles, err = s.roleChoices(r, a.Roles); err != nil {
		s.fail(w, r, err)
		return
	}
	first := store.ListQuery{User: a.Name, Limit: defaultPage}
	var next string
	if d.Sessions, next, err = s.liveSessions(r, first); err != nil {
		s.fail(w, r, err)
		return
	}
	if next != "" {
		d.MoreSessions = "/admin/sessions?" + url.Values{"user": {a.Name}, "cursor": {next}}.Encode()
	}
	if d.Certificates, next, err = s.certificates(r, v, first); err != nil {
		s.fail(w, r, err)
		return
	}
	if next != "" {
		d.MoreCerts = "/admin/certificates?" + url.Values{"user": {a.Name}, "cursor": {next}}.Encode()
	}
	s.render(w, r, status, "admin_user.html", page{Title: a.Name, Visit: v, Error: msg, Data: d})
}

func (s *Server) pageAdminUser(w http.ResponseWriter, r *http.Request, v *visit) {
	s.showUser(w, r, v, http.StatusOK, "")
}

func (s *Server) formUpdateUser(w http.ResponseWriter, r *http.Request, v *visit) {
	if !s.parseForm(w, r) {
		return
	}
	name := r.PathValue("name")
	email := strings.TrimSpace(r.PostFormValue("email"))
	roles := r.PostForm["roles"]
	if roles == nil {
		roles = []string{}
	}
	before, err := s.loadTarget(r, name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ch := userChange{Email: &email}
	if name != v.Account.Name { // one's own roles are not on the form
		ch.Roles = &roles
	}
	after, err := s.updateUser(r, v, name, ch)
	done := "updated"
	if err == nil && after.UpdatedAt.Equal(before.UpdatedAt) {
		done = "unchanged"
	}
	s.afterForm(w, r, v, err, userPath(name), done, s.showUser)
}

// formSetDisabled serves the disable and enable buttons.
func (s *Server) formSetDisabled(disabled bool) func(http.ResponseWriter, *http.Request, *visit) {
	return func(w http.ResponseWriter, r *http.Request, v *visit) {
		name := r.PathValue("name")
		_, err := s.updateUser(r, v, name, userChange{Disabled: &disabled})
		done := map[bool]string{true: "disabled", false: "enabled"}[disabled]
		s.afterForm(w, r, v, err, userPath(name), done, s.showUser)
	}
}

func (s *Server) formDeleteUser(w http.ResponseWriter, r *http.Request, v *visit) {
	if !s.parseForm(w, r) {
		return
	}
	name := r.PathValue("name")
	var err error
	if r.PostFormValue("confirm") != name {
		err = &Error{Status: http.StatusBadRequest, Code: "confirm",
			Message: "type the account's name to confirm that it should be deleted"}
	} else {
		err = s.deleteUser(r, v, name)
	}
	s.afterForm(w, r, v, err, "/admin", "deleted", s.showUser)
}

// formRevokeSessions ends one session (by handle) or all of a user's,
// from the user page or the sessions page.
func (s *Server) formRevokeSessions(w http.ResponseWriter, r *http.Request, v *visit) {
	if !s.parseForm(w, r) {
		return
	}
	name, handle := r.PathValue("name"), r.PostFormValue("handle")
	_, err := s.revokeSessions(r, v, name, handle)
	back, show := userPath(name), showPage(s.showUser)
	if r.PostFormValue("from") == "sessions" {
		back, show = "/admin/sessions", s.showSessions
	}
	done := "sessions"
	if handle != "" {
		done = "session"
	}
	s.afterForm(w, r, v, err, back, done, show)
}

// rolesPage is the content of /admin/roles.
type rolesPage struct {
	Console
	Roles   []roleJSON
	Holders map[string]int
	New     roleJSON
}

func (s *Server) showRoles(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string) {
	d := rolesPage{Console: s.console(r, v, "roles"), Holders: map[string]int{}}
	roles, err := s.store.Roles(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, x := range roles {
		d.Roles = append(d.Roles, roleView(x))
	}
	err = store.EachAccount(r.Context(), s.store, func(a store.Account) error {
		for _, role := range a.Roles {
			d.Holders[role]++
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if r.Method == http.MethodPost && r.PostFormValue("new") != "" {
		d.New = roleFromForm(r)
	}
	s.render(w, r, status, "admin_roles.html", page{Title: "Roles", Visit: v, Error: msg, Data: d})
}

func (s *Server) pageAdminRoles(w http.ResponseWriter, r *http.Request, v *visit) {
	s.showRoles(w, r, v, http.StatusOK, "")
}

func roleFromForm(r *http.Request) roleJSON {
	return roleJSON{Name: strings.TrimSpace(r.PostFormValue("name")), Description: strings.TrimSpace(r.PostFormValue("description")),
		RequireCertificate: formBool(r, "require_certificate"), RequireTOTP: formBool(r, "require_totp")}
}

func (s *Server) formPutRole(w http.ResponseWriter, r *http.Request, v *visit) {
	if !s.parseForm(w, r) {
		return
	}
	in := roleFromForm(r)
	if r.PostFormValue("new") != "" {
		// Creating: an existing name would silently change that role.
		if _, err := s.store.Role(r.Context(), in.Name); err == nil {
			s.afterForm(w, r, v, &Error{Status: http.StatusConflict, Code: "exists",
				Message: "a role named " + in.Name + " already exists; change it in the list above"}, "", "", s.showRoles)
			return
		}
	}
	_, _, err := s.putRole(r, v, in)
	s.afterForm(w, r, v, err, "/admin/roles", "role", s.showRoles)
}

func (s *Server) formDeleteRole(w http.ResponseWriter, r *http.Request, v *visit) {
	err := s.deleteRole(r, v, r.PathValue("name"))
	s.afterForm(w, r, v, err, "/admin/roles", "role-deleted", s.showRoles)
}

// sessionsPage is the content of /admin/sessions.
type sessionsPage struct {
	Console
	User     string
	Sessions []liveSessionJSON
	Next     string
	// Mine is the handle of the viewer's own session.
	Mine string
}

func (s *Server) showSessions(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string) {
	d := sessionsPage{Console: s.console(r, v, "sessions"), User: r.URL.Query().Get("user"), Mine: SessionHandle(v.session.ID)}
	lq, err := listParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	lq.User = d.User
	var next string
	if d.Sessions, next, err = s.liveSessions(r, lq); err != nil {
		s.fail(w, r, err)
		return
	}
	d.Next = nextPage("/admin/sessions", r, next)
	s.render(w, r, status, "admin_sessions.html", page{Title: "Sessions", Visit: v, Error: msg, Data: d})
}

func (s *Server) pageAdminSessions(w http.ResponseWriter, r *http.Request, v *visit) {
	s.showSessions(w, r, v, http.StatusOK, "")
}

// certificatesPage is the content of /admin/certificates.
type certificatesPage struct {
	Console
	User         string
	Certificates []issuedCertJSON
	Next         string
}

func (s *Server) showCertificates(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string) {
	d := certificatesPage{Console: s.console(r, v, "certificates"), User: r.URL.Query().Get("user")}
	lq, err := listParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	lq.User = d.User
	var next string
	if d.Certificates, next, err = s.certificates(r, v, lq); err != nil {
		s.fail(w, r, err)
		return
	}
	d.Next = nextPage("/admin/certificates", r, next)
	s.render(w, r, status, "admin_certificates.html", page{Title: "Certificates", Visit: v, Error: msg, Data: d})
}

func (s *Server) pageAdminCertificates(w http.ResponseWriter, r *http.Request, v *visit) {
	s.showCertificates(w, r, v, http.StatusOK, "")
}

func (s *Server) formRevokeCertificate(w http.ResponseWriter, r *http.Request, v *visit) {
	if !s.parseForm(w, r) {
		return
	}
	c, err := s.revokeCertificate(r, v, r.PathValue("id"), r.PostFormValue("reason"), formBool(r, "confirm"))
	s.afterForm(w, r, v, err, "/admin/certificates?user="+url.QueryEscape(c.User), "revoked", s.showCertificates)
}

// auditPage is the content of /admin/audit.
type auditPage struct {
	Console
	Filter struct{ User, Actor, Action, Since, Until string }
	Events []store.AuditEvent
	// Next is the link to the next (older) page, or empty.
	Next string
}

func (s *Server) pageAdminAudit(w http.ResponseWriter, r *http.Request, v *visit) {
	d := auditPage{Console: s.console(r, v, "audit")}
	q := r.URL.Query()
	d.Filter.User, d.Filter.Actor, d.Filter.Action = q.Get("user"), q.Get("actor"), q.Get("action")
	d.Filter.Since, d.Filter.Until = q.Get("since"), q.Get("until")
	aq, err := auditQuery(r)
	var events store.Page[store.AuditEvent]
	if err == nil {
		events, err = s.store.Audit(r.Context(), aq)
		if errors.Is(err, store.ErrBadCursor) {
			err = badAuditCursor(r)
		}
		d.Events = events.Items
	}
	if e := asError(err); err != nil && e.Status != http.StatusBadRequest {
		s.fail(w, r, err)
		return
	} else if err != nil {
		s.render(w, r, e.Status, "admin_audit.html", page{Title: "Audit trail", Visit: v, Error: e.Message, Data: d})
		return
	}
	d.Next = nextPage("/admin/audit", r, events.Next)
	s.render(w, r, http.StatusOK, "admin_audit.html", page{Title: "Audit trail", Visit: v, Data: d})
}
