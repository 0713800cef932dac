package server

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"

	"gatehouse/auth"
	"gatehouse/store"
)

// totpStepLifetime is how long a sign-in may wait at the TOTP step before
// it has to start again with the password.
const totpStepLifetime = 5 * time.Minute

// totpReplayTTL keeps a used time step marked for longer than any code
// of that step can be accepted (the skew window on both sides).
const totpReplayTTL = (2*auth.TOTPSkew + 2) * auth.TOTPPeriod

// totpForm is the TOTP sign-in step's content.
type totpForm struct {
	Return string
}

// totpPending returns the request's session when it waits at the TOTP
// step, or redirects to the login page and returns nil.
func (s *Server) totpPending(w http.ResponseWriter, r *http.Request) *visit {
	v, err := s.visit(w, r)
	if err != nil {
		s.fail(w, r, err)
		return nil
	}
	if v == nil || v.Decision.Next != auth.StepTOTP {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	return v
}

func (s *Server) handleTOTPStepGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.totpPending(w, r)
		if v == nil {
			return
		}
		f := totpForm{Return: s.returnTo(r, r.URL.Query().Get("rd"))}
		s.allowFormRedirect(w, r, f.Return)
		s.render(w, r, http.StatusOK, "login_totp.html", page{Title: "Enter your code", Data: f})
	})
}

// handleTOTPStepPost checks the TOTP (or recovery) code of a sign-in
// that passed the password step, and then starts the real session on a
// new ID.
func (s *Server) handleTOTPStepPost() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.totpPending(w, r)
		if v == nil {
			return
		}
		if err := r.ParseForm(); err != nil {
			s.fail(w, r, badForm(err))
			return
		}
		f := totpForm{Return: s.returnTo(r, r.PostForm.Get("rd"))}
		again := func(status int, msg string) {
			s.allowFormRedirect(w, r, f.Return)
			s.render(w, r, status, "login_totp.html", page{Title: "Enter your code", Error: msg, Data: f})
		}
		how, err := s.checkSecondFactor(r, v.Account, r.PostForm.Get("code"))
		if err != nil {
			var e *Error
			if errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusTooManyRequests || e.Status == http.StatusForbidden) {
				setRetryAfter(w, e)
				again(e.Status, e.Message)
				return
			}
			s.fail(w, r, err)
			return
		}
		d := v.Decision
		d.Factors = append(slices.Clone(d.Factors), auth.FactorTOTP)
		d.Next = auth.StepNone
		if v.Account.MustChangePassword {
			d.Next = auth.StepChangePassword
		}
		ev := loginEvent(v.Account.Name, d)
		ev.Reason = "ok_" + how
		if err := s.audit(r, ev); err != nil {
			s.fail(w, r, err)
			return
		}
		// The session keeps the time its password was given, and ends
		// s.max after it: a session sent to this step hours after its
		// sign-in (TOTP switched on from another device) does not start
		// its absolute lifetime again with the code.
		since := v.Record
		since.ExpiresAt = since.CreatedAt.Add(s.max)
		if err := s.startSessionOwned(w, r, v.Account, d, &since, v.Record.OtherCertOwners); err != nil {
			s.fail(w, r, err)
			return
		}
		if d.Next == auth.StepNone {
			s.setDeviceCookie(w, v.Account.Name, v.Account.PasswordHash)
		}
		if d.Next == auth.StepChangePassword {
			http.Redirect(w, r, withReturn("/account/password", f.Return), http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, orHome(f.Return), http.StatusSeeOther)
	})
}

