package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/sessions"

	"gatehouse/auth"
	"gatehouse/store"
)

// maxUsernameBytes bounds the username field.
const maxUsernameBytes = 128

// msgBadLogin is the one answer to a wrong password, an unknown user and
// a disabled account, so none can be told apart.
const msgBadLogin = "invalid username or password"

// loginForm is the login page's content.
type loginForm struct {
	Username string
	Return   string
	// Cert describes the certificate this connection presented, so the
	// user knows before signing in whether it can count.
	Cert auth.CertResult
	// Again is set when an app asks a signed-in person to sign in again
	// (OpenID Connect prompt=login or max_age): the form is shown to a
	// session that is already signed in.
	Again bool
}

func (s *Server) handleLoginGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.visit(w, r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		rd := s.returnTo(r, r.URL.Query().Get("rd"))
		again := v != nil && v.Complete() && r.URL.Query().Get("again") == "1"
		if v != nil && v.Complete() && !again {
			http.Redirect(w, r, orHome(rd), http.StatusSeeOther)
			return
		}
		f := loginForm{Return: rd, Again: again}
		if again {
			f.Username = v.Account.Name
		}
		s.renderLogin(w, r, http.StatusOK, f, "")
	})
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, f loginForm, msg string) {
	s.allowFormRedirect(w, r, f.Return)
	f.Cert = s.verifier.Verify(r.Context(), s.peerCertificates(r), s.now())
	s.render(w, r, status, "login.html", page{Title: "Sign in", Error: msg, Data: f})
}

func (s *Server) handleLoginPost() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			s.fail(w, r, badForm(err))
			return
		}
		username := lowerASCII(strings.TrimSpace(r.PostForm.Get("username")))
		password := r.PostForm.Get("password")
		form := loginForm{Username: username, Return: s.returnTo(r, r.PostForm.Get("rd"))}
		switch {
		case username == "" || password == "":
			s.renderLogin(w, r, http.StatusBadRequest, form, "enter your username and password")
			return
		case len(username) > maxUsernameBytes:
			s.renderLogin(w, r, http.StatusBadRequest, form, msgBadLogin)
			return
		case len(password) > auth.MaxPasswordBytes && len(auth.NormalizePassword(password)) > auth.MaxPasswordBytes:
			// Refused before any lookup, the same for every username.
			s.renderLogin(w, r, http.StatusBadRequest, form, "passwords are at most 72 bytes long; this one is longer")
			return
		}

		// A store that lost its data would answer "no such account" for
		// everyone: it is refused first, in plain words, for every name
		// alike (so the check costs known and unknown names the same).
		if err := s.store.CheckMarker(r.Context(), username); err != nil {
			s.fail(w, r, hideName(err, username, s.unknownName(username)))
			return
		}
		ctx := r.Context()
		now := s.now()
		// The account is looked up first, so that from here on a name
		// that matches no account is only ever its keyed hash: in the
		// throttle's store keys, the log and the audit trail.
		acct, err := s.findAccount(r, username)
		if err != nil {
			s.fail(w, r, hideName(err, username, s.unknownName(username)))
			return
		}
		actor := s.unknownName(username)
		if acct != nil {
			actor = acct.Name
		}
		cert := s.verifier.Verify(ctx, s.peerCertificates(r), now)
		// Whom a certificate counts for decides whether this is a known
		// device, and later the certificate factor: it is looked up for
		// every valid certificate, whether or not the account exists, so
		// that the time it takes tells nothing about the name.
		var owners []string
		if cert.Valid() {
			if owners, err = s.certOwners(r, cert.Info); err != nil {
				s.fail(w, r, hideName(err, username, s.unknownName(username)))
				return
			}
		}
		dev, err := s.signInDevice(r, acct, username, cert, owners, now)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		ths, err := s.signInThrottles(r, actor, &dev)
		if err != nil {
			s.loginRefused(w, r, form, actor, dev, err)
			return
		}
		if acct == nil {
			// Compare against a dummy hash so that an unknown user costs
			// the same time as a wrong password.
			if err := s.hasher.CheckUnknown(ctx, password); errors.Is(err, auth.ErrBadPassword) {
				s.loginFailed(w, r, form, actor, "unknown_user", dev, ths)
			} else {
				s.fail(w, r, err)
			}
			return
		}
		check := s.hasher.Check
		if dev.known != "" {
			check = s.hasher.CheckKnown
		}
		if err := check(ctx, acct.PasswordHash, password); errors.Is(err, auth.ErrBadPassword) {
			s.loginFailed(w, r, form, actor, "bad_password", dev, ths)
			return
		} else if err != nil {
			s.fail(w, r, err)
			return
		}
		roles, err := s.rolesOf(r, *acct)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		in := auth.Input{
			Account:    authAccount(*acct),
			Roles:      roles,
			PasswordOK: true,
			Cert:       cert,
			Now:        now,
		}
		if in.Cert.Valid() {
			// A certificate counts only for an account it alone names:
			// the answer can take privilege away, never add it.
			in.CertOwners = owners
		}
		d := auth.Decide(in)
		if d.Cert.Status == auth.CertAmbiguous {
			s.log.Warn("certificate names more than one account; it counts for none of them",
				"user", acct.Name, "accounts", strings.Join(in.CertOwners, ","), "cert_fingerprint", d.Cert.Info.Fingerprint)
		}
		if !d.Allow {
			s.loginFailed(w, r, form, actor, d.AuditReason, dev, ths)
			return
		}
		// Only now is the count cleared: a right password on a disabled
		// account must not tell the guesser anything by ending the delay.
		// A known device's success clears its own count only: the
		// account's count is of guesses made elsewhere, which the owner
		// signing in here does nothing to undo.
		if dev.known == "" {
			if err := s.succeeded(ctx, &ths[1]); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		if err := s.deviceSignedIn(r, dev); err != nil {
			s.fail(w, r, err)
			return
		}
		ev := loginEvent(acct.Name, d)
		ev.KnownDevice = dev.known
		if err := s.audit(r, ev); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.startSessionOwned(w, r, *acct, d, nil, in.CertOwners); err != nil {
			s.fail(w, r, err)
			return
		}
		if d.Next != auth.StepTOTP && d.Next != auth.StepChangePassword {
			// A complete sign-in: this browser is a known device from now
			// on. (A temporary password gets its cookie with the new one.)
			s.setDeviceCookie(w, acct.Name, acct.PasswordHash)
		}
		switch d.Next {
		case auth.StepTOTP:
			http.Redirect(w, r, withReturn("/login/totp", form.Return), http.StatusSeeOther)
		case auth.StepChangePassword:
			http.Redirect(w, r, withReturn("/account/password", form.Return), http.StatusSeeOther)
		default:
			http.Redirect(w, r, orHome(form.Return), http.StatusSeeOther)
		}
	})
}

