// Package store defines the storage Gatehouse needs (accounts, roles,
// issued certificates and sessions) as plain Go types and one interface,
// Store. Backends live in subpackages (redisstore); storetest holds the
// contract suite every backend must pass.
//
// The store knows nothing of HTTP or of login rules: it keeps what it is
// given and hands it back.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors returned by every backend, checked with errors.Is.
var (
	// ErrNotFound means the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a record with that key already exists.
	ErrExists = errors.New("already exists")
	// ErrUnavailable wraps failures to reach the backing service, so that
	// callers can fail closed with a clear "service unavailable".
	ErrUnavailable = errors.New("store unavailable")
)

// Account is a person who can sign in.
type Account struct {
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
	// PasswordHash is the bcrypt hash of the password.
	PasswordHash string   `json:"password_hash"`
	Roles        []string `json:"roles"`
	Disabled     bool     `json:"disabled,omitempty"`
	// MustChangePassword is set for temporary passwords: the next login
	// must choose a new one before anything else.
	MustChangePassword bool      `json:"must_change_password,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// Role is a named set of privileges and the factors a login must present
// for the role to take effect.
type Role struct {
	Name               string `json:"name"`
	Description        string `json:"description,omitempty"`
	RequireCertificate bool   `json:"require_certificate"`
	RequireTOTP        bool   `json:"require_totp"`
}

// Certificate records a client certificate issued by the built-in CA.
type Certificate struct {
	// Serial is the certificate's serial number in lower-case hex.
	Serial string `json:"serial"`
	// Fingerprint is "sha256:<hex>" of the DER certificate.
	Fingerprint string    `json:"fingerprint"`
	User        string    `json:"user"`
	Subject     string    `json:"subject"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	IssuedAt    time.Time `json:"issued_at"`
}

// Session is the server-side record behind a session cookie. The cookie
// carries only the signed ID.
type Session struct {
	ID   string `json:"id"`
	User string `json:"user"`
	// Factors are the factors verified at login ("password", "certificate").
	Factors []string `json:"factors"`
	// CertFingerprint is "sha256:<hex>" of the certificate the login
	// presented, when it counted. Requests that do not present the same
	// certificate lose the roles that need it.
	CertFingerprint string    `json:"cert_fingerprint,omitempty"`
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
	// CreateAccount adds a new account or returns ErrExists.
	CreateAccount(ctx context.Context, a Account) error
	// UpdateAccount applies fn to the named account atomically.
	UpdateAccount(ctx context.Context, name string, fn func(*Account) error) error

	// Role returns the named role or ErrNotFound.
	Role(ctx context.Context, name string) (Role, error)
	// Roles returns every role, sorted by name.
	Roles(ctx context.Context) ([]Role, error)
	// PutRole creates or replaces a role.
	PutRole(ctx context.Context, r Role) error

	// PutCertificate records an issued certificate.
	PutCertificate(ctx context.Context, c Certificate) error
	// Certificates returns the certificates issued to user, or to everyone
	// when user is empty, oldest first.
	Certificates(ctx context.Context, user string) ([]Certificate, error)

	// Session returns the session with that ID or ErrNotFound; an expired
	// session is not found.
	Session(ctx context.Context, id string) (Session, error)
	// PutSession creates or replaces a session that the store forgets
	// after ttl.
	PutSession(ctx context.Context, s Session, ttl time.Duration) error
	// DeleteSession removes a session; deleting a missing one is not an
	// error.
	DeleteSession(ctx context.Context, id string) error

	// Ping reports whether the backing service is reachable.
	Ping(ctx context.Context) error
	// Close releases the connection to the backing service.
	Close() error
}
