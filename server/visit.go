package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/sessions"

	"gatehouse/auth"
	"gatehouse/store"
)

// maxLastSeenResolution bounds how stale a session's last-seen time may
// get before a request writes it again: the idle clock is refreshed at
// most about once a minute per session, so most requests, /auth/verify
// above all, only read the store.
const maxLastSeenResolution = time.Minute

// lastSeenResolution is how stale a session's last-seen time may get
// under the idle timeout idle: maxLastSeenResolution, or a quarter of
// idle when that is shorter. A session then ends after between three
// quarters of idle and idle without a request, never sooner: the clock's
// own resolution does not sign out someone who uses the session.
func lastSeenResolution(idle time.Duration) time.Duration {
	return min(maxLastSeenResolution, idle/4)
}

// visit is a request made on a live session, with the session's roles
// re-evaluated for this request's connection.
type visit struct {
	session  *sessions.Session
	Record   store.Session
	Account  store.Account
	Decision auth.Decision
	// Idle is how long the session survives without a request.
	Idle time.Duration
	// apps are the app definitions read with the session.
	apps []store.App
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
	sess, err := s.sessions.Get(r, s.cookieName)
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	return s.revisit(w, r, sess)
}

// visitOnce is visit for a handler that reads the session once and
// nothing else of it (/auth/verify): the session is loaded without
// gorilla's per-request registry, which would keep it for later reads
// at the cost of a copy of the request and a map on every request.
func (s *Server) visitOnce(w http.ResponseWriter, r *http.Request) (*visit, error) {
	sess, err := s.sessions.New(r, s.cookieName)
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	return s.revisit(w, r, sess)
}

// revisit is visit of a loaded session.
func (s *Server) revisit(w http.ResponseWriter, r *http.Request, sess *sessions.Session) (*visit, error) {
	rec, ok := recordOf(sess)
	if !ok {
		return nil, nil
	}
	now := s.now()
	if !now.Before(rec.ExpiresAt) || now.Sub(rec.LastSeen) >= s.idle {
		return nil, s.destroy(w, r, sess, "expired")
	}
	// The account and role definitions came with the session in one read
	// (store.View); a session saved earlier in this request reads them.
	view, ok := sess.Values[viewKey{}].(*store.SessionView)
	if !ok || view.Session.ID != rec.ID {
		v, err := store.ViewOf(r.Context(), s.store, rec)
		if err != nil {
			return nil, err
		}
		view = &v
	}
	if view.Account.Name == "" {
		return nil, s.destroy(w, r, sess, "account_gone")
	}
	acct := view.Account
	d := s.decide(r.Context(), rec, acct, view.Roles, s.peerCertificates(r), now)
	if !d.Allow {
		return nil, s.destroy(w, r, sess, d.AuditReason)
	}
	if now.Sub(rec.LastSeen) >= lastSeenResolution(s.idle) {
		rec.LastSeen = now
		sess.Values[recordKey{}] = rec
		sess.Values[ttlKey{}] = s.ttl(rec, now)
		if err := s.sessions.Save(r, w, sess); errors.Is(err, errSessionGone) {
			return nil, nil
		} else if err != nil {
			return nil, fmt.Errorf("refresh session: %w", err)
		}
	}
	return &visit{session: sess, Record: rec, Account: acct, Decision: d, Idle: s.idle, apps: view.Apps}, nil
}

