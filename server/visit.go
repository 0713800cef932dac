package server

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/sessions"

	"gatehouse/auth"
	"gatehouse/store"
)

// lastSeenResolution is how stale a session's last-seen time may get
// before a request writes it again: the idle clock is refreshed at most
// about once a minute, so most requests only read the store.
const lastSeenResolution = time.Minute

// visit is a request made on a live session, with the session's roles
// re-evaluated for this request's connection.
type visit struct {
	session  *sessions.Session
	Record   store.Session
	Account  store.Account
	Decision auth.Decision
	// Idle is how long the session survives without a request.
	Idle time.Duration
}

// FactorsText lists the factors that count for this request.
func (v *visit) Factors() []string { return v.Decision.Factors }

// Complete reports whether the session may be used for anything beyond
// its next step.
func (v *visit) Complete() bool {
	return v.Decision.Next != auth.StepTOTP && v.Decision.Next != auth.StepChangePassword
}

// visit loads the request's session and re-evaluates it: the account and
// role definitions are read afresh, the connection's certificate is
// verified again and compared with the one the session signed in with,
// and auth.Decide computes the effective roles. It returns nil, nil when
// there is no usable session (none, expired, or no longer allowed); an
// expired or disallowed session is destroyed. Store failures are errors:
// the caller fails closed.
func (s *Server) visit(w http.ResponseWriter, r *http.Request) (*visit, error) {
	sess, err := s.sessions.Get(r, SessionCookieName)
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	rec, ok := sess.Values[recordKey{}].(store.Session)
	if !ok {
		return nil, nil
	}
	now := s.now()
	if !now.Before(rec.ExpiresAt) || now.Sub(rec.LastSeen) >= s.idle {
		return nil, s.destroy(w, r, sess, "expired")
	}
	acct, err := s.store.Account(r.Context(), rec.User)
	if errors.Is(err, store.ErrNotFound) {
		return nil, s.destroy(w, r, sess, "account_gone")
	}
	if err != nil {
		return nil, err
	}
	roles, err := s.rolesOf(r, acct)
	if err != nil {
		return nil, err
	}
	// Bind before comparing with the session, so a password-only session
	// keeps telling the user whose certificate this device presents.
	cert := s.verifier.Verify(r.Context(), peerCertificates(r), now)
	if cert.Valid() {
		owner := ""
		if cert.Info.Fingerprint == rec.OtherCertFingerprint {
			owner = rec.OtherCertOwner
		}
		cert = cert.BoundTo(authAccount(acct), owner)
	}
	cert = cert.ForSession(rec.CertFingerprint)
	d := auth.Decide(auth.Input{
		Account:    authAccount(acct),
		Roles:      roles,
		PasswordOK: slices.Contains(rec.Factors, auth.FactorPassword),
		Cert:       cert,
		TOTPOK:     slices.Contains(rec.Factors, auth.FactorTOTP),
		Now:        now,
	})
	if !d.Allow {
		return nil, s.destroy(w, r, sess, d.AuditReason)
	}
	if now.Sub(rec.LastSeen) >= lastSeenResolution {
		rec.LastSeen = now
		sess.Values[recordKey{}] = rec
		sess.Values[ttlKey{}] = s.ttl(rec, now)
		if err := s.sessions.Save(r, w, sess); err != nil {
			return nil, fmt.Errorf("refresh session: %w", err)
		}
	}
	return &visit{session: sess, Record: rec, Account: acct, Decision: d, Idle: s.idle}, nil
}

// ttl is how long the store keeps a record: until the idle timeout or the
// absolute end, whichever comes first.
func (s *Server) ttl(rec store.Session, now time.Time) time.Duration {
	return min(s.idle, rec.ExpiresAt.Sub(now))
}

// destroy deletes a session's record and cookie.
func (s *Server) destroy(w http.ResponseWriter, r *http.Request, sess *sessions.Session, reason string) error {
	user := ""
	if rec, ok := sess.Values[recordKey{}].(store.Session); ok {
		user = rec.User
	}
	sess.Options.MaxAge = -1
	if err := s.sessions.Save(r, w, sess); err != nil {
		return fmt.Errorf("destroy session: %w", err)
	}
	s.log.Info("session ended", "user", user, "reason", reason)
	return nil
}

// rolesOf returns the definitions of the roles an account holds.
func (s *Server) rolesOf(r *http.Request, acct store.Account) ([]auth.Role, error) {
	all, err := s.store.Roles(r.Context())
	if err != nil {
		return nil, err
	}
	var out []auth.Role
	for _, role := range all {
		if slices.Contains(acct.Roles, role.Name) {
			out = append(out, auth.Role{Name: role.Name, RequireCertificate: role.RequireCertificate, RequireTOTP: role.RequireTOTP})
		}
	}
	return out, nil
}

func authAccount(a store.Account) auth.Account {
	return auth.Account{
		Name:               a.Name,
		Email:              a.Email,
		Roles:              a.Roles,
		Disabled:           a.Disabled,
		MustChangePassword: a.MustChangePassword,
		PinnedFingerprints: a.PinnedFingerprints,
		PinnedKeys:         a.PinnedKeys,
		TOTPEnrolled:       a.TOTPSecret != "",
	}
}

// peerCertificates returns the certificate chain the TLS client
// presented, leaf first. It is verified by the caller on every request:
// Go restores it on session resumption without re-running any
// verification callback.
func peerCertificates(r *http.Request) []*x509.Certificate {
	if r.TLS == nil {
		return nil
	}
	return r.TLS.PeerCertificates
}

// clientAddr is the client's IP address, for logs and session records.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Has reports whether role is in effect for this request.
func (v *visit) Has(role string) bool { return slices.Contains(v.Decision.EffectiveRoles, role) }
