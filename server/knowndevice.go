package server

import (
	"context"
	"net/http"
	"time"

	"gatehouse/auth"
	"gatehouse/store"
)

// DeviceCookieName is the device cookie set after a successful sign-in
// (see auth.DeviceCookies). It is host-only and sent to the portal alone:
// apps never need it.
const DeviceCookieName = "__Host-gatehouse-device"

// Ways a sign-in can come from a known device, as the audit trail names
// them (store.AuditEvent.KnownDevice).
const (
	knownByCertificate = "certificate"
	knownByCookie      = "cookie"
)

// device is the device a sign-in for an existing account comes from.
type device struct {
	// known is knownByCertificate or knownByCookie for a known device,
	// "" for an unknown one.
	known string
	// th is the device's own failure throttle; its counter is "" when
	// the sign-in presented neither a bound certificate nor a device
	// cookie that counts. A device that reached its limit keeps th (a
	// success clears it) but is no longer known.
	th throttle
}

// deviceToken returns the request's device cookie when it verifies, has
// not expired and names username. Anything else (no cookie, a forged or
// foreign one) is simply no cookie.
func (s *Server) deviceToken(r *http.Request, username string, now time.Time) (auth.DeviceToken, bool) {
	ck, err := r.Cookie(DeviceCookieName)
	if err != nil {
		return auth.DeviceToken{}, false
	}
	tok, ok := s.devCookies.Parse(ck.Value, now)
	if !ok || tok.Account != username {
		return auth.DeviceToken{}, false
	}
	return tok, true
}

// knownDevice returns the device a sign-in for acct comes from: known by
// a verified certificate that counts for acct alone, or else by a device
// cookie set on it under acct's current password. owners are every
// account the certificate is bound to (certOwners): a certificate that
// also names another account counts for none (auth.CertResult.BoundTo),
// and so makes no known device either, or its holder would escape the
// account's and the address's throttles with it. A disabled account has
// no known devices. A device that failed auth.KnownDeviceMaxFailures
// times in a row is returned as unknown.
func (s *Server) knownDevice(ctx context.Context, acct store.Account, cert auth.CertResult, owners []string, tok auth.DeviceToken, hasCookie bool) (device, error) {
	var d device
	var id string
	switch {
	case acct.Disabled:
		return d, nil
	case cert.BoundTo(authAccount(acct), owners).Valid():
		d.known, id = knownByCertificate, auth.CertificateDevice(cert.Info)
	case hasCookie && s.devCookies.Current(tok, acct.PasswordHash):
		d.known, id = knownByCookie, auth.CookieDevice(tok)
	default:
		return d, nil
	}
	epoch, err := s.store.Failures(ctx, auth.DeviceEpochCounter(acct.Name))
	if err != nil {
		return d, err
	}
	d.th = throttle{counter: auth.DeviceCounter(acct.Name, epoch, id), delay: auth.FailureDelay,
		memory: auth.FailureMemory, lockAt: auth.KnownDeviceMaxFailures, lockFor: auth.KnownDeviceLockMemory,
		what: "failed sign-ins on this device", seen: -1}
	return d, nil
}

// checkDevice checks a known device's own throttle. A device at its
// limit is not refused: from now on it is an unknown device, and the
// account's and the address's throttles decide. So is an attempt beyond
// the device's limit in a burst (many sign-ins at once with one
// certificate are not failures, and must not be refused as such).
func (s *Server) checkDevice(ctx context.Context, d *device) error {
	err := s.check(ctx, &d.th)
	if err == nil {
		return nil
	}
	if code := asError(err).Code; code == "locked" || code == errTooManyAtOnce.Code {
		d.known = ""
		return nil
	}
	return err
}

// deviceSignedIn clears the failure count of the device a successful
// sign-in came from, lock included: a device that had lost its known
// status gets it back, as a device cookie set now would give it anyway.
func (s *Server) deviceSignedIn(r *http.Request, d device) error {
	if d.th.counter == "" {
		return nil
	}
	return s.clearCounters(r, []string{d.th.counter, auth.HoldCounter(d.th.counter), auth.LockCounter(d.th.counter), auth.BurstCounter(d.th.counter)})
}

// setDeviceCookie marks the browser as a known device of account after a
// complete sign-in (password, and TOTP when enrolled) or a password
// change; passwordHash is the account's current bcrypt hash.
func (s *Server) setDeviceCookie(w http.ResponseWriter, account, passwordHash string) {
	http.SetCookie(w, &http.Cookie{
		Name:     DeviceCookieName,
		Value:    s.devCookies.Issue(account, passwordHash, s.now()),
		Path:     "/",
		MaxAge:   int(auth.DeviceCookieLifetime / time.Second),
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

// forgetDeviceFailures starts every known device of user on a fresh
// failure count (an unlock, a password reset): the counts are left behind
// under the old epoch, where they fade.
func (s *Server) forgetDeviceFailures(r *http.Request, user string) error {
	_, err := s.store.AddFailure(r.Context(), auth.DeviceEpochCounter(user), auth.LockForever)
	return err
}