// lowerASCII folds the ASCII capitals of a typed account name: names
// are lower-case, and a phone's keyboard capitalises the first letter.
// Nothing else is folded (strings.ToLower would turn the Kelvin sign
// into k), so no other character can stand for one of a name's.
func lowerASCII(name string) string {
	b := []byte(name)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// findAccount returns the named account, or nil when there is none.
func (s *Server) findAccount(r *http.Request, name string) (*store.Account, error) {
	a, err := s.store.Account(r.Context(), name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &a, nil
}

// signInDevice finds the device a sign-in for username (acct, nil when
// there is no such account) comes from. Only a sign-in that presents a
// verified certificate, or a device cookie for username, can come from a
// known device. owners are the accounts the certificate is bound to
// (certOwners).
func (s *Server) signInDevice(r *http.Request, acct *store.Account, username string, cert auth.CertResult, owners []string, now time.Time) (device, error) {
	tok, hasCookie := s.deviceToken(r, username, now)
	if acct == nil || (!cert.Valid() && !hasCookie) {
		return device{}, nil
	}
	return s.knownDevice(r.Context(), *acct, cert, owners, tok, hasCookie)
}

// signInThrottles checks the throttles a sign-in from dev answers to, and
// returns those its failure will count on; actor is the account's name,
// or the keyed hash of a name that matches none. They are checked before
// bcrypt runs: a throttled guess costs the portal nothing, and learns nothing,
// not even whether the password was right. A known device answers to its
// own count only, so that failures on other devices neither slow nor
// lock out the account's owner; one at its limit is an unknown device
// from here on. An unknown device answers to the client address's count
// and the account's, in that order.
func (s *Server) signInThrottles(r *http.Request, actor string, dev *device) ([]throttle, error) {
	if dev.known != "" {
		if err := s.checkDevice(r.Context(), dev); err != nil {
			return nil, err
		}
		if dev.known != "" {
			return []throttle{dev.th}, nil
		}
	}
	ths := []throttle{s.addressThrottle(r), accountThrottle(auth.CounterPassword, actor)}
	for i := range ths {
		if err := s.check(r.Context(), &ths[i]); err != nil {
			return nil, err
		}
	}
	return ths, nil
}

// loginFailed answers every failed login the same way; the reason goes
// only to the audit trail and the log, under actor: the account's name,
// or the keyed hash of a name that matches no account (unknownName).
// Each failure counts on ths: for an unknown device, against the account
// (existing or not) and the client address; for a known device, against
// that device alone.
func (s *Server) loginFailed(w http.ResponseWriter, r *http.Request, form loginForm, actor, reason string, dev device, ths []throttle) {
	for i := range ths {
		if err := s.failed(r.Context(), &ths[i]); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	err := s.audit(r, store.AuditEvent{Action: "login", Outcome: "failure", Actor: actor, Reason: reason, KnownDevice: dev.known})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderLogin(w, r, http.StatusUnauthorized, form, msgBadLogin)
}

// loginRefused answers a login refused by a throttle: 429 with
// Retry-After while a delay runs, 403 once the account is locked. Known
// and unknown usernames are throttled alike, so this tells nothing about
// whether the account exists. actor is as for loginFailed.
func (s *Server) loginRefused(w http.ResponseWriter, r *http.Request, form loginForm, actor string, dev device, err error) {
	e := asError(err)
	if e.Status != http.StatusTooManyRequests && e.Status != http.StatusForbidden {
		s.fail(w, r, err)
		return
	}
	if err := s.audit(r, store.AuditEvent{Action: "login", Outcome: "failure", Actor: actor, Reason: e.Code, KnownDevice: dev.known}); err != nil {
		s.fail(w, r, err)
		return
	}
	msg := e.Message
	if e.Code == "locked" {
		msg = "sign-in to this account is " + msg
	}
	setRetryAfter(w, e)
	s.renderLogin(w, r, e.Status, form, msg)
}

// unknownNamePrefix starts the keyed hash that stands for a name typed at
// sign-in that matches no account. Account names cannot hold ':', so the
// hash never reads as an account's name.
const unknownNamePrefix = "unknown:"

// unknownNameHexDigits is how much of the HMAC the hash keeps: 64 bits,
// so two names typed at one portal do not share a hash by chance.
const unknownNameHexDigits = 16

// unknownName returns the keyed hash (HMAC-SHA-256 under
// Config.UnknownNameKey) that stands for name, a name typed at sign-in
// that matches no account: "unknown:" and 16 hex digits. Such a name is
// often a password typed into the wrong field, so it never reaches a log,
// the audit trail or a store key as typed. The hash is the same at every
// attempt, on every instance and after restarts, so repeated attempts
// with one name stay visible; without the key it cannot be checked
// against a list of guesses.
func (s *Server) unknownName(name string) string {
	m := hmac.New(sha256.New, s.nameKey)
	m.Write([]byte(name))
	return unknownNamePrefix + hex.EncodeToString(m.Sum(nil))[:unknownNameHexDigits]
}

// hideName returns err with name, as typed or quoted, replaced by hash in
// its text, for the log: a store error may quote the name it looked up.
// errors.Is and errors.As still see err.
func hideName(err error, name, hash string) error {
	msg := strings.ReplaceAll(err.Error(), name, hash)
	if q := strconv.Quote(name); len(q) > 2 {
		msg = strings.ReplaceAll(msg, q[1:len(q)-1], hash)
	}
	return &hiddenNameError{msg: msg, err: err}
}

// hiddenNameError is an error whose text was rewritten by hideName.
type hiddenNameError struct {
	msg string
	err error
}

func (e *hiddenNameError) Error() string { return e.msg }
func (e *hiddenNameError) Unwrap() error { return e.err }

// loginEvent describes a successful login for the audit trail. A
// certificate bound to another account is a warning (someone may be using
// a colleague's device or certificate), and so is one bound to more than
// one account (a certificate authority named two accounts in it, or two
// accounts share an email).
func loginEvent(user string, d auth.Decision) store.AuditEvent {
	e := store.AuditEvent{Action: "login", Outcome: "success", Actor: user, ActorFactors: d.Factors,
		Reason: d.AuditReason, CertStatus: d.Cert.Status.String(), Notices: d.Notices}
	if d.Cert.Info != nil {
		e.CertFingerprint = d.Cert.Info.Fingerprint
	}
	switch {
	case d.Cert.Status == auth.CertOtherUser, d.Cert.Status == auth.CertAmbiguous:
		e.Outcome = "warning"
	case d.Next == auth.StepTOTP:
		e.Outcome = "pending"
	}
	return e
}

// certOwners returns every account a verified certificate is bound to
// (by name, email or pin; see auth.CertBoundTo), sorted by name. It is
// the one place that finds a certificate's owners: a login asks it, and
// the session remembers the answer for its later requests. It looks at
// every account, once per sign-in with a certificate: through the store
// cache (store/cached, AccountKeys), in memory, read again from the store
// after any account changes; an account that was made with another's
// email before emails were unique is found like any other, so such a
// certificate counts for neither.
func (s *Server) certOwners(r *http.Request, info *auth.CertInfo) ([]string, error) {
	var keys []store.AccountKeys
	var err error
	if c, ok := s.store.(accountKeyser); ok {
		keys, err = c.AccountKeys(r.Context())
	} else {
		keys, err = store.AccountKeysOf(r.Context(), s.store)
	}
	if err != nil {
		return nil, err
	}
	var owners []string
	for _, k := range keys {
		a := auth.Account{Name: k.Name, Email: k.Email, PinnedFingerprints: k.PinnedFingerprints, PinnedKeys: k.PinnedKeys}
		if auth.CertBoundTo(info, a) {
			owners = append(owners, k.Name)
		}
	}
	return owners, nil
}

// accountKeyser is a store that keeps every account's keys at hand (the
// store cache, store/cached).
type accountKeyser interface {
	AccountKeys(context.Context) ([]store.AccountKeys, error)
}

// startSession ends any session the request carried and starts a new one
// with a new ID, so an ID known before login is worthless after it (no
// fixation). It is also called at every privilege change; then since is
// the session being replaced, whose creation time and absolute end carry
// over. A session waiting at the TOTP step lives only totpStepLifetime.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, acct store.Account, d auth.Decision, since *store.Session) error {
	var owners []string
	if since != nil {
		owners = since.OtherCertOwners
	}
	return s.startSessionOwned(w, r, acct, d, since, owners)
}

// startSessionOwned is startSession for a login that found the presented
// certificate bound to owners (certOwners).
func (s *Server) startSessionOwned(w http.ResponseWriter, r *http.Request, acct store.Account, d auth.Decision, since *store.Session, owners []string) error {
	if old, err := s.sessions.Get(r, s.cookieName); err == nil && old.ID != "" {
		if err := s.store.DeleteSession(r.Context(), old.ID); err != nil {
			return err
		}
	}
	now := s.now()
	rec := store.Session{
		User:       acct.Name,
		Factors:    d.Factors,
		ClientAddr: s.clientAddr(r),
		CreatedAt:  now,
		LastSeen:   now,
		ExpiresAt:  now.Add(s.max),
	}
	switch {
	case since != nil:
		rec.CreatedAt, rec.ExpiresAt = since.CreatedAt, since.ExpiresAt
	case d.Next == auth.StepTOTP:
		rec.ExpiresAt = now.Add(totpStepLifetime)
	}
	switch {
	case d.Cert.Valid():
		rec.CertID, rec.CertFingerprint = d.Cert.Info.ID, d.Cert.Info.Fingerprint
	case (d.Cert.Status == auth.CertOtherUser || d.Cert.Status == auth.CertAmbiguous) && len(owners) > 0:
		rec.OtherCertID, rec.OtherCertOwners = d.Cert.Info.ID, owners
	}
	sess := sessions.NewSession(s.sessions, s.cookieName)
	opts := s.sessions.options
	sess.Options = &opts
	sess.IsNew = true
	sess.Values[recordKey{}] = rec
	sess.Values[ttlKey{}] = s.ttl(rec, now)
	if err := s.sessions.Save(r, w, sess); err != nil {
		return err
	}
	return s.stillSignsIn(w, r, acct, sess)
}

var errChangedMeanwhile = &Error{Status: http.StatusUnauthorized, Code: "changed_meanwhile",
	Message: "the account's password was changed, or the account disabled, while you were signing in: sign in again"}

// stillSignsIn reads the account again once its new session is written,
// and deletes that session if the account is no longer the one it was
// decided for: another password, disabled or gone. A password change,
// reset or disable that lands while a sign-in is decided (bcrypt takes
// a quarter of a second) ends the account's sessions before this one is
// written; without this read it would stand, signed in with a password
// that no longer is. A change after this read ends it like any other.
func (s *Server) stillSignsIn(w http.ResponseWriter, r *http.Request, acct store.Account, sess *sessions.Session) error {
	current, err := s.store.Account(r.Context(), acct.Name)
	if err == nil && !current.Disabled &&
		subtle.ConstantTimeCompare([]byte(current.PasswordHash), []byte(acct.PasswordHash)) == 1 {
		return nil
	}
	// Changed, gone, or not known for sure: the session goes.
	if derr := s.store.DeleteSession(r.Context(), sess.ID); derr != nil {
		return derr
	}
	expired := s.sessions.options
	expired.MaxAge = -1
	http.SetCookie(w, sessions.NewCookie(s.cookieName, "", &expired))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s.log.Info("session ended", "user", acct.Name, "reason", "changed_while_signing_in")
	return errChangedMeanwhile
}

func (s *Server) handleLogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.sessions.Get(r, s.cookieName)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if sess.ID != "" {
			if err := s.destroy(w, r, sess, "logout"); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		if wantsJSON(r) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		// rd, a path on this portal only, is where to go next: the
		// OpenID Connect refusal page signs out to sign in again and
		// come back to the app's request. A form that does not parse
		// has signed out all the same, and goes to the sign-in page.
		to := "/login"
		if r.ParseForm() == nil {
			if rd := safeReturn(r.PostForm.Get("rd")); rd != "" {
				to = rd
			}
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
	})
}

// safeReturn returns rd when it is a path on this portal, and "" for
// anything that could leave it: absolute URLs, scheme-relative "//host",
// backslash tricks, control characters.
func safeReturn(rd string) string {
	if rd == "" || len(rd) > 2048 || !strings.HasPrefix(rd, "/") {
		return ""
	}
	if strings.HasPrefix(rd, "//") || strings.ContainsAny(rd, "\\\x00\r\n\t") {
		return ""
	}
	for _, c := range rd {
		if c < 0x20 || c == 0x7f {
			return ""
		}
	}
	u, err := url.Parse(rd)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") ||
		strings.HasPrefix(u.Path, "//") || strings.ContainsAny(u.Path, "\\\x00") {
		return ""
	}
	return rd
}

// withReturn adds ?rd= to path when there is somewhere to return to.
func withReturn(path, rd string) string {
	if rd == "" {
		return path
	}
	return path + "?rd=" + url.QueryEscape(rd)
}

func orHome(rd string) string {
	if rd == "" {
		return "/"
	}
	return rd
}

func badForm(err error) error {
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) {
		return asError(err)
	}
	return &Error{Status: http.StatusBadRequest, Code: "bad_form", Message: "the form could not be read", Err: err}
}

// allowFormRedirect lets the page's form lead on to rd when rd is a
// registered app on another origin, or resumes an app's OpenID Connect
// request (then to that app's redirect URI): browsers apply the CSP
// form-action of the page to every redirect that answers the form.
func (s *Server) allowFormRedirect(w http.ResponseWriter, r *http.Request, rd string) {
	if target := s.oidcFormTarget(r, rd); target != "" {
		rd = target
	}
	u, err := url.Parse(rd)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return
	}
	if strings.Trim(strings.ToLower(u.Host), "abcdefghijklmnopqrstuvwxyz0123456789.-:[]") != "" {
		return
	}
	csp := strings.Replace(contentSecurityPolicy, "form-action 'self'", "form-action 'self' https://"+u.Host, 1)
	w.Header().Set("Content-Security-Policy", csp)
}
