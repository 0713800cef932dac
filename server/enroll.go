package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gatehouse/store"
)

var errNoIssuer = &Error{Status: http.StatusServiceUnavailable, Code: "no_issuer",
	Message: "this portal cannot issue certificates: the built-in CA's key is not on this server; use gatehouse cert issue where it is"}

// Device certificates without anyone handling keys. A person signed in on
// a new device asks for a certificate for it; the request shows a code on
// that device only. Another device of the same account that already holds
// the account's certificate approves it by typing that code (number
// matching: an approver cannot wave through a request it cannot see), or
// the help desk does, with a reason and the code the person reads out.
// The certificate is then made for, and given once to, the session that
// asked: a key made in that response and never stored, or the device's
// own key from a certificate request (CSR).

// Limits of device enrollment.
const (
	// enrollmentLifetime is how long a request waits for approval, and
	// how long an approved request waits to be taken.
	enrollmentLifetime = 15 * time.Minute
	// maxOpenEnrollments is how many requests an account may have
	// waiting (pending or approved) at once.
	maxOpenEnrollments = 3
	// maxWrongEnrollmentCodes cancels a request after this many wrong
	// codes: a guesser has three tries at one in a million.
	maxWrongEnrollmentCodes = 3
	// keepFinishedEnrollments is how long a finished request stays in
	// the account's list; at most maxKeptEnrollments are kept.
	keepFinishedEnrollments = 24 * time.Hour
	maxKeptEnrollments      = 10
	// maxEnrollmentRequests is how many requests an account may make
	// with less than enrollmentRequestWindow between one and the next:
	// each writes the account record and the audit trail.
	maxEnrollmentRequests   = 10
	enrollmentRequestWindow = time.Hour
	// maxDeviceNameLen bounds a device name, in characters.
	maxDeviceNameLen = 64
	// maxCSRBytes bounds a certificate request.
	maxCSRBytes = 16 << 10
	// DefaultMaxDeviceCertificates is how many valid certificates an
	// account may hold by default.
	DefaultMaxDeviceCertificates = 10
	// RenewalWindow is how long before its end a certificate may be
	// renewed by the device that holds it.
	RenewalWindow = 30 * 24 * time.Hour
	// totpApprovalMinAge is how long TOTP must have been set up before
	// it approves a device (with --enroll-with-totp). Without it, a
	// stolen password alone would do: sign in, set up TOTP on the
	// attacker's phone, approve. A week gives the owner time to notice
	// a code step they never set up.
	totpApprovalMinAge = 7 * 24 * time.Hour
)

// enrollmentCodeDigits is the length of a confirmation code.
const enrollmentCodeDigits = 6

// Ways a request is approved (store.Enrollment.ApprovedWith).
const (
	approvedWithCertificate = "certificate"
	approvedWithHelpdesk    = "helpdesk"
	approvedWithTOTP        = "totp"
)

