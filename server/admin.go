package server

import (
	"cmp"
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
	Name string `json:"name"`
	// Subject is how apps that speak OpenID Connect know the account
	// (their sub), never given to another account.
	Subject            string    `json:"subject"`
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
	views, err := s.userViews(r, []store.Account{a})
	if err != nil {
		return userJSON{}, err
	}
	return views[0], nil
}

// userViews is userView of several accounts, with their failure and lock
// counters read in one go.
func (s *Server) userViews(r *http.Request, accts []store.Account) ([]userJSON, error) {
	// Per account: password and TOTP failures, then their locks.
	var keys []string
	for _, a := range accts {
		pw, totp := auth.FailureCounter(auth.CounterPassword, a.Name), auth.FailureCounter(auth.CounterTOTP, a.Name)
		keys = append(keys, pw, totp, auth.LockCounter(pw), auth.LockCounter(totp))
	}
	counts, err := s.store.FailuresOf(r.Context(), keys)
	if err != nil {
		return nil, err
	}
	out := make([]userJSON, len(accts))
	for i, a := range accts {
		pw, totp, locks := counts[4*i], counts[4*i+1], counts[4*i+2]+counts[4*i+3]
		out[i] = userJSON{
			Name: a.Name, Subject: a.Subject(), Email: a.Email, Roles: nonNil(a.Roles), Disabled: a.Disabled,
			MustChangePassword: a.MustChangePassword, TOTPEnrolled: a.TOTPSecret != "",
			RecoveryCodesLeft: len(a.RecoveryCodes), PasswordFailures: pw, TOTPFailures: totp,
			Locked:             locks > 0 || max(pw, totp) >= auth.MaxConsecutiveFailures,
			PinnedFingerprints: nonNil(a.PinnedFingerprints), PinnedKeys: nonNil(a.PinnedKeys),
			CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
		}
	}
	return out, nil
}

// Paging of the admin and help-desk lists. Every list takes limit (1 to
// 1000, default 100) and cursor (the next of the previous page) and
// answers at most limit items with a next cursor when there are more: a
// page costs the same whatever the number of records.

// defaultPage is how many items a list shows when limit is not given.
const defaultPage = 100

// listParams reads limit and cursor from the query string.
func listParams(r *http.Request) (store.ListQuery, error) {
	q := store.ListQuery{Limit: defaultPage, Cursor: r.URL.Query().Get("cursor")}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxPage {
			return q, &Error{Status: http.StatusBadRequest, Code: "bad_limit", Message: fmt.Sprintf("limit must be a number from 1 to %d", store.MaxPage)}
		}
		q.Limit = n
	}
	return q, nil
}

// errBadCursor answers a cursor that is not the next of a page of the
// same list.
var errBadCursor = &Error{Status: http.StatusBadRequest, Code: "bad_cursor",
	Message: "cursor must be the next of a previous page of the same list; start again from the first page"}

// listError turns a store's ErrBadCursor into errBadCursor.
func listError(err error) error {
	if errors.Is(err, store.ErrBadCursor) {
		return errBadCursor
	}
	return err
}

// maxUserScan bounds how many accounts one page of a search looks at:
// a search whose matches are rare answers a short page, with a next
// cursor, rather than reading every account.
const maxUserScan = 5000

