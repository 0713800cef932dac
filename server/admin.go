package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"gatehouse/auth"
	"gatehouse/store"
)

// The admin console's operations. Each takes the acting session (for the
// boundaries and the audit trail), checks its input, changes the store,
// ends the target's sessions where the change must not leave anyone
// signed in on the old terms, and records an audit event. The JSON
// handlers below and the HTML pages (admin_pages.go) both call them.

// userJSON is an account as the admin and help-desk APIs show it: never
// a hash, a secret or a recovery code.
type userJSON struct {
	Name               string    `json:"name"`
	Email              string    `json:"email"`
	Roles              []string  `json:"roles"`
	Disabled           bool      `json:"disabled"`
	MustChangePassword bool      `json:"must_change_password"`
	TOTPEnrolled       bool      `json:"totp_enrolled"`
	RecoveryCodesLeft  int       `json:"recovery_codes_left"`
	PasswordFailures   int       `json:"password_failures"`
	TOTPFailures       int       `json:"totp_failures"`
	Locked             bool      `json:"locked"`
	PinnedFingerprints []string  `json:"pinned_fingerprints"`
	PinnedKeys         []string  `json:"pinned_keys"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

func (s *Server) userView(r *http.Request, a store.Account) (userJSON, error) {
	pw, err := s.store.Failures(r.Context(), auth.FailureCounter(auth.CounterPassword, a.Name))
	if err != nil {
		return userJSON{}, err
	}
	totp, err := s.store.Failures(r.Context(), auth.FailureCounter(auth.CounterTOTP, a.Name))
	if err != nil {
		return userJSON{}, err
	}
	locks := 0
	for _, f := range []string{auth.CounterPassword, auth.CounterTOTP} {
		n, err := s.store.Failures(r.Context(), auth.LockCounter(auth.FailureCounter(f, a.Name)))
		if err != nil {
			return userJSON{}, err
		}
		locks += n
	}
	return userJSON{
		Name: a.Name, Email: a.Email, Roles: nonNil(a.Roles), Disabled: a.Disabled,
		MustChangePassword: a.MustChangePassword, TOTPEnrolled: a.TOTPSecret != "",
		RecoveryCodesLeft: len(a.RecoveryCodes), PasswordFailures: pw, TOTPFailures: totp,
		Locked:             locks > 0 || max(pw, totp) >= auth.MaxConsecutiveFailures,
		PinnedFingerprints: nonNil(a.PinnedFingerprints), PinnedKeys: nonNil(a.PinnedKeys),
		CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
	}, nil
}

// maxListedUsers bounds one answer of a user search.
const maxListedUsers = 500

// findUsers returns the accounts whose name or email contains q (all
// when q is empty) and, when role is set, that hold role.
func (s *Server) findUsers(r *http.Request, q, role string) ([]userJSON, error) {
	accts, err := s.store.Accounts(r.Context())
	if err != nil {
		return nil, err
	}
	q = strings.ToLower(strings.TrimSpace(q))
	out := []userJSON{}
	for _, a := range accts {
		if q != "" && !strings.Contains(a.Name, q) && !strings.Contains(strings.ToLower(a.Email), q) {
			continue
		}
		if role != "" && !slices.Contains(a.Roles, role) {
			continue
		}
		u, err := s.userView(r, a)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
		if len(out) == maxListedUsers {
			break
		}
	}
	return out, nil
}

// loadTarget loads the account an action is about, as a 404 when missing.
func (s *Server) loadTarget(r *http.Request, name string) (store.Account, error) {
	a, err := s.store.Account(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return a, &Error{Status: http.StatusNotFound, Code: "no_such_user", Message: fmt.Sprintf("there is no account named %q", name)}
	}
	return a, err
}

// checkRoles requires every role to exist.
func (s *Server) checkRoles(r *http.Request, roles []string) ([]string, error) {
	if len(roles) == 0 {
		return nil, &Error{Status: http.StatusBadRequest, Code: "no_roles", Message: "give the account at least one role"}
	}
	for _, role := range roles {
		if _, err := s.store.Role(r.Context(), role); errors.Is(err, store.ErrNotFound) {
			return nil, &Error{Status: http.StatusBadRequest, Code: "no_such_role", Message: fmt.Sprintf("there is no role named %q", role)}
		} else if err != nil {
			return nil, err
		}
	}
	out := slices.Clone(roles)
	slices.Sort(out)
	return slices.Compact(out), nil
}

func invalid(code string, err error) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: err.Error()}
}

// newUser is the input of creating an account.
type newUser struct {
	Name     string   `json:"name"`
	Email    string   `json:"email"`
	Roles    []string `json:"roles"`
	Password string   `json:"password"`
}

// createUser adds an account. Without a password it gets a random
// temporary one (returned, shown once) that must be changed at first
// sign-in.
func (s *Server) createUser(r *http.Request, v *visit, in newUser) (store.Account, string, error) {
	if err := auth.CheckAccountName(in.Name); err != nil {
		return store.Account{}, "", invalid("bad_name", err)
	}
	if in.Email != "" {
		if err := auth.CheckEmail(in.Email); err != nil {
			return store.Account{}, "", invalid("bad_email", err)
		}
	}
	roles, err := s.checkRoles(r, in.Roles)
	if err != nil {
		return store.Account{}, "", err
	}
	temporary := ""
	password := in.Password
	if password == "" {
		temporary = auth.RandomPassword()
		password = temporary
	} else if err := auth.CheckNewPassword(password, in.Name, in.Email); err != nil {
		return store.Account{}, "", invalid("weak_password", err)
	}
	hash, err := s.hasher.Hash(r.Context(), password)
	if err != nil {
		return store.Account{}, "", err
	}
	now := s.now()
	a := store.Account{Name: in.Name, Email: in.Email, PasswordHash: hash, Roles: roles,
		MustChangePassword: temporary != "", CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateAccount(r.Context(), a); errors.Is(err, store.ErrExists) {
		return store.Account{}, "", &Error{Status: http.StatusConflict, Code: "exists", Message: fmt.Sprintf("an account named %q already exists", in.Name)}
	} else if err != nil {
		return store.Account{}, "", err
	}
	// Failures counted against this name before it existed (a guesser
	// trying names) must not lock the new account.
	if err := s.clearCounters(r, auth.AccountCounters(a.Name)); err != nil {
		return a, temporary, err
	}
	ev := actorEvent(v, "admin.user.create", a.Name, "roles "+strings.Join(roles, ","))
	return a, temporary, s.audit(r, ev)
}

// userChange is the input of changing an account; nil fields stay.
type userChange struct {
	Email    *string   `json:"email"`
	Roles    *[]string `json:"roles"`
	Disabled *bool     `json:"disabled"`
}

// updateUser changes an account's email, roles or disabled state. Nobody
// changes their own roles or disables themselves here. Any change ends
// the target's sessions: roles, bindings or access changed.
func (s *Server) updateUser(r *http.Request, v *visit, name string, ch userChange) (store.Account, error) {
	target, err := s.loadTarget(r, name)
	if err != nil {
		return target, err
	}
	if name == v.Account.Name && (ch.Roles != nil || ch.Disabled != nil) {
		return target, errSelf
	}
	var roles []string
	if ch.Roles != nil {
		if roles, err = s.checkRoles(r, *ch.Roles); err != nil {
			return target, err
		}
	}
	if ch.Email != nil && *ch.Email != "" {
		if err := auth.CheckEmail(*ch.Email); err != nil {
			return target, invalid("bad_email", err)
		}
	}
	var what []string
	err = s.store.UpdateAccount(r.Context(), name, func(a *store.Account) error {
		what = what[:0] // the store may run this again on a conflicting write
		if ch.Email != nil && *ch.Email != a.Email {
			a.Email = *ch.Email
			what = append(what, "email")
		}
		if ch.Roles != nil && !slices.Equal(roles, a.Roles) {
			what = append(what, fmt.Sprintf("roles %s -> %s", strings.Join(a.Roles, ","), strings.Join(roles, ",")))
			a.Roles = roles
		}
		if ch.Disabled != nil && *ch.Disabled != a.Disabled {
			a.Disabled = *ch.Disabled
			what = append(what, map[bool]string{true: "disabled", false: "enabled"}[a.Disabled])
		}
		if len(what) > 0 {
			a.UpdatedAt = s.now()
		}
		target = *a
		return nil
	})
	if err != nil {
		return target, err
	}
	if len(what) == 0 {
		return target, nil
	}
	if err := s.endSessions(r, name); err != nil {
		return target, err
	}
	return target, s.audit(r, actorEvent(v, "admin.user.update", name, strings.Join(what, "; ")))
}

// deleteUser ends an account's sessions and removes it.
func (s *Server) deleteUser(r *http.Request, v *visit, name string) error {
	if name == v.Account.Name {
		return errSelf
	}
	if _, err := s.loadTarget(r, name); err != nil {
		return err
	}
	if err := s.endSessions(r, name); err != nil {
		return err
	}
	if err := s.store.DeleteAccount(r.Context(), name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return s.audit(r, actorEvent(v, "admin.user.delete", name, ""))
}

// endSessions ends every session of user.
func (s *Server) endSessions(r *http.Request, user string) error {
	n, err := s.store.DeleteUserSessions(r.Context(), user)
	if err != nil {
		return err
	}
	s.log.Info("sessions ended", "user", user, "count", n)
	return nil
}

// roleJSON is a role in the admin API.
type roleJSON struct {
	Name               string `json:"name"`
	Description        string `json:"description"`
	RequireCertificate bool   `json:"require_certificate"`
	RequireTOTP        bool   `json:"require_totp"`
}

func roleView(r store.Role) roleJSON {
	return roleJSON{Name: r.Name, Description: r.Description, RequireCertificate: r.RequireCertificate, RequireTOTP: r.RequireTOTP}
}

// putRole creates or replaces a role. Live sessions are re-evaluated on
// their next request, so a new requirement takes effect at once.
func (s *Server) putRole(r *http.Request, v *visit, in roleJSON) (store.Role, bool, error) {
	if err := auth.CheckRoleName(in.Name); err != nil {
		return store.Role{}, false, invalid("bad_name", err)
	}
	if len(in.Description) > 200 {
		return store.Role{}, false, &Error{Status: http.StatusBadRequest, Code: "bad_description", Message: "the description is longer than 200 bytes"}
	}
	_, err := s.store.Role(r.Context(), in.Name)
	created := errors.Is(err, store.ErrNotFound)
	if err != nil && !created {
		return store.Role{}, false, err
	}
	role := store.Role{Name: in.Name, Description: in.Description, RequireCertificate: in.RequireCertificate, RequireTOTP: in.RequireTOTP}
	if err := s.store.PutRole(r.Context(), role); err != nil {
		return role, false, err
	}
	ev := actorEvent(v, "admin.role.put", in.Name, fmt.Sprintf("require_certificate=%t require_totp=%t", in.RequireCertificate, in.RequireTOTP))
	return role, created, s.audit(r, ev)
}

// deleteRole takes a role off every account and removes it. The admin
// role cannot be deleted: that would leave nobody able to administer.
func (s *Server) deleteRole(r *http.Request, v *visit, name string) error {
	if name == roleAdmin {
		return &Error{Status: http.StatusConflict, Code: "builtin_role", Message: "the admin role cannot be deleted"}
	}
	if _, err := s.store.Role(r.Context(), name); errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Code: "no_such_role", Message: fmt.Sprintf("there is no role named %q", name)}
	} else if err != nil {
		return err
	}
	accts, err := s.store.Accounts(r.Context())
	if err != nil {
		return err
	}
	for _, a := range accts {
		if !slices.Contains(a.Roles, name) {
			continue
		}
		err := s.store.UpdateAccount(r.Context(), a.Name, func(a *store.Account) error {
			a.Roles = slices.DeleteFunc(a.Roles, func(x string) bool { return x == name })
			a.UpdatedAt = s.now()
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	if err := s.store.DeleteRole(r.Context(), name); err != nil {
		return err
	}
	return s.audit(r, actorEvent(v, "admin.role.delete", name, ""))
}

// certJSON2 is an issued certificate in the admin API.
type issuedCertJSON struct {
	Serial       string     `json:"serial"`
	Fingerprint  string     `json:"fingerprint"`
	User         string     `json:"user"`
	Device       string     `json:"device,omitempty"`
	Subject      string     `json:"subject"`
	NotAfter     time.Time  `json:"not_after"`
	IssuedAt     time.Time  `json:"issued_at"`
	Status       string     `json:"status"`
	RevokedAt    *time.Time `json:"revoked_at"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	// ThisDevice is set when the request presents this certificate.
	ThisDevice bool `json:"this_device,omitempty"`
}