// checkSecondFactor verifies a TOTP code or a recovery code for acct,
// under the per-account throttle, and returns "totp" or "recovery_code".
// Wrong codes come back as *Error with status 401, 429 (wait
// RetryAfter seconds) or 403 (locked until the help desk unlocks).
func (s *Server) checkSecondFactor(r *http.Request, acct store.Account, code string) (string, error) {
	ctx := r.Context()
	code = strings.TrimSpace(code)
	if code == "" || len(code) > 64 {
		// Not an attempt: it takes no turn and counts nothing.
		return "", &Error{Status: http.StatusUnauthorized, Code: "bad_code", Message: "enter the 6-digit code from your app, or a recovery code"}
	}
	th := accountThrottle(auth.CounterTOTP, acct.Name)
	if err := s.check(ctx, &th); err != nil {
		if e := asError(err); e.Code == "locked" {
			e.Message = "your codes are " + e.Message
		}
		return "", err
	}

	how, err := s.matchCode(r, acct, code)
	if errors.Is(err, auth.ErrBadTOTP) || errors.Is(err, errCodeReplayed) {
		if ferr := s.failed(ctx, &th); ferr != nil {
			return "", ferr
		}
		if aerr := s.audit(r, store.AuditEvent{Action: "login.totp", Outcome: "failure", Actor: acct.Name,
			Reason: map[bool]string{true: "code_replayed", false: "bad_code"}[errors.Is(err, errCodeReplayed)]}); aerr != nil {
			return "", aerr
		}
		msg := "the code is not right; check that your phone's clock is set automatically"
		if errors.Is(err, errCodeReplayed) {
			msg = "this code was already used; wait for the next one"
		}
		return "", &Error{Status: http.StatusUnauthorized, Code: "bad_code", Message: msg}
	}
	if err != nil {
		return "", err
	}
	return how, s.succeeded(ctx, &th)
}

// errCodeReplayed means a valid TOTP code was already used.
var errCodeReplayed = errors.New("TOTP code already used")

// matchCode checks a code against the account's TOTP secret, or, when it
// is not six digits, against its recovery codes (each used once).
func (s *Server) matchCode(r *http.Request, acct store.Account, code string) (string, error) {
	digits := strings.ReplaceAll(code, " ", "")
	if len(digits) == auth.TOTPDigits.Length() && strings.Trim(digits, "0123456789") == "" {
		secret, err := s.sealer.Open(acct.TOTPSecret, acct.Name)
		if err != nil {
			return "", fmt.Errorf("open TOTP secret of %s: %w", acct.Name, err)
		}
		step, err := auth.VerifyTOTP(string(secret), digits, s.now())
		if err != nil {
			return "", err
		}
		first, err := s.store.UseTOTPStep(r.Context(), acct.Name, step, totpReplayTTL)
		if err != nil {
			return "", err
		}
		if !first {
			return "", errCodeReplayed
		}
		return "totp", nil
	}
	err := s.store.UpdateAccount(r.Context(), acct.Name, func(a *store.Account) error {
		i := auth.MatchRecoveryCode(s.recoveryKey, a.RecoveryCodes, code)
		if i < 0 {
			return auth.ErrBadTOTP
		}
		a.RecoveryCodes = slices.Delete(a.RecoveryCodes, i, i+1)
		return nil
	})
	if err != nil {
		return "", err
	}
	return "recovery_code", nil
}

// totpPage is the account TOTP page's content.
type totpPage struct {
	Enrolled      bool
	Pending       bool
	Secret        string // the pending secret, for typing into an app
	RecoveryLeft  int
	RecoveryCodes []string // shown once, right after confirmation
}

func (s *Server) totpPageData(acct store.Account) (totpPage, error) {
	p := totpPage{Enrolled: acct.TOTPSecret != "", Pending: acct.TOTPPending != "", RecoveryLeft: len(acct.RecoveryCodes)}
	if p.Pending {
		secret, err := s.sealer.Open(acct.TOTPPending, acct.Name)
		if err != nil {
			return p, fmt.Errorf("open pending TOTP secret: %w", err)
		}
		p.Secret = groupsOf4(string(secret))
	}
	return p, nil
}

func groupsOf4(s string) string {
	var b strings.Builder
	for i, c := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *Server) handleTOTPPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		p, err := s.totpPageData(v.Account)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.render(w, r, http.StatusOK, "totp.html", page{Title: "Two-step sign-in", Visit: v, Data: p})
	})
}

