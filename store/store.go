// Package store defines the storage Gatehouse needs (accounts, roles,
// issued certificates and sessions) as plain Go types and one interface,
// Store. Backends live in subpackages (sqlitestore, redisstore); storetest holds the
// contract suite every backend must pass.
//
// The store knows nothing of HTTP or of login rules: it keeps what it is
// given and hands it back.
package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// Sentinel errors returned by every backend, checked with errors.Is.
var (
	// ErrNotFound means the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a record with that key already exists.
	ErrExists = errors.New("already exists")
	// ErrEmailTaken means another account already has the email an
	// account was to be given (compared as EmailKey does).
	ErrEmailTaken = errors.New("email already used by another account")
	// ErrUnavailable wraps failures to reach the backing service, so that
	// callers can fail closed with a clear "service unavailable".
	ErrUnavailable = errors.New("store unavailable")
	// ErrBadCursor means a cursor that this store did not make: an
	// AuditQuery.Before that is not one of its event IDs, or a
	// ListQuery.Cursor that is not a Next of the same listing.
	ErrBadCursor = errors.New("not a cursor of this store")
	// ErrDataLost means the store no longer holds the marker written when
	// it was set up (see Store.Mark): a Redis restarted without
	// persistence, or a store URL or file that names another database.
	// What it says about accounts cannot be trusted: an empty store must
	// never read as "no such user".
	ErrDataLost = errors.New("the store has lost its data")
	// ErrPartlyLost, always with ErrDataLost, means the marker is gone
	// from some of the store's servers but is still on others: the store
	// was set up, and one of its servers lost its data.
	ErrPartlyLost = errors.New("some of the store's servers still hold their marker")
)

// ServerError says which server of a store spread over several (a Redis
// Cluster) failed, so that an operator knows where to look. It wraps the
// failure (ErrUnavailable, for one that does not answer).
type ServerError struct {
	Server string // host:port
	Err    error
}

func (e *ServerError) Error() string { return "server " + e.Server + ": " + e.Err.Error() }
func (e *ServerError) Unwrap() error { return e.Err }