// enrollmentJSON is a request as the API shows it. Code is set only in
// the view of the session that made the request, while it waits.
type enrollmentJSON struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Status        string     `json:"status"`
	Code          string     `json:"code,omitempty"`
	HasCSR        bool       `json:"has_csr"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	RequestedFrom string     `json:"requested_from"`
	UserAgent     string     `json:"user_agent"`
	ApprovedBy    string     `json:"approved_by,omitempty"`
	ApprovedWith  string     `json:"approved_with,omitempty"`
	DecidedAt     *time.Time `json:"decided_at,omitempty"`
	Serial        string     `json:"serial,omitempty"`
	// Mine is true in the view of the session that made the request.
	Mine bool `json:"this_device"`
	// Device is a short description of the requesting browser, for
	// people ("Chrome on Android").
	Device string `json:"-"`
}

// enrollmentStatus is e's status at now: open requests past their time
// are expired.
func enrollmentStatus(e store.Enrollment, now time.Time) string {
	if (e.Status == store.EnrollmentPending || e.Status == store.EnrollmentApproved) && !now.Before(e.ExpiresAt) {
		return "expired"
	}
	return e.Status
}

// enrollmentView shows e to v's session.
func (s *Server) enrollmentView(v *visit, e store.Enrollment) enrollmentJSON {
	now := s.now()
	out := enrollmentJSON{ID: e.ID, Name: e.Name, Status: enrollmentStatus(e, now), HasCSR: e.CSR != "",
		CreatedAt: e.CreatedAt.UTC(), ExpiresAt: e.ExpiresAt.UTC(), RequestedFrom: e.RequestedFrom,
		UserAgent: e.UserAgent, ApprovedBy: e.ApprovedBy, ApprovedWith: e.ApprovedWith, Serial: e.Serial,
		Device: describeUserAgent(e.UserAgent)}
	if !e.DecidedAt.IsZero() {
		t := e.DecidedAt.UTC()
		out.DecidedAt = &t
	}
	if v != nil && s.isRequester(v, e) {
		out.Mine = true
		if out.Status == store.EnrollmentPending {
			out.Code = s.enrollmentCode(e)
		}
	}
	return out
}

// enrollmentKey is the key of the requester hashes and codes, derived
// from the recovery-code key with a label of its own.
func (s *Server) enrollmentKey() []byte {
	m := hmac.New(sha256.New, s.recoveryKey)
	m.Write([]byte("gatehouse device enrollment v1"))
	return m.Sum(nil)
}

// requesterOf is the keyed hash of a session ID that a request keeps:
// the store never holds a session ID, and only the session that made the
// request matches it.
func (s *Server) requesterOf(v *visit) string {
	m := hmac.New(sha256.New, s.enrollmentKey())
	m.Write([]byte("session\x00"))
	m.Write([]byte(v.session.ID))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Server) isRequester(v *visit, e store.Enrollment) bool {
	return v.session.ID != "" && hmac.Equal([]byte(s.requesterOf(v)), []byte(e.Requester))
}

// enrollmentCode is the confirmation code of a request: derived from its
// ID and requester under the server's key, so it is stored nowhere and
// nobody without the key can tell it from the stored request.
func (s *Server) enrollmentCode(e store.Enrollment) string {
	m := hmac.New(sha256.New, s.enrollmentKey())
	m.Write([]byte("code\x00" + e.ID + "\x00" + e.Requester))
	n := binary.BigEndian.Uint64(m.Sum(nil)) % 1_000_000
	return fmt.Sprintf("%0*d", enrollmentCodeDigits, n)
}

// codeMatches compares a typed code with a request's in constant time;
// spaces and dashes people type between the digits are ignored.
func (s *Server) codeMatches(e store.Enrollment, typed string) bool {
	typed = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, typed)
	return subtle.ConstantTimeCompare([]byte(typed), []byte(s.enrollmentCode(e))) == 1
}

// pruneEnrollments drops finished and expired requests older than a day,
// and the oldest beyond maxKeptEnrollments.
func pruneEnrollments(list []store.Enrollment, now time.Time) []store.Enrollment {
	for i := range list {
		// A finished request keeps no certificate request (up to 16 KiB
		// read with the account on every request).
		if st := enrollmentStatus(list[i], now); st != store.EnrollmentPending && st != store.EnrollmentApproved {
			list[i].CSR = ""
		}
	}
	list = slices.DeleteFunc(list, func(e store.Enrollment) bool {
		open := enrollmentStatus(e, now) == store.EnrollmentPending || enrollmentStatus(e, now) == store.EnrollmentApproved
		end := e.ExpiresAt
		if e.DecidedAt.After(end) {
			end = e.DecidedAt
		}
		return !open && now.Sub(end) > keepFinishedEnrollments
	})
	if len(list) > maxKeptEnrollments {
		list = list[len(list)-maxKeptEnrollments:]
	}
	return list
}

func newEnrollmentID() string {
	b := make([]byte, 9)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// checkDeviceName trims a device name and refuses an empty, long or
// unprintable one.
func checkDeviceName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", &Error{Status: http.StatusBadRequest, Code: "name_required", Message: "give this device a name you will recognise, such as \"Alice's Pixel\""}
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxDeviceNameLen:
		return "", &Error{Status: http.StatusBadRequest, Code: "bad_name", Message: fmt.Sprintf("the device name must be at most %d characters", maxDeviceNameLen)}
	case strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }):
		return "", &Error{Status: http.StatusBadRequest, Code: "bad_name", Message: "the device name contains characters that cannot be shown"}
	}
	return name, nil
}

// Errors of the enrollment steps.
var (
	errNoSuchEnrollment = &Error{Status: http.StatusNotFound, Code: "no_such_request",
		Message: "there is no such certificate request for this account"}
	errNotYourEnrollment = &Error{Status: http.StatusForbidden, Code: "not_your_request",
		Message: "only the device that made this request can take its certificate"}
	errApproverNeedsCertificate = &Error{Status: http.StatusForbidden, Code: "certificate_required",
		Message: "approving a new device needs a device that already has your certificate: open your home page there and type the code, or ask the help desk"}
	errOwnRequest = &Error{Status: http.StatusForbidden, Code: "own_request",
		Message: "a request is approved from another device that has your certificate, not from the one that made it; or read the code to the help desk"}
	errTOTPApprovalOff = &Error{Status: http.StatusForbidden, Code: "totp_approval_off",
		Message: "approving with a code from your authenticator app is turned off on this portal; approve from a device that has your certificate, or ask the help desk"}
)

// closedError explains why a request in status cannot take a step.
func closedError(e store.Enrollment, status string) *Error {
	switch status {
	case "expired":
		return &Error{Status: http.StatusConflict, Code: "request_expired",
			Message: fmt.Sprintf("this request expired at %s; make a new one on the new device", humanTime(e.ExpiresAt))}
	case store.EnrollmentApproved:
		return &Error{Status: http.StatusConflict, Code: "already_approved", Message: "this request is already approved"}
	case store.EnrollmentIssued:
		return &Error{Status: http.StatusConflict, Code: "already_issued",
			Message: "the certificate of this request was already issued, once; it cannot be taken again (make a new request if it was lost)"}
	case store.EnrollmentCancelled:
		return &Error{Status: http.StatusConflict, Code: "request_cancelled", Message: "this request was cancelled; make a new one on the new device"}
	case store.EnrollmentPending:
		return &Error{Status: http.StatusConflict, Code: "not_approved",
			Message: "this request is not approved yet: type the code shown here on a device that has your certificate, or read it to the help desk"}
	}
	return &Error{Status: http.StatusConflict, Code: "request_closed", Message: "this request cannot take that step"}
}

// enrollmentEvent starts an audit event about request e of user.
func enrollmentEvent(v *visit, action, user string, e store.Enrollment) store.AuditEvent {
	ev := actorEvent(v, action, user, "")
	ev.Reason = fmt.Sprintf("device %q, request %s", e.Name, e.ID)
	return ev
}

// createEnrollment records a new request of v's account for this device;
// a refused one is in the audit trail too.
func (s *Server) createEnrollment(r *http.Request, v *visit, name, csr string) (store.Enrollment, error) {
	e, err := s.newEnrollment(r, v, name, csr)
	if err != nil {
		ev := actorEvent(v, "enrollment.request", v.Account.Name, fmt.Sprintf("device %q", truncate(strings.TrimSpace(name), 4*maxDeviceNameLen)))
		return e, s.auditRefusal(r, ev, err)
	}
	return e, s.audit(r, enrollmentEvent(v, "enrollment.request", v.Account.Name, e))
}

// newEnrollment is createEnrollment without the audit.
func (s *Server) newEnrollment(r *http.Request, v *visit, name, csr string) (store.Enrollment, error) {
	name, err := checkDeviceName(name)
	if err != nil {
		return store.Enrollment{}, err
	}
	csr = strings.TrimSpace(csr)
	if csr != "" {
		if len(csr) > maxCSRBytes {
			return store.Enrollment{}, &Error{Status: http.StatusBadRequest, Code: "bad_csr", Message: fmt.Sprintf("the certificate request is larger than %d bytes", maxCSRBytes)}
		}
		if _, err := parseCSR(csr); err != nil {
			return store.Enrollment{}, err
		}
	}
	if s.issuer == nil {
		return store.Enrollment{}, errNoIssuer
	}
	counter := "enrollment-requests:" + v.Account.Name
	if n, err := s.store.Failures(r.Context(), counter); err != nil {
		return store.Enrollment{}, err
	} else if n >= maxEnrollmentRequests {
		return store.Enrollment{}, &Error{Status: http.StatusTooManyRequests, Code: "throttled", RetryAfter: int(enrollmentRequestWindow.Seconds()),
			Message: fmt.Sprintf("this account made %d certificate requests in a row; the next one can be made an hour after the last", n)}
	}
	now := s.now()
	e := store.Enrollment{ID: newEnrollmentID(), Name: name, Status: store.EnrollmentPending, CSR: csr,
		Requester: s.requesterOf(v), RequestedFrom: s.clientAddr(r), UserAgent: truncate(r.UserAgent(), 256),
		CreatedAt: now, ExpiresAt: now.Add(enrollmentLifetime)}
	err = s.store.UpdateAccount(r.Context(), v.Account.Name, func(a *store.Account) error {
		a.Enrollments = pruneEnrollments(a.Enrollments, now)
		open := 0
		for _, x := range a.Enrollments {
			if st := enrollmentStatus(x, now); st == store.EnrollmentPending || st == store.EnrollmentApproved {
				open++
			}
		}
		if open >= maxOpenEnrollments {
			return &Error{Status: http.StatusConflict, Code: "too_many_requests",
				Message: fmt.Sprintf("this account already has %d certificate requests waiting; finish or cancel one, or wait until they expire (%s each)", open, humanDuration(enrollmentLifetime))}
		}
		a.Enrollments = append(a.Enrollments, e)
		return nil
	})
	if err != nil {
		return store.Enrollment{}, err
	}
	if _, err := s.store.AddFailure(r.Context(), counter, enrollmentRequestWindow); err != nil {
		return store.Enrollment{}, err
	}
	return e, nil
}

// auditRefusal records ev as a refusal of the step it names (a device's
// request, issue or renewal), with why's code, and returns why. An error
// that is no refusal (the store unreachable) is returned as it is: it
// says nothing about the person, and the audit trail could not take it.
func (s *Server) auditRefusal(r *http.Request, ev store.AuditEvent, why error) error {
	e := asError(why)
	if e.Status < 400 || e.Status >= 500 {
		return why
	}
	ev.Outcome = "failure"
	ev.Reason += ", refused: " + e.Code
	if err := s.audit(r, ev); err != nil {
		return err
	}
	return why
}

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// approval is who approves a request, and how.
type approval struct {
	by   string // "alice", "bob (help desk)"
	with string // approvedWith…
	code string // the code typed, for the certificate and help-desk ways
	// guard, when set, is asked about the account in the same atomic
	// update that approves: the help desk's boundaries hold for the
	// account as it is when the approval is written.
	guard func(store.Account) error
}

// approveEnrollment applies an approval to request id of user. A wrong
// code counts, and the third cancels the request; both are written even
// though the approval is refused.
func (s *Server) approveEnrollment(r *http.Request, user, id string, ap approval) (store.Enrollment, error) {
	now := s.now()
	var (
		found   store.Enrollment
		outcome error
	)
	err := s.store.UpdateAccount(r.Context(), user, func(a *store.Account) error {
		outcome = nil
		if ap.guard != nil {
			if err := ap.guard(*a); err != nil {
				return err
			}
		}
		i := slices.IndexFunc(a.Enrollments, func(e store.Enrollment) bool { return e.ID == id })
		if i < 0 {
			return errNoSuchEnrollment
		}
		e := &a.Enrollments[i]
		found = *e
		if st := enrollmentStatus(*e, now); st != store.EnrollmentPending {
			return closedError(*e, st)
		}
		if ap.with != approvedWithTOTP && !s.codeMatches(*e, ap.code) {
			e.WrongCodes++
			left := maxWrongEnrollmentCodes - e.WrongCodes
			msg := fmt.Sprintf("the code does not match the one shown on the new device; %d tries left", left)
			if left <= 0 {
				e.Status, e.DecidedAt, e.CSR = store.EnrollmentCancelled, now, ""
				msg = "the code does not match the one shown on the new device; after three wrong codes the request is cancelled: make a new one on the new device"
			}
			found = *e
			outcome = &Error{Status: http.StatusForbidden, Code: "code_mismatch", Message: msg}
			return nil
		}
		e.Status, e.ApprovedBy, e.ApprovedWith, e.DecidedAt = store.EnrollmentApproved, ap.by, ap.with, now
		e.ExpiresAt = now.Add(enrollmentLifetime)
		found = *e
		return nil
	})
	if err != nil {
		return found, err
	}
	return found, outcome
}

// approveOwn approves request id of v's account from v's session: with
// its certificate and the code, or, where enabled, on the requesting
// session itself with a fresh TOTP code.
func (s *Server) approveOwn(r *http.Request, v *visit, id, code, totp string) (store.Enrollment, error) {
	user := v.Account.Name
	e, ok := findEnrollment(v.Account, id)
	if !ok {
		return e, errNoSuchEnrollment
	}
	var ap approval
	switch {
	case strings.TrimSpace(totp) != "":
		if !s.enrollWithTOTP {
			return e, s.refuseApproval(r, v, user, e, errTOTPApprovalOff)
		}
		if !s.isRequester(v, e) {
			return e, s.refuseApproval(r, v, user, e, &Error{Status: http.StatusForbidden, Code: "not_your_request",
				Message: "a request is approved with an authenticator code only on the device that made it"})
		}
		if v.Account.TOTPSecret == "" {
			return e, s.refuseApproval(r, v, user, e, &Error{Status: http.StatusForbidden, Code: "totp_not_enrolled",
				Message: "your account has no authenticator app set up; approve from a device that has your certificate, or ask the help desk"})
		}
		if since := v.Account.TOTPEnrolledAt; !since.IsZero() && s.now().Sub(since) < totpApprovalMinAge {
			return e, s.refuseApproval(r, v, user, e, &Error{Status: http.StatusForbidden, Code: "totp_too_new",
				Message: fmt.Sprintf("your authenticator app was set up on %s; it can approve a new device from %s on. Until then approve from a device that has your certificate, or ask the help desk",
					humanDate(since), humanDate(since.Add(totpApprovalMinAge)))})
		}
		digits := strings.ReplaceAll(strings.TrimSpace(totp), " ", "")
		if len(digits) != enrollmentCodeDigits || strings.Trim(digits, "0123456789") != "" {
			return e, s.refuseApproval(r, v, user, e, &Error{Status: http.StatusBadRequest, Code: "bad_code", Message: "enter the 6-digit code your authenticator app shows now (a recovery code does not approve a device)"})
		}
		if _, err := s.checkSecondFactor(r, v.Account, digits); err != nil {
			return e, s.refuseApproval(r, v, user, e, err)
		}
		ap = approval{by: user, with: approvedWithTOTP}
	case !v.Decision.Cert.Valid():
		return e, s.refuseApproval(r, v, user, e, errApproverNeedsCertificate)
	case s.isRequester(v, e):
		// Another device approves: a session alone (a signed-in laptop
		// left behind, say) must not turn itself into a new key, which
		// would be no renewal of its certificate and outlive that
		// certificate's revocation.
		return e, s.refuseApproval(r, v, user, e, errOwnRequest)
	default:
		ap = approval{by: user, with: approvedWithCertificate, code: code}
	}
	return s.finishApproval(r, v, user, id, ap)
}

// finishApproval runs an approval and records its outcome.
func (s *Server) finishApproval(r *http.Request, v *visit, user, id string, ap approval) (store.Enrollment, error) {
	e, err := s.approveEnrollment(r, user, id, ap)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			return e, err
		}
		if e.ID == "" {
			return e, err
		}
		return e, s.refuseApproval(r, v, user, e, err)
	}
	ev := enrollmentEvent(v, "enrollment.approve", user, e)
	ev.Reason += ", with " + ap.with
	return e, s.audit(r, ev)
}

// refuseApproval records a refused approval and returns why.
func (s *Server) refuseApproval(r *http.Request, v *visit, user string, e store.Enrollment, why error) error {
	ev := enrollmentEvent(v, "enrollment.approve", user, e)
	ev.Outcome = "failure"
	ev.Reason += ", refused: " + asError(why).Code
	if e.Status == store.EnrollmentCancelled {
		ev.Reason += ", request cancelled"
	}
	if err := s.audit(r, ev); err != nil {
		return err
	}
	return why
}

// approveForHelpdesk approves request id of the named account for a
// help-desk or admin session, with a reason and the code the person
// reads from the new device. The usual boundaries apply.
func (s *Server) approveForHelpdesk(r *http.Request, v *visit, name, id, reason, code string) (store.Enrollment, error) {
	reason, err := checkReason(reason)
	if err != nil {
		return store.Enrollment{}, err
	}
	target, err := s.loadTarget(r, name)
	if err != nil {
		return store.Enrollment{}, err
	}
	e, ok := findEnrollment(target, id)
	if !ok {
		return e, errNoSuchEnrollment
	}
	if err := checkHelpdeskTarget(v, target); err != nil {
		ev := enrollmentEvent(v, "helpdesk.enrollment.approve", name, e)
		ev.Outcome, ev.Reason = "failure", reason+"; "+ev.Reason
		if aerr := s.audit(r, ev); aerr != nil {
			return e, aerr
		}
		return e, err
	}
	e, err = s.approveEnrollment(r, name, id, approval{by: v.Account.Name + " (help desk)", with: approvedWithHelpdesk, code: code,
		guard: func(a store.Account) error { return checkHelpdeskTarget(v, a) }})
	ev := enrollmentEvent(v, "helpdesk.enrollment.approve", name, e)
	ev.Reason = reason + "; " + ev.Reason
	if err != nil {
		if e.ID == "" {
			e, ev = store.Enrollment{ID: id}, enrollmentEvent(v, "helpdesk.enrollment.approve", name, store.Enrollment{ID: id})
			ev.Reason = reason + "; " + ev.Reason
		}
		if errors.Is(err, store.ErrUnavailable) {
			return e, err
		}
		ev.Outcome = "failure"
		ev.Reason += ", refused: " + asError(err).Code
		if aerr := s.audit(r, ev); aerr != nil {
			return e, aerr
		}
		return e, err
	}
	return e, s.audit(r, ev)
}

// cancelEnrollment withdraws an open request of v's account.
func (s *Server) cancelEnrollment(r *http.Request, v *visit, id string) (store.Enrollment, error) {
	now := s.now()
	var found store.Enrollment
	err := s.store.UpdateAccount(r.Context(), v.Account.Name, func(a *store.Account) error {
		i := slices.IndexFunc(a.Enrollments, func(e store.Enrollment) bool { return e.ID == id })
		if i < 0 {
			return errNoSuchEnrollment
		}
		e := &a.Enrollments[i]
		if st := enrollmentStatus(*e, now); st != store.EnrollmentPending && st != store.EnrollmentApproved {
			return closedError(*e, st)
		}
		e.Status, e.DecidedAt, e.CSR = store.EnrollmentCancelled, now, ""
		found = *e
		return nil
	})
	if err != nil {
		return found, err
	}
	return found, s.audit(r, enrollmentEvent(v, "enrollment.cancel", v.Account.Name, found))
}

func findEnrollment(a store.Account, id string) (store.Enrollment, bool) {
	i := slices.IndexFunc(a.Enrollments, func(e store.Enrollment) bool { return e.ID == id })
	if i < 0 {
		return store.Enrollment{}, false
	}
	return a.Enrollments[i], true
}

// openEnrollments are the account's requests that wait for approval.
func (s *Server) openEnrollments(a store.Account) []store.Enrollment {
	now := s.now()
	var out []store.Enrollment
	for _, e := range a.Enrollments {
		if enrollmentStatus(e, now) == store.EnrollmentPending {
			out = append(out, e)
		}
	}
	return out
}

// describeUserAgent names a browser and system the way a person would:
// "Firefox on Windows", "Safari on iPhone". It is for display only.
func describeUserAgent(ua string) string {
	sys := systemOf(ua)
	browser := ""
	switch {
	case strings.Contains(ua, "Firefox/"):
		browser = "Firefox"
	case strings.Contains(ua, "Edg/"):
		browser = "Edge"
	case strings.Contains(ua, "Chrome/") || strings.Contains(ua, "CriOS/"):
		browser = "Chrome"
	case strings.Contains(ua, "Safari/"):
		browser = "Safari"
	}
	name := map[string]string{sysWindows: "Windows", sysMac: "macOS", sysIOS: "iPhone or iPad",
		sysAndroid: "Android", sysLinux: "Linux"}[sys]
	switch {
	case browser != "" && name != "":
		return browser + " on " + name
	case browser != "":
		return browser
	case name != "":
		return name
	}
	return "an unknown browser"
}

// Systems the install steps are written for.
const (
	sysWindows = "windows"
	sysMac     = "macos"
	sysIOS     = "ios"
	sysAndroid = "android"
	sysLinux   = "linux"
)

// systemOf guesses the visitor's system from the User-Agent; "" when it
// cannot tell. It only chooses which install steps are shown first.
func systemOf(ua string) string {
	switch {
	case strings.Contains(ua, "iPhone") || strings.Contains(ua, "iPad") || strings.Contains(ua, "iPod"):
		return sysIOS
	case strings.Contains(ua, "Android"):
		return sysAndroid
	case strings.Contains(ua, "Windows"):
		return sysWindows
	case strings.Contains(ua, "Macintosh") || strings.Contains(ua, "Mac OS X"):
		return sysMac
	case strings.Contains(ua, "Linux") || strings.Contains(ua, "CrOS"):
		return sysLinux
	}
	return ""
}