// startEnrollment stores a new pending secret for the account.
func (s *Server) startEnrollment(r *http.Request, v *visit) (string, string, error) {
	if v.Account.TOTPSecret != "" {
		return "", "", &Error{Status: http.StatusConflict, Code: "already_enrolled",
			Message: "TOTP is already set up for your account; remove it first to set up a new phone"}
	}
	key, err := auth.NewTOTPKey(v.Account.Name)
	if err != nil {
		return "", "", err
	}
	sealed := s.sealer.Seal([]byte(key.Secret()), v.Account.Name)
	err = s.store.UpdateAccount(r.Context(), v.Account.Name, func(a *store.Account) error {
		a.TOTPPending = sealed
		a.UpdatedAt = s.now()
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return key.Secret(), key.URL(), nil
}

func (s *Server) handleTOTPStart() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		secret, otpURL, err := s.startEnrollment(r, v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if wantsJSON(r) {
			s.writeJSON(w, http.StatusOK, map[string]string{"secret": secret, "otpauth_url": otpURL})
			return
		}
		http.Redirect(w, r, "/account/totp", http.StatusSeeOther)
	})
}

// handleTOTPQR draws the pending secret's otpauth:// URL as a QR code, so
// no third-party service ever sees the secret.
func (s *Server) handleTOTPQR() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		if v.Account.TOTPPending == "" {
			s.fail(w, r, &Error{Status: http.StatusNotFound, Code: "no_enrollment", Message: "there is no TOTP set-up in progress"})
			return
		}
		secret, err := s.sealer.Open(v.Account.TOTPPending, v.Account.Name)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		key, err := otpKey(v.Account.Name, string(secret))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		img, err := key.Image(240, 240)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(buf.Bytes())
	})
}

// confirmEnrollment switches TOTP on when code matches the pending
// secret and password is the account's, and returns the new recovery
// codes (shown once). The password is asked because a session alone
// (a stolen cookie, a screen left unlocked) must not add an
// authenticator of its own: the session would gain the totp factor,
// and the owner's next sign-in would ask for a code only the thief has.
func (s *Server) confirmEnrollment(r *http.Request, v *visit, code, password string) ([]string, auth.Decision, error) {
	if v.Account.TOTPPending == "" {
		return nil, auth.Decision{}, &Error{Status: http.StatusConflict, Code: "no_enrollment", Message: "start the TOTP set-up first"}
	}
	if err := s.recheckPassword(r, v, password); err != nil {
		if e := asError(err); e.Code == "bad_password" {
			if aerr := s.audit(r, store.AuditEvent{Action: "account.totp.enroll", Outcome: "failure", Actor: v.Account.Name,
				ActorFactors: v.Decision.Factors, Target: v.Account.Name, Reason: "bad_password"}); aerr != nil {
				return nil, auth.Decision{}, aerr
			}
			e.Message = "your password is not right; TOTP is still off"
		}
		return nil, auth.Decision{}, err
	}
	secret, err := s.sealer.Open(v.Account.TOTPPending, v.Account.Name)
	if err != nil {
		return nil, auth.Decision{}, err
	}
	step, err := auth.VerifyTOTP(string(secret), code, s.now())
	if err != nil {
		return nil, auth.Decision{}, &Error{Status: http.StatusBadRequest, Code: "bad_code",
			Message: "that code does not match; type the current 6-digit code from your app (check that your phone's clock is set automatically)"}
	}
	if _, err := s.store.UseTOTPStep(r.Context(), v.Account.Name, step, totpReplayTTL); err != nil {
		return nil, auth.Decision{}, err
	}
	codes := auth.NewRecoveryCodes()
	hashes := make([]string, len(codes))
	for i, c := range codes {
		hashes[i] = auth.HashRecoveryCode(s.recoveryKey, c)
	}
	pending := v.Account.TOTPPending
	err = s.store.UpdateAccount(r.Context(), v.Account.Name, func(a *store.Account) error {
		if a.TOTPPending != pending {
			return &Error{Status: http.StatusConflict, Code: "enrollment_changed", Message: "the set-up was restarted elsewhere; scan the new code"}
		}
		a.TOTPSecret, a.TOTPPending, a.RecoveryCodes = pending, "", hashes
		a.TOTPEnrolledAt, a.UpdatedAt = s.now(), s.now()
		return nil
	})
	if err != nil {
		return nil, auth.Decision{}, err
	}
	if err := s.audit(r, store.AuditEvent{Action: "account.totp.enroll", Outcome: "success", Actor: v.Account.Name,
		ActorFactors: v.Decision.Factors, Target: v.Account.Name}); err != nil {
		return nil, auth.Decision{}, err
	}
	// The code just entered is a verified TOTP factor: the session
	// continues with it, on a new ID.
	d := v.Decision
	if !slices.Contains(d.Factors, auth.FactorTOTP) {
		d.Factors = append(slices.Clone(d.Factors), auth.FactorTOTP)
	}
	return codes, d, nil
}