// Account is a person who can sign in.
type Account struct {
	Name string `json:"name"`
	// ID identifies the account for good: no other account ever gets it,
	// even one made later under the same name (see Subject). CreateAccount
	// sets it; accounts made before it was kept have none.
	ID    string `json:"id,omitempty"`
	Email string `json:"email,omitempty"`
	// PasswordHash is the bcrypt hash of the password.
	PasswordHash string   `json:"password_hash"`
	Roles        []string `json:"roles"`
	Disabled     bool     `json:"disabled,omitempty"`
	// MustChangePassword is set for temporary passwords: the next login
	// must choose a new one before anything else.
	MustChangePassword bool `json:"must_change_password,omitempty"`
	// PinnedFingerprints ("sha256:<hex>" of a certificate) and PinnedKeys
	// ("sha256:<hex>" of its SubjectPublicKeyInfo) bind certificates to
	// the account whatever names they carry.
	PinnedFingerprints []string `json:"pinned_fingerprints,omitempty"`
	PinnedKeys         []string `json:"pinned_keys,omitempty"`
	// TOTPSecret is the enrolled TOTP secret, sealed (encrypted) by the
	// caller; empty when TOTP is not enrolled. TOTPPending is a secret
	// being enrolled, not yet confirmed with a code.
	TOTPSecret  string `json:"totp_secret,omitempty"`
	TOTPPending string `json:"totp_pending,omitempty"`
	// TOTPEnrolledAt is when TOTPSecret was confirmed; zero for one
	// confirmed before this was kept.
	TOTPEnrolledAt time.Time `json:"totp_enrolled_at,omitzero"`
	// RecoveryCodes are keyed hashes of the unused recovery codes.
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
	// Enrollments are the account's recent requests for a certificate
	// for a new device. They live in the account record so that its
	// atomic update guards their limits and their once-only steps.
	Enrollments []Enrollment `json:"enrollments,omitempty"`
	// Renewed are the serials of the account's certificates that were
	// renewed: each is renewed once (the last fifty are kept).
	Renewed   []string  `json:"renewed,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewAccountID returns a new, random Account.ID: "A" and 26 letters and
// digits. It starts with a capital, which no account name holds, so it
// never equals the name an account made before IDs were kept goes by
// (Subject). (No ':', which the OpenID Provider's tokens use as a
// separator.)
func NewAccountID() string {
	return "A" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(randomBytes(16))
}

// randomBytes returns n bytes from crypto/rand.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return b
}

// Subject is how apps know the account (the OpenID Connect sub): its ID,
// never reassigned, so an account deleted and made again under the same
// name is someone else to every app. An account made before IDs were kept
// goes by its name, as it always did, so apps keep knowing it.
func (a Account) Subject() string {
	if a.ID != "" {
		return a.ID
	}
	return a.Name
}

// Enrollment statuses. A pending or approved request whose ExpiresAt has
// passed is expired, whatever its status says.
const (
	EnrollmentPending   = "pending"   // waiting for approval
	EnrollmentApproved  = "approved"  // approved, certificate not yet issued
	EnrollmentIssued    = "issued"    // the certificate was issued, once
	EnrollmentCancelled = "cancelled" // withdrawn, or too many wrong codes
)

// Enrollment is a request, made on a new device, for a certificate for
// that device. Nothing in it is secret: the confirmation code is derived
// from the ID and the requesting session, never stored.
type Enrollment struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	// CSR is the PEM certificate request the device sent, when it made
	// its own key.
	CSR string `json:"csr,omitempty"`
	// Requester is a keyed hash of the requesting session's ID: only
	// that session sees the code and may take the certificate.
	Requester     string    `json:"requester"`
	RequestedFrom string    `json:"requested_from,omitempty"`
	UserAgent     string    `json:"user_agent,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	// WrongCodes counts approvals refused for a wrong code.
	WrongCodes int `json:"wrong_codes,omitempty"`
	// ApprovedBy is who approved ("alice", or "alice (help desk)");
	// ApprovedWith how ("certificate", "helpdesk", "totp").
	ApprovedBy   string    `json:"approved_by,omitempty"`
	ApprovedWith string    `json:"approved_with,omitempty"`
	DecidedAt    time.Time `json:"decided_at,omitzero"`
	// Serial is the issued certificate's serial.
	Serial string `json:"serial,omitempty"`
}

// Role is a named set of privileges and the factors a login must present
// for the role to take effect.
type Role struct {
	Name               string `json:"name"`
	Description        string `json:"description,omitempty"`
	RequireCertificate bool   `json:"require_certificate"`
	RequireTOTP        bool   `json:"require_totp"`
}

// App is an internal web application that relies on the portal for
// sign-in (forward auth). A request for it is allowed when the session's
// effective roles include one of Roles.
type App struct {
	Name string `json:"name"`
	// URL is the app's base URL, "https://host[:port]/path/": requests
	// whose URL starts with it belong to the app.
	URL   string   `json:"url"`
	Roles []string `json:"roles"`
}