func (s *Server) certView(c store.Certificate) issuedCertJSON {
	out := issuedCertJSON{Serial: c.Serial, Fingerprint: c.Fingerprint, User: c.User, Device: c.Device, Subject: c.Subject,
		NotAfter: c.NotAfter.UTC(), IssuedAt: c.IssuedAt.UTC(), Status: "valid", RevokeReason: c.RevokeReason}
	switch {
	case !c.RevokedAt.IsZero():
		t := c.RevokedAt.UTC()
		out.Status, out.RevokedAt = "revoked", &t
	case s.now().After(c.NotAfter):
		out.Status = "expired"
	}
	return out
}

// certViewFor is certView for v's session, with the certificate this
// request presents marked.
func (s *Server) certViewFor(v *visit, c store.Certificate) issuedCertJSON {
	out := s.certView(c)
	out.ThisDevice = v.Decision.Cert.Valid() && presents(c, v.Decision.Cert.Info)
	return out
}

// revokeCertificate revokes a certificate issued by the built-in CA,
// named by fingerprint or serial; sessions using it lose the roles that
// need it on their next request. The certificate this very request
// presents (likely the one that makes the actor an admin) is revoked
// only with confirm: one click must not lock its owner out.
func (s *Server) revokeCertificate(r *http.Request, v *visit, id, reason string, confirm bool) (store.Certificate, error) {
	reason, err := checkReason(reason)
	if err != nil {
		return store.Certificate{}, err
	}
	certs, err := s.store.Certificates(r.Context(), "")
	if err != nil {
		return store.Certificate{}, err
	}
	c, ok := store.FindCertificate(certs, id)
	if !ok {
		return store.Certificate{}, &Error{Status: http.StatusNotFound, Code: "no_such_certificate",
			Message: "no certificate issued by this portal has that serial or fingerprint"}
	}
	if !confirm && v.Decision.Cert.Valid() && presents(c, v.Decision.Cert.Info) {
		return c, &Error{Status: http.StatusConflict, Code: "confirm_required",
			Message: "this is the certificate you are signed in with on this device: revoking it takes the roles that need it from you here at once. Tick “this is my own device's certificate” to revoke it anyway"}
	}
	revoked, err := store.RevokeWithRenewals(r.Context(), s.store, c.Serial, s.now(), reason)
	if err != nil {
		return c, err
	}
	c = revoked[0]
	reason = withRenewals(reason, revoked)
	ev := actorEvent(v, "admin.certificate.revoke", c.User, reason)
	ev.CertFingerprint = c.Fingerprint
	return c, s.audit(r, ev)
}