// decide re-evaluates session rec of acct, with the role definitions
// roles, for a request that presents the certificate chain peer (none
// when empty): the login decision again, with the factors the session
// proved and the certificate verified now.
func (s *Server) decide(ctx context.Context, rec store.Session, acct store.Account, roles []store.Role, peer []*x509.Certificate, now time.Time) auth.Decision {
	// Bind before comparing with the session, so a password-only session
	// keeps telling the user whose certificate this device presents. The
	// certificate's owners are the ones the login found (certOwners): a
	// session only ever holds a certificate that then named its account
	// alone, and never gains one mid-session.
	cert := s.verifier.Verify(ctx, peer, now)
	if cert.Valid() {
		var owners []string
		if cert.Info.ID == rec.OtherCertID {
			owners = rec.OtherCertOwners
		}
		cert = cert.BoundTo(authAccount(acct), owners)
	}
	cert = cert.ForSession(sessionCertID(rec, cert))
	return auth.Decide(auth.Input{
		Account:    authAccount(acct),
		Roles:      roleDefs(roles, acct),
		PasswordOK: slices.Contains(rec.Factors, auth.FactorPassword),
		Cert:       cert,
		TOTPOK:     slices.Contains(rec.Factors, auth.FactorTOTP),
		Now:        now,
	})
}

// ttl is how long the store keeps a record: until the idle timeout or the
// absolute end, whichever comes first.
func (s *Server) ttl(rec store.Session, now time.Time) time.Duration {
	return min(s.idle, rec.ExpiresAt.Sub(now))
}

// destroy deletes a session's record and cookie.
func (s *Server) destroy(w http.ResponseWriter, r *http.Request, sess *sessions.Session, reason string) error {
	user := ""
	if rec, ok := recordOf(sess); ok {
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
	return roleDefs(all, acct), nil
}

// roleDefs picks from all the definitions of the roles acct holds.
func roleDefs(all []store.Role, acct store.Account) []auth.Role {
	out := make([]auth.Role, 0, len(acct.Roles))
	for _, role := range all {
		if slices.Contains(acct.Roles, role.Name) {
			out = append(out, auth.Role{Name: role.Name, RequireCertificate: role.RequireCertificate, RequireTOTP: role.RequireTOTP})
		}
	}
	return out
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

// peerCertificates returns the certificate chain the client presented,
// leaf first: from the TLS handshake, or, for a request from a trusted
// proxy, from the header it forwarded the certificate in (see
// forwarded.go), and then never the handshake's: that is the proxy's
// own. It is verified by the caller on every
// request: Go restores a handshake certificate on session resumption
// without re-running any verification callback.
func (s *Server) peerCertificates(r *http.Request) []*x509.Certificate {
	if s.fromTrustedProxy(r) {
		return s.forwardedCertificate(r)
	}
	if r.TLS == nil {
		return nil
	}
	return r.TLS.PeerCertificates
}

// fromTrustedProxy reports whether the request's connection comes from a
// configured trusted proxy, or from the verify socket, whose file
// permissions admit only the proxy (socket.go).
func (s *Server) fromTrustedProxy(r *http.Request) bool {
	if fromProxySocket(r) {
		return true
	}
	if len(s.proxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the client's IP address, for logs, throttles and session
// records: the connection's peer, or, behind trusted proxies and on the
// verify socket, the last address in X-Forwarded-For that is not itself a
// trusted proxy.
func (s *Server) clientAddr(r *http.Request) string {
	peer := r.RemoteAddr
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		peer = ap.Addr().Unmap().String()
	}
	if fromProxySocket(r) {
		peer = proxySocketPeer // a Unix socket's peer has no address
	}
	if !s.fromTrustedProxy(r) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer // a malformed list: trust nothing in it
		}
		a = a.Unmap()
		if !slices.ContainsFunc(s.proxies, func(p netip.Prefix) bool { return p.Contains(a) }) {
			return a.String()
		}
	}
	return peer
}

// Has reports whether role is in effect for this request.
func (v *visit) Has(role string) bool { return slices.Contains(v.Decision.EffectiveRoles, role) }

// sessionCertID is the certificate ID a session is bound to. A session
// recorded before certificate IDs were kept names its certificate by
// fingerprint: it keeps the binding only for that exact encoding.
func sessionCertID(rec store.Session, cert auth.CertResult) string {
	if rec.CertID != "" || rec.CertFingerprint == "" {
		return rec.CertID
	}
	if cert.Info != nil && cert.Info.Fingerprint == rec.CertFingerprint {
		return cert.Info.ID
	}
	return "fingerprint:" + rec.CertFingerprint // matches no ID
}