func (s *Server) handleTOTPConfirm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		var in struct {
			Code     string `json:"code"`
			Password string `json:"password"`
		}
		if err := decodeInput(r, &in); err != nil {
			s.fail(w, r, err)
			return
		}
		codes, d, err := s.confirmEnrollment(r, v, in.Code, in.Password)
		if err != nil {
			if e := asError(err); !wantsJSON(r) && e.Status < 500 {
				p, perr := s.totpPageData(v.Account)
				if perr != nil {
					s.fail(w, r, perr)
					return
				}
				s.render(w, r, e.Status, "totp.html", page{Title: "Two-step sign-in", Visit: v, Error: e.Message, Data: p})
				return
			}
			s.fail(w, r, err)
			return
		}
		if err := s.startSession(w, r, v.Account, d, &v.Record); err != nil {
			s.fail(w, r, err)
			return
		}
		if wantsJSON(r) {
			s.writeJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
			return
		}
		v.Account.TOTPSecret, v.Account.TOTPPending = "set", ""
		v.Decision = d
		s.render(w, r, http.StatusOK, "totp.html", page{Title: "Two-step sign-in", Visit: v,
			Data: totpPage{Enrolled: true, RecoveryLeft: len(codes), RecoveryCodes: codes}})
	})
}

// handleTOTPRemove switches TOTP off; the password is asked again, so a
// session left open cannot remove the second factor.
func (s *Server) handleTOTPRemove() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		var in struct {
			Password string `json:"password"`
		}
		if err := decodeInput(r, &in); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.recheckPassword(r, v, in.Password); err != nil {
			e := asError(err)
			if e.Status >= 500 {
				s.fail(w, r, err)
				return
			}
			if e.Code == "bad_password" {
				if aerr := s.audit(r, store.AuditEvent{Action: "account.totp.remove", Outcome: "failure", Actor: v.Account.Name,
					ActorFactors: v.Decision.Factors, Target: v.Account.Name, Reason: "bad_password"}); aerr != nil {
					s.fail(w, r, aerr)
					return
				}
				e.Message = "your password is not right; TOTP is still on"
			}
			if wantsJSON(r) {
				s.fail(w, r, e)
				return
			}
			setRetryAfter(w, e)
			p, _ := s.totpPageData(v.Account)
			s.render(w, r, e.Status, "totp.html", page{Title: "Two-step sign-in", Visit: v, Error: e.Message, Data: p})
			return
		}
		err := s.store.UpdateAccount(r.Context(), v.Account.Name, func(a *store.Account) error {
			a.TOTPSecret, a.TOTPPending, a.RecoveryCodes, a.TOTPEnrolledAt = "", "", nil, time.Time{}
			a.UpdatedAt = s.now()
			return nil
		})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.audit(r, store.AuditEvent{Action: "account.totp.remove", Outcome: "success", Actor: v.Account.Name,
			ActorFactors: v.Decision.Factors, Target: v.Account.Name}); err != nil {
			s.fail(w, r, err)
			return
		}
		d := v.Decision
		d.Factors = slices.DeleteFunc(slices.Clone(d.Factors), func(f string) bool { return f == auth.FactorTOTP })
		if err := s.startSession(w, r, v.Account, d, &v.Record); err != nil {
			s.fail(w, r, err)
			return
		}
		if wantsJSON(r) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Redirect(w, r, "/account/totp", http.StatusSeeOther)
	})
}

// otpKey rebuilds the otp.Key of a secret, for drawing its QR code.
func otpKey(account, secret string) (*otp.Key, error) {
	return otp.NewKeyFromURL(auth.TOTPURL(account, secret))
}