// liveSessionJSON is a live session in the admin API. It carries a handle
// (a hash of the ID), never the ID itself: an admin who could read
// session IDs could take over sessions.
type liveSessionJSON struct {
	Handle          string    `json:"handle"`
	User            string    `json:"user"`
	Factors         []string  `json:"factors"`
	CertFingerprint string    `json:"cert_fingerprint,omitempty"`
	ClientAddr      string    `json:"client_addr"`
	CreatedAt       time.Time `json:"created_at"`
	LastSeen        time.Time `json:"last_seen"`
	ExpiresAt       time.Time `json:"expires_at"`
}

// SessionHandle names a session without revealing its ID: the admin API
// and the command line show it, and end a session by it.
func SessionHandle(id string) string {
	sum := sha256.Sum256([]byte("gatehouse session handle:" + id))
	return hex.EncodeToString(sum[:12])
}

// liveSessions lists the sessions of user, or of everyone when user is
// empty.
func (s *Server) liveSessions(r *http.Request, user string) ([]liveSessionJSON, error) {
	users := []string{user}
	if user == "" {
		accts, err := s.store.Accounts(r.Context())
		if err != nil {
			return nil, err
		}
		users = users[:0]
		for _, a := range accts {
			users = append(users, a.Name)
		}
	}
	out := []liveSessionJSON{}
	for _, u := range users {
		list, err := s.store.Sessions(r.Context(), u)
		if err != nil {
			return nil, err
		}
		for _, x := range list {
			out = append(out, liveSessionJSON{Handle: SessionHandle(x.ID), User: x.User, Factors: nonNil(x.Factors),
				CertFingerprint: x.CertFingerprint, ClientAddr: x.ClientAddr,
				CreatedAt: x.CreatedAt.UTC(), LastSeen: x.LastSeen.UTC(), ExpiresAt: x.ExpiresAt.UTC()})
		}
	}
	return out, nil
}