// findUsers returns a page of the accounts whose name or email contains
// q (all when q is empty) and, when role is set, that hold role, with
// the cursor of the next page ("" at the end).
func (s *Server) findUsers(r *http.Request, q, role string, lq store.ListQuery) ([]userJSON, string, error) {
	q = strings.ToLower(strings.TrimSpace(q))
	matches := func(a store.Account) bool {
		return (q == "" || strings.Contains(a.Name, q) || strings.Contains(strings.ToLower(a.Email), q)) &&
			(role == "" || slices.Contains(a.Roles, role))
	}
	var found []store.Account
	next, looked := lq.Cursor, 0
	for len(found) < lq.Limit {
		batch := lq.Limit - len(found) // unfiltered, exactly the page
		if q != "" || role != "" {
			batch = min(store.MaxPage, maxUserScan-looked)
		}
		page, err := s.store.ListAccounts(r.Context(), store.ListQuery{Cursor: next, Limit: batch})
		if err != nil {
			return nil, "", listError(err)
		}
		next = page.Next
		for i, a := range page.Items {
			looked++
			if !matches(a) {
				continue
			}
			if found = append(found, a); len(found) == lq.Limit && i < len(page.Items)-1 {
				next = store.Cursor(store.AccountCursor, store.AccountPosition{Name: a.Name})
				break
			}
		}
		if next == "" || looked >= maxUserScan {
			break
		}
	}
	users, err := s.userViews(r, found)
	return users, next, err
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
	a := store.Account{Name: in.Name, ID: store.NewAccountID(), Email: in.Email, PasswordHash: hash, Roles: roles,
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

// deleteUser revokes the certificates the built-in CA issued to an
// account, ends its sessions and removes it. The certificates go first:
// they bind by common name, so one left valid would count for the next
// account given the name (a new hire with the departed one's user name).
// A revocation that fails refuses the delete, so the account is never
// gone while a certificate of it still counts.
func (s *Server) deleteUser(r *http.Request, v *visit, name string) error {
	if name == v.Account.Name {
		return errSelf
	}
	if _, err := s.loadTarget(r, name); err != nil {
		return err
	}
	if err := s.revokeCertificatesOf(r, v, name, "account deleted"); err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "certificates_not_revoked", Err: err,
			Message: fmt.Sprintf("the certificates issued to %s could not all be revoked right now, so the account was not deleted; please try again shortly", name)}
	}
	if err := s.endSessions(r, name); err != nil {
		return err
	}
	if err := s.store.DeleteAccount(r.Context(), name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return s.audit(r, actorEvent(v, "admin.user.delete", name, ""))
}

// revokeCertificatesOf revokes every certificate recorded for user that
// is not revoked yet, a page of records at a time, the way an admin's
// revocation does (store.Store.RevokeCertificate: every instance sees it
// on its next request), and audits each as admin.certificate.revoke with
// reason, its device and serial.
func (s *Server) revokeCertificatesOf(r *http.Request, v *visit, user, reason string) error {
	now := s.now()
	return store.ForEach(func(cursor string) (store.Page[store.Certificate], error) {
		return s.store.ListCertificates(r.Context(), store.ListQuery{User: user, Cursor: cursor})
	}, func(c store.Certificate) error {
		if !c.RevokedAt.IsZero() {
			return nil
		}
		revoked, err := s.store.RevokeCertificate(r.Context(), c.Serial, now, reason)
		if err != nil {
			return fmt.Errorf("revoke certificate %s of %q: %w", c.Serial, user, err)
		}
		ev := actorEvent(v, "admin.certificate.revoke", user, store.RevocationReason(reason, []store.Certificate{revoked}))
		ev.CertFingerprint = revoked.Fingerprint
		return s.audit(r, ev)
	})
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
	err := store.EachAccount(r.Context(), s.store, func(a store.Account) error {
		if !slices.Contains(a.Roles, name) {
			return nil
		}
		err := s.store.UpdateAccount(r.Context(), a.Name, func(a *store.Account) error {
			a.Roles = slices.DeleteFunc(a.Roles, func(x string) bool { return x == name })
			a.UpdatedAt = s.now()
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
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
	c, ok, err := store.LookupCertificate(r.Context(), s.store, id)
	if err != nil {
		return store.Certificate{}, err
	}
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
	reason = store.RevocationReason(reason, revoked)
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

// liveSessions returns a page of live sessions, of lq.User or of
// everyone, by account then start time, with the cursor of the next
// page. A store's session cursor holds a session ID, which no admin may
// see (it would take the session over): the cursor given out is sealed.
func (s *Server) liveSessions(r *http.Request, lq store.ListQuery) ([]liveSessionJSON, string, error) {
	if lq.Cursor != "" {
		var err error
		if lq.Cursor, err = s.openCursor(lq.Cursor); err != nil {
			return nil, "", err
		}
	}
	page, err := s.store.ListSessions(r.Context(), lq)
	if err != nil {
		return nil, "", listError(err)
	}
	out := make([]liveSessionJSON, 0, len(page.Items))
	for _, x := range page.Items {
		out = append(out, liveSessionJSON{Handle: SessionHandle(x.ID), User: x.User, Factors: nonNil(x.Factors),
			CertFingerprint: x.CertFingerprint, ClientAddr: x.ClientAddr,
			CreatedAt: x.CreatedAt.UTC(), LastSeen: x.LastSeen.UTC(), ExpiresAt: x.ExpiresAt.UTC()})
	}
	return out, s.sealCursor(page.Next), nil
}

// sessionCursorContext binds sealed session cursors to their use.
const sessionCursorContext = "gatehouse admin session cursor"

// sealCursor seals a store's session cursor into URL-safe text.
func (s *Server) sealCursor(c string) string {
	if c == "" {
		return ""
	}
	return urlSafe.Replace(s.sealer.Seal([]byte(c), sessionCursorContext))
}

// openCursor opens a cursor made by sealCursor.
func (s *Server) openCursor(c string) (string, error) {
	plain, err := s.sealer.Open(urlStd.Replace(c), sessionCursorContext)
	if err != nil {
		return "", errBadCursor
	}
	return string(plain), nil
}

// urlSafe and urlStd map the sealer's text ("v1:" and standard base64)
// to characters that need no escaping in a URL, and back.
var (
	urlSafe = strings.NewReplacer("+", "-", "/", "_", ":", ".")
	urlStd  = strings.NewReplacer("-", "+", "_", "/", ".", ":")
)

// certificates returns a page of certificates, of lq.User or of
// everyone, oldest first, with the cursor of the next page.
func (s *Server) certificates(r *http.Request, v *visit, lq store.ListQuery) ([]issuedCertJSON, string, error) {
	page, err := s.store.ListCertificates(r.Context(), lq)
	if err != nil {
		return nil, "", listError(err)
	}
	out := make([]issuedCertJSON, 0, len(page.Items))
	for _, c := range page.Items {
		out = append(out, s.certViewFor(v, c))
	}
	return out, page.Next, nil
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
	lq, err := listParams(r)
	if err != nil {
		return store.AuditQuery{}, err
	}
	// cursor, as in every list, or before, as earlier versions took it.
	aq := store.AuditQuery{User: q.Get("user"), Actor: q.Get("actor"), Action: q.Get("action"), Before: cmp.Or(lq.Cursor, q.Get("before")), Limit: lq.Limit}
	if aq.Before != "" && strings.Trim(aq.Before, "0123456789-") != "" {
		return aq, badAuditCursor(r)
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

// badAuditCursor is the answer to an audit cursor that is not an event
// ID: bad_cursor for cursor=, as every list says, and bad_before for
// before=, as earlier versions said.
func badAuditCursor(r *http.Request) *Error {
	if r.URL.Query().Get("cursor") != "" {
		return errBadCursor
	}
	return &Error{Status: http.StatusBadRequest, Code: "bad_before", Message: "before must be an event id from a previous page; start again from the first page of the audit trail"}
}

func parseTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, v)
}

// JSON handlers of /api/admin/.

func (s *Server) apiAdminUsers(w http.ResponseWriter, r *http.Request, v *visit) {
	lq, err := listParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	users, next, err := s.findUsers(r, r.URL.Query().Get("q"), r.URL.Query().Get("role"), lq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, withNext(map[string]any{"users": users}, next))
}

// withNext adds "next" to a list's answer when there is a next page.
func withNext(out map[string]any, next string) map[string]any {
	if next != "" {
		out["next"] = next
	}
	return out
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
	// The first page of each; sessions_next and certificates_next
	// continue them in /api/admin/sessions and /api/admin/certificates
	// with ?user=.
	first := store.ListQuery{User: a.Name, Limit: defaultPage}
	sessions, sessionsNext, err := s.liveSessions(r, first)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	certs, certsNext, err := s.certificates(r, v, first)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := map[string]any{"user": u, "sessions": sessions, "certificates": certs}
	if sessionsNext != "" {
		out["sessions_next"] = sessionsNext
	}
	if certsNext != "" {
		out["certificates_next"] = certsNext
	}
	s.writeJSON(w, http.StatusOK, out)
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
	lq, err := listParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	lq.User = r.URL.Query().Get("user")
	certs, next, err := s.certificates(r, v, lq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, withNext(map[string]any{"certificates": certs}, next))
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
	lq, err := listParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	lq.User = r.URL.Query().Get("user")
	list, next, err := s.liveSessions(r, lq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, withNext(map[string]any{"sessions": list}, next))
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
	page, err := s.store.Audit(r.Context(), q)
	if errors.Is(err, store.ErrBadCursor) {
		err = badAuditCursor(r)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if page.Items == nil {
		page.Items = []store.AuditEvent{}
	}
	s.writeJSON(w, http.StatusOK, withNext(map[string]any{"events": page.Items}, page.Next))
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

// apiList serves GET of every record of a kind (a short list: apps,
// OpenID Connect clients), as {"<key>": [...]}.
func apiList[R, J any](s *Server, key string, list func(context.Context) ([]R, error), view func(R) J) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, v *visit) {
		recs, err := list(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out := make([]J, 0, len(recs))
		for _, rec := range recs {
			out = append(out, view(rec))
		}
		s.writeJSON(w, http.StatusOK, map[string]any{key: out})
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