// OIDCClient is an app that signs people in with OpenID Connect, with
// Gatehouse as its provider. It gets an authorization code only for a
// session in which one of Roles is in effect.
type OIDCClient struct {
	ID string `json:"id"`
	// SecretHash is "sha256:<hex>" of the client secret; empty for a
	// public client, which has no secret and must use PKCE.
	SecretHash string `json:"secret_hash,omitempty"`
	// RedirectURIs are the only URIs a code is sent to, compared exactly.
	RedirectURIs []string  `json:"redirect_uris"`
	Roles        []string  `json:"roles"`
	Public       bool      `json:"public,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// OIDCKey is a key that signs ID tokens. The newest key that is not
// retired signs; every key in the store is published, so that tokens a
// retired key signed still verify until they expire and the key is
// deleted.
type OIDCKey struct {
	// ID is the key's "kid"; IDs sort in the order keys were made.
	ID        string `json:"id"`
	Algorithm string `json:"alg"`
	// PrivateKey is the PKCS#8 private key, sealed by the caller: the
	// store never holds it in the clear.
	PrivateKey string    `json:"private_key"`
	CreatedAt  time.Time `json:"created_at"`
	// RetiredAt is when a newer key took over signing; zero while the key
	// signs.
	RetiredAt time.Time `json:"retired_at,omitzero"`
}

// SessionView is what a request on a session needs, read together: the
// session record, its account (zero Name when the account is gone) and
// every role and app definition, each sorted by name.
type SessionView struct {
	Session Session
	Account Account
	Roles   []Role
	Apps    []App
}

// Certificate records a client certificate issued by the built-in CA.
type Certificate struct {
	// Serial is the certificate's serial number in lower-case hex.
	Serial string `json:"serial"`
	// Issuer is "sha256:<hex>" of the issuer's name as the certificate
	// encodes it; with Serial it identifies the certificate for
	// revocation. Records made before it was kept have none: their
	// revocation then covers that serial from any issuer.
	Issuer string `json:"issuer,omitempty"`
	// ID is "sha256:<hex>" of the certificate's signed body
	// (TBSCertificate), which re-encoding the signature cannot change.
	ID string `json:"id,omitempty"`
	// Fingerprint is "sha256:<hex>" of the DER certificate, for people:
	// the same certificate can have other encodings.
	Fingerprint string `json:"fingerprint"`
	// TwinFingerprint is "sha256:<hex>" of the certificate's one other
	// valid encoding, when its signature is ECDSA (s → n−s): the same
	// certificate, which a sign-in with it shows under this fingerprint.
	// It names the certificate as Fingerprint does. Records made before
	// it was kept have none.
	TwinFingerprint string `json:"twin_fingerprint,omitempty"`
	User            string `json:"user"`
	// Device is the name its owner gave the device it was made for, when
	// it came through a device request or a renewal.
	Device string `json:"device,omitempty"`
	// RenewedFrom is the serial of the certificate this one renewed:
	// revoking that one revokes this one too.
	RenewedFrom string    `json:"renewed_from,omitempty"`
	Subject     string    `json:"subject"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	IssuedAt    time.Time `json:"issued_at"`
	// RevokedAt is set once the certificate is revoked; it never counts
	// again.
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	RevokeReason string    `json:"revoke_reason,omitempty"`
}

// AuditEvent is one entry of the audit trail: a login, or an action on
// an account, role, certificate or session. It never holds a secret.
type AuditEvent struct {
	// ID orders events; the store assigns it.
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Action is what happened: "login", "certificate.revoke", ...
	Action string `json:"action"`
	// Outcome is "success", "failure", "warning" or "pending" (a sign-in
	// waiting at its TOTP step).
	Outcome string `json:"outcome"`
	// Actor is who did it (the account signing in, or an admin); Target
	// is whom or what it was done to.
	Actor        string   `json:"actor,omitempty"`
	ActorFactors []string `json:"actor_factors,omitempty"`
	Target       string   `json:"target,omitempty"`
	// Reason is a machine-readable outcome or the reason an operator gave.
	Reason          string   `json:"reason,omitempty"`
	CertFingerprint string   `json:"cert_fingerprint,omitempty"`
	CertStatus      string   `json:"cert_status,omitempty"`
	Notices         []string `json:"notices,omitempty"`
	ClientAddr      string   `json:"client_addr,omitempty"`
	// KnownDevice says how a sign-in came from a known device
	// ("certificate" or "cookie"); empty for an unknown device.
	KnownDevice string `json:"known_device,omitempty"`
}

// AuditQuery selects audit events, newest first. Empty fields select
// everything.
type AuditQuery struct {
	// Before, when set, returns only events older than this ID (the
	// previous page's last ID).
	Before string
	// Limit bounds the number of events (default and maximum MaxPage).
	Limit int
	// User matches events whose actor or target is this account.
	User string
	// Actor and Action match those fields exactly.
	Actor  string
	Action string
	// Since and Until bound the event time (inclusive, exclusive).
	Since time.Time
	Until time.Time
}

// Matches reports whether e passes the query's filters (not Before or
// Limit).
func (q AuditQuery) Matches(e AuditEvent) bool {
	switch {
	case q.User != "" && e.Actor != q.User && e.Target != q.User:
		return false
	case q.Actor != "" && e.Actor != q.Actor:
		return false
	case q.Action != "" && e.Action != q.Action:
		return false
	case !q.Since.IsZero() && e.Time.Before(q.Since):
		return false
	case !q.Until.IsZero() && !e.Time.Before(q.Until):
		return false
	}
	return true
}