// revokeSessions ends one session of user (by handle), or all of them
// when handle is empty, and returns how many ended.
func (s *Server) revokeSessions(r *http.Request, v *visit, user, handle string) (int, error) {
	if _, err := s.loadTarget(r, user); err != nil {
		return 0, err
	}
	n := 0
	if handle == "" {
		var err error
		if n, err = s.store.DeleteUserSessions(r.Context(), user); err != nil {
			return 0, err
		}
	} else {
		list, err := s.store.Sessions(r.Context(), user)
		if err != nil {
			return 0, err
		}
		for _, x := range list {
			if SessionHandle(x.ID) == handle {
				if err := s.store.DeleteSession(r.Context(), x.ID); err != nil {
					return 0, err
				}
				n = 1
			}
		}
		if n == 0 {
			return 0, &Error{Status: http.StatusNotFound, Code: "no_such_session", Message: "that session has already ended"}
		}
	}
	return n, s.audit(r, actorEvent(v, "admin.sessions.revoke", user, fmt.Sprintf("%d session(s)", n)))
}

// auditQuery reads the audit filters of a request's query string.
func auditQuery(r *http.Request) (store.AuditQuery, error) {
	q := r.URL.Query()
	aq := store.AuditQuery{User: q.Get("user"), Actor: q.Get("actor"), Action: q.Get("action"), Before: q.Get("before"), Limit: 100}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return aq, &Error{Status: http.StatusBadRequest, Code: "bad_limit", Message: "limit must be a number from 1 to 1000"}
		}
		aq.Limit = n
	}
	if aq.Before != "" && strings.Trim(aq.Before, "0123456789-") != "" {
		return aq, &Error{Status: http.StatusBadRequest, Code: "bad_before", Message: "before must be an event id from a previous page; start again from the first page of the audit trail"}
	}
	for name, dst := range map[string]*time.Time{"since": &aq.Since, "until": &aq.Until} {
		if v := q.Get(name); v != "" {
			t, err := parseTime(v)
			if err != nil {
				return aq, &Error{Status: http.StatusBadRequest, Code: "bad_time", Message: fmt.Sprintf("%s must be a date (2026-05-03) or a time (2026-05-03T14:00:00Z)", name)}
			}
			*dst = t
		}
	}
	return aq, nil
}

func parseTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, v)
}

// JSON handlers of /api/admin/.

func (s *Server) apiAdminUsers(w http.ResponseWriter, r *http.Request, v *visit) {
	users, err := s.findUsers(r, r.URL.Query().Get("q"), r.URL.Query().Get("role"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"users": users})
}

func (s *Server) apiAdminCreateUser(w http.ResponseWriter, r *http.Request, v *visit) {
	var in newUser
	if err := decodeInput(r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	a, temporary, err := s.createUser(r, v, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.userView(r, a)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := map[string]any{"user": u}
	if temporary != "" {
		out["temporary_password"] = temporary
	}
	s.writeJSON(w, http.StatusCreated, out)
}

func (s *Server) apiAdminUser(w http.ResponseWriter, r *http.Request, v *visit) {
	a, err := s.loadTarget(r, r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.userView(r, a)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sessions, err := s.liveSessions(r, a.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	certs, err := s.store.Certificates(r.Context(), a.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cv := []issuedCertJSON{}
	for _, c := range certs {
		cv = append(cv, s.certView(c))
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"user": u, "sessions": sessions, "certificates": cv})
}

func (s *Server) apiAdminUpdateUser(w http.ResponseWriter, r *http.Request, v *visit) {
	var ch userChange
	if err := decodeInput(r, &ch); err != nil {
		s.fail(w, r, err)
		return
	}
	a, err := s.updateUser(r, v, r.PathValue("name"), ch)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.userView(r, a)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"user": u})
}

func (s *Server) apiAdminRoles(w http.ResponseWriter, r *http.Request, v *visit) {
	roles, err := s.store.Roles(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []roleJSON{}
	for _, x := range roles {
		out = append(out, roleView(x))
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"roles": out})
}

func (s *Server) apiAdminCertificates(w http.ResponseWriter, r *http.Request, v *visit) {
	certs, err := s.store.Certificates(r.Context(), r.URL.Query().Get("user"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []issuedCertJSON{}
	for _, c := range certs {
		out = append(out, s.certView(c))
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"certificates": out})
}

func (s *Server) apiAdminRevokeCertificate(w http.ResponseWriter, r *http.Request, v *visit) {
	var in struct {
		Reason  string `json:"reason"`
		Confirm bool   `json:"confirm"`
	}
	if err := decodeInput(r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.revokeCertificate(r, v, r.PathValue("id"), in.Reason, in.Confirm)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, s.certView(c))
}

func (s *Server) apiAdminSessions(w http.ResponseWriter, r *http.Request, v *visit) {
	list, err := s.liveSessions(r, r.URL.Query().Get("user"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"sessions": list})
}

func (s *Server) apiAdminRevokeSessions(w http.ResponseWriter, r *http.Request, v *visit) {
	n, err := s.revokeSessions(r, v, r.PathValue("name"), r.PathValue("handle"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]int{"ended": n})
}

func (s *Server) apiAdminAudit(w http.ResponseWriter, r *http.Request, v *visit) {
	q, err := auditQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	events, err := s.store.Audit(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := map[string]any{"events": events}
	if len(events) == q.Limit {
		out["next"] = events[len(events)-1].ID
	}
	if events == nil {
		out["events"] = []store.AuditEvent{}
	}
	s.writeJSON(w, http.StatusOK, out)
}

// apiHandler is an admin or help-desk API handler, after requireRole.
type apiHandler = func(http.ResponseWriter, *http.Request, *visit)

// apiGet serves GET of one named record: 404 in plain words when there
// is none.
func apiGet[R, J any](s *Server, kind string, load func(context.Context, string) (R, error), view func(R) J) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, v *visit) {
		name := r.PathValue("name")
		rec, err := load(r.Context(), name)
		if errors.Is(err, store.ErrNotFound) {
			err = &Error{Status: http.StatusNotFound, Code: "no_such_" + kind, Message: fmt.Sprintf("there is no %s named %q", kind, name)}
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.writeJSON(w, http.StatusOK, view(rec))
	}
}

// apiPut serves PUT of one named record, created (201) or replaced
// (200). A name in the body, when given, must be the one in the URL.
func apiPut[J, R any](s *Server, name func(*J) *string, put func(*http.Request, *visit, J) (R, bool, error), view func(R) J) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, v *visit) {
		var in J
		if err := decodeInput(r, &in); err != nil {
			s.fail(w, r, err)
			return
		}
		if n := name(&in); *n != "" && *n != r.PathValue("name") {
			s.fail(w, r, &Error{Status: http.StatusBadRequest, Code: "name_mismatch", Message: "the name in the body differs from the one in the URL"})
			return
		}
		*name(&in) = r.PathValue("name")
		rec, created, err := put(r, v, in)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		s.writeJSON(w, status, view(rec))
	}
}

// apiDelete serves DELETE of one named record (204).
func apiDelete(s *Server, del func(*http.Request, *visit, string) error) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, v *visit) {
		if err := del(r, v, r.PathValue("name")); err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