// Session is the server-side record behind a session cookie. The cookie
// carries only the signed ID.
type Session struct {
	ID   string `json:"id"`
	User string `json:"user"`
	// Factors are the factors verified at login ("password", "certificate").
	Factors []string `json:"factors"`
	// CertID is the ID (see Certificate.ID) of the certificate the login
	// presented, when it counted. Requests that do not present the same
	// certificate lose the roles that need it.
	CertID string `json:"cert_id,omitempty"`
	// CertFingerprint is "sha256:<hex>" of that certificate's DER, shown
	// to people. Sessions recorded before CertID bind to it instead.
	CertFingerprint string `json:"cert_fingerprint,omitempty"`
	// OtherCertID and OtherCertOwners remember a verified certificate
	// the login presented that did not count because it is bound to other
	// accounts (and perhaps to this one too), so later requests can keep
	// saying why without a lookup.
	OtherCertID     string    `json:"other_cert_id,omitempty"`
	OtherCertOwners []string  `json:"other_cert_owners,omitempty"`
	ClientAddr      string    `json:"client_addr,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	LastSeen        time.Time `json:"last_seen"`
	// ExpiresAt is the absolute end of the session, whatever its activity.
	ExpiresAt time.Time `json:"expires_at"`
}

// Store is the storage the rest of Gatehouse uses. Every method is safe
// for concurrent use. Failures to reach the backing service wrap
// ErrUnavailable.
type Store interface {
	// Account returns the named account or ErrNotFound.
	Account(ctx context.Context, name string) (Account, error)
	// Accounts returns every account, sorted by name.
	Accounts(ctx context.Context) ([]Account, error)
	// ListAccounts returns a page of accounts, sorted by name (q.User
	// does not apply).
	ListAccounts(ctx context.Context, q ListQuery) (Page[Account], error)
	// CreateAccount adds a new account, or returns ErrExists when the
	// name is taken and ErrEmailTaken when another account has its email
	// (see EmailKey); of two concurrent calls for one email, one wins.
	// An account without an ID is given one (NewAccountID); callers that
	// show the account afterwards set it themselves.
	CreateAccount(ctx context.Context, a Account) error
	// UpdateAccount applies fn to the named account atomically. A new
	// email that another account has fails with ErrEmailTaken and
	// nothing is written; an email left as it was is never refused.
	UpdateAccount(ctx context.Context, name string, fn func(*Account) error) error
	// DeleteAccount removes an account or returns ErrNotFound. Its
	// sessions are not touched: callers end them first.
	DeleteAccount(ctx context.Context, name string) error

	// App returns the named app or ErrNotFound.
	App(ctx context.Context, name string) (App, error)
	// Apps returns every app, sorted by name.
	Apps(ctx context.Context) ([]App, error)
	// PutApp creates or replaces an app.
	PutApp(ctx context.Context, a App) error
	// DeleteApp removes an app; missing is no error.
	DeleteApp(ctx context.Context, name string) error

	// OIDCClient returns the OpenID Connect client with that ID or
	// ErrNotFound.
	OIDCClient(ctx context.Context, id string) (OIDCClient, error)
	// OIDCClients returns every OpenID Connect client, sorted by ID.
	OIDCClients(ctx context.Context) ([]OIDCClient, error)
	// PutOIDCClient creates or replaces an OpenID Connect client.
	PutOIDCClient(ctx context.Context, c OIDCClient) error
	// DeleteOIDCClient removes a client; missing is no error.
	DeleteOIDCClient(ctx context.Context, id string) error

	// OIDCKeys returns every token signing key, sorted by ID.
	OIDCKeys(ctx context.Context) ([]OIDCKey, error)
	// PutOIDCKey creates or replaces a signing key.
	PutOIDCKey(ctx context.Context, k OIDCKey) error
	// DeleteOIDCKey removes a signing key; missing is no error.
	DeleteOIDCKey(ctx context.Context, id string) error

	// PutTicket stores data under id for ttl (which must be positive),
	// replacing what was there. Tickets are short-lived records such as
	// OpenID Connect authorization requests, codes and access tokens.
	PutTicket(ctx context.Context, id string, data []byte, ttl time.Duration) error
	// Ticket returns the live ticket under id or ErrNotFound.
	Ticket(ctx context.Context, id string) ([]byte, error)
	// TakeTicket returns the live ticket under id and deletes it, in one
	// atomic step: of two concurrent calls, one gets it and the other
	// ErrNotFound. This makes authorization codes single-use.
	TakeTicket(ctx context.Context, id string) ([]byte, error)
	// DeleteTicket removes a ticket; missing is no error.
	DeleteTicket(ctx context.Context, id string) error

	// Role returns the named role or ErrNotFound.
	Role(ctx context.Context, name string) (Role, error)
	// Roles returns every role, sorted by name.
	Roles(ctx context.Context) ([]Role, error)
	// PutRole creates or replaces a role.
	PutRole(ctx context.Context, r Role) error

	// DeleteRole removes a role; accounts that name it no longer get it.
	// Deleting a missing role is not an error.
	DeleteRole(ctx context.Context, name string) error

	// PutCertificate records an issued certificate.
	PutCertificate(ctx context.Context, c Certificate) error
	// Certificates returns the certificates issued to user, or to everyone
	// when user is empty, oldest first.
	Certificates(ctx context.Context, user string) ([]Certificate, error)
	// ListCertificates returns a page of the certificates Certificates
	// returns for q.User, in the same order (IssuedAt, then Serial).
	ListCertificates(ctx context.Context, q ListQuery) (Page[Certificate], error)

	// RevokeCertificate marks the certificate with that serial revoked
	// and returns its record, or ErrNotFound. A revocation is never
	// undone; revoking again keeps the first time and reason.
	RevokeCertificate(ctx context.Context, serial string, at time.Time, reason string) (Certificate, error)
	// IsRevoked reports whether the certificate with that issuer
	// (Certificate.Issuer) and serial was revoked. It never looks at a
	// fingerprint: a certificate has more than one DER encoding.
	IsRevoked(ctx context.Context, issuer, serial string) (bool, error)

	// AppendAudit adds an event to the audit trail.
	AppendAudit(ctx context.Context, e AuditEvent) error
	// Audit returns a page of audit events, newest first. Its Next is the
	// Before of the following page: the last event it looked at, which
	// is older than every event listed (a backend may stop looking early,
	// to bound one page's work, and leave the page short).
	Audit(ctx context.Context, q AuditQuery) (Page[AuditEvent], error)

	// UseTOTPStep records that a TOTP code of time step step was accepted
	// for user, and reports whether this was the first use; the mark is
	// kept for ttl (longer than the skew window). This is the replay
	// guard, shared by every portal instance.
	UseTOTPStep(ctx context.Context, user string, step int64, ttl time.Duration) (bool, error)

	// AddFailure counts one more consecutive failure under key (for
	// example "totp:alice") and returns the new count; the count is
	// forgotten after ttl without failures.
	AddFailure(ctx context.Context, key string, ttl time.Duration) (int, error)
	// Failures returns the current count under key (0 when none).
	Failures(ctx context.Context, key string) (int, error)
	// FailuresOf returns the current counts under keys, in order (0 where
	// there is none), in one read where the backend can: a page of an
	// admin list shows several counters per account.
	FailuresOf(ctx context.Context, keys []string) ([]int, error)
	// ResetFailures forgets the count under key.
	ResetFailures(ctx context.Context, key string) error

	// Claim takes key for ttl unless someone holds it already, and
	// reports whether this call took it: one attempt at a time, across
	// every instance sharing the store.
	Claim(ctx context.Context, key string, ttl time.Duration) (bool, error)

	// SetMetaOnce stores value under name unless a value is there, and
	// returns the value in force. Used for facts about the store itself,
	// such as the check that the TOTP key is the one it was sealed with.
	SetMetaOnce(ctx context.Context, name, value string) (string, error)

	// RaiseCounter sets the counter under name to value unless it holds a
	// greater value already, and returns the value in force afterwards
	// (the greater of the two), in one atomic step for every instance
	// sharing the store. A counter never goes down: it keeps, for
	// example, the highest CRL number seen from an issuer, so that an
	// older list is refused even after a restart. Counters and
	// SetMetaOnce values do not share names.
	RaiseCounter(ctx context.Context, name string, value *big.Int) (*big.Int, error)

	// View returns the session with that ID together with its account
	// and every role and app definition, in one read where the backend
	// can; ErrNotFound as Session does.
	View(ctx context.Context, id string) (SessionView, error)
	// Session returns the session with that ID or ErrNotFound; an expired
	// session is not found.
	Session(ctx context.Context, id string) (Session, error)
	// PutSession creates or replaces a session that the store forgets
	// after ttl.
	PutSession(ctx context.Context, s Session, ttl time.Duration) error
	// DeleteSession removes a session; deleting a missing one is not an
	// error.
	DeleteSession(ctx context.Context, id string) error
	// RefreshSession writes a session that already exists and has not
	// expired, with a new ttl, and reports false (writing nothing) when it
	// is gone: a session revoked meanwhile must not be written back.
	RefreshSession(ctx context.Context, s Session, ttl time.Duration) (bool, error)
	// Sessions returns the live sessions of user, oldest first.
	Sessions(ctx context.Context, user string) ([]Session, error)
	// ListSessions returns a page of live sessions in the order (User,
	// CreatedAt, ID): q.User's, or, when q.User is empty, those of every
	// account that exists.
	ListSessions(ctx context.Context, q ListQuery) (Page[Session], error)
	// DeleteUserSessions removes every session of user and returns how
	// many there were.
	DeleteUserSessions(ctx context.Context, user string) (int, error)

	// Mark writes the marker that says this store holds Gatehouse's
	// data. "gatehouse init" writes it when it sets the store up; writing
	// it again changes nothing.
	Mark(ctx context.Context) error
	// CheckMarker returns nil when the marker is in place where account's
	// records are kept (everywhere, when account is ""), and an error
	// wrapping ErrDataLost, which says where it is missing but never
	// names the account, when it is not; when it is still on some of the
	// store's servers, the error wraps ErrPartlyLost too. A backend opened on data written
	// before markers existed marks it, if it holds any account.
	CheckMarker(ctx context.Context, account string) error

	// Ping reports whether the backing service is reachable.
	Ping(ctx context.Context) error
	// Close releases the connection to the backing service.
	Close() error
}

// EmailKey is the form in which account emails are compared for
// uniqueness: ASCII letters in lower case, every other byte as it is; ""
// for no email, which never conflicts. It is the same rule that matches a
// certificate's email to an account (auth.CertMatchesAccount), so no
// certificate email can name two accounts. Unicode case folding is left
// out on purpose: under it the Kelvin sign "\u212a" equals "k", and mail
// systems do not agree on it.
func EmailKey(email string) string {
	b := []byte(email)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// ViewByParts reads what Store.View returns with one call per record,
// for a backend that has no single read for it.
func ViewByParts(ctx context.Context, s Store, id string) (SessionView, error) {
	sess, err := s.Session(ctx, id)
	if err != nil {
		return SessionView{Session: sess}, err
	}
	return ViewOf(ctx, s, sess)
}

// ViewOf reads the rest of what Store.View returns for a session already
// in hand: its account (empty when gone), the roles and the apps.
func ViewOf(ctx context.Context, s Store, sess Session) (SessionView, error) {
	v := SessionView{Session: sess}
	var err error
	if v.Account, err = s.Account(ctx, v.Session.User); err != nil && !errors.Is(err, ErrNotFound) {
		return v, err
	}
	if v.Roles, err = s.Roles(ctx); err != nil {
		return v, err
	}
	v.Apps, err = s.Apps(ctx)
	return v, err
}

// CertificateOf is the record of certificate c, issued to user at
// issuedAt.
func CertificateOf(c *x509.Certificate, user string, issuedAt time.Time) Certificate {
	return Certificate{
		Serial:      c.SerialNumber.Text(16),
		Issuer:      sha256Text(c.RawIssuer),
		ID:          sha256Text(c.RawTBSCertificate),
		Fingerprint: sha256Text(c.Raw),
		User:        user,
		Subject:     c.Subject.String(),
		NotBefore:   c.NotBefore,
		NotAfter:    c.NotAfter,
		IssuedAt:    issuedAt,
	}
}

func sha256Text(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// FindCertificate returns the certificate of certs that id names: its
// fingerprint or its twin's (TwinFingerprint), with or without
// "sha256:", or its serial in hex (colons allowed, as tools print it);
// any case, surrounding spaces and leading zeros are allowed.
func FindCertificate(certs []Certificate, id string) (Certificate, bool) {
	id = strings.ToLower(strings.TrimSpace(id))
	serial := strings.TrimLeft(strings.ReplaceAll(id, ":", ""), "0")
	fp := id
	if !strings.HasPrefix(fp, "sha256:") {
		fp = "sha256:" + fp
	}
	i := slices.IndexFunc(certs, func(c Certificate) bool {
		return c.Fingerprint == fp || (c.TwinFingerprint != "" && c.TwinFingerprint == fp) || (serial != "" && c.Serial == serial)
	})
	if i < 0 {
		return Certificate{}, false
	}
	return certs[i], true
}

// LookupCertificate finds the certificate that id names, as
// FindCertificate does, paging through every certificate of s.
func LookupCertificate(ctx context.Context, s Store, id string) (Certificate, bool, error) {
	var found Certificate
	errFound := errors.New("found")
	err := ForEach(func(cursor string) (Page[Certificate], error) {
		return s.ListCertificates(ctx, ListQuery{Cursor: cursor})
	}, func(c Certificate) error {
		if _, ok := FindCertificate([]Certificate{c}, id); ok {
			found = c
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return found, true, nil
	}
	return Certificate{}, false, err
}

// EachAccount calls fn for every account of s, sorted by name, a page at
// a time.
func EachAccount(ctx context.Context, s Store, fn func(Account) error) error {
	return ForEach(func(cursor string) (Page[Account], error) {
		return s.ListAccounts(ctx, ListQuery{Cursor: cursor})
	}, fn)
}

// AnyIssuer is the issuer a revocation is kept under when the record it
// came from does not say which issuer it had (records made before
// Certificate.Issuer): IsRevoked then matches the serial from any issuer,
// which can only revoke more, never less.
const AnyIssuer = "*"

// RevocationReason is what the audit trail says of a revocation by
// RevokeWithRenewals: why, then the device and serial of every
// certificate it revoked (as it returned them, the renewals last).
func RevocationReason(why string, revoked []Certificate) string {
	var b strings.Builder
	b.WriteString(why)
	for i, c := range revoked {
		b.WriteString("; ")
		if i > 0 {
			b.WriteString("with its renewal, ")
		}
		if c.Device != "" {
			fmt.Fprintf(&b, "device %q, ", c.Device)
		}
		b.WriteString("serial " + c.Serial)
	}
	return b.String()
}

// RevokeWithRenewals revokes the certificate with serial and every
// certificate renewed from it, directly or through others: a renewal made
// with a stolen certificate must not outlive the stolen one's
// revocation. It returns the certificate with serial first, then the
// renewals it revoked.
func RevokeWithRenewals(ctx context.Context, s Store, serial string, at time.Time, reason string) ([]Certificate, error) {
	c, err := s.RevokeCertificate(ctx, serial, at, reason)
	if err != nil {
		return nil, err
	}
	out := []Certificate{c}
	certs, err := s.Certificates(ctx, c.User)
	if err != nil {
		return out, err
	}
	for i := 0; i < len(out); i++ {
		for _, x := range certs {
			if x.RenewedFrom == out[i].Serial && !slices.ContainsFunc(out, func(y Certificate) bool { return y.Serial == x.Serial }) {
				r, err := s.RevokeCertificate(ctx, x.Serial, at, reason+" (renewed from "+out[i].Serial+")")
				if err != nil {
					return out, err
				}
				out = append(out, r)
			}
		}
	}
	return out, nil
}
