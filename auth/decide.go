package auth

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Factor names, as they appear in sessions, the API and the audit trail.
const (
	FactorPassword    = "password"
	FactorCertificate = "certificate"
	FactorTOTP        = "totp"
)

// CertRenewalWarning is how long before its expiry a certificate that
// still counts starts to come with a reminder to renew it.
const CertRenewalWarning = 14 * 24 * time.Hour

// Account is what the decision needs to know about the person signing in.
type Account struct {
	Name               string
	Email              string
	Roles              []string
	Disabled           bool
	MustChangePassword bool
	TOTPEnrolled       bool
	// PinnedFingerprints and PinnedKeys ("sha256:<hex>" of a certificate,
	// or of its public key) bind certificates to the account beyond the
	// name and email match.
	PinnedFingerprints []string
	PinnedKeys         []string
}

// Role is a role and the factors a login must present for it to take
// effect.
type Role struct {
	Name               string
	RequireCertificate bool
	RequireTOTP        bool
}

// Step is what a login must do next before its session is complete.
type Step int

// The next steps a decision can ask for.
const (
	StepNone           Step = iota // nothing: the session is complete
	StepTOTP                       // enter a TOTP code
	StepChangePassword             // choose a new password before anything else
	StepEnrollTOTP                 // a role needs TOTP: enroll it (other roles work meanwhile)
)

var stepNames = [...]string{
	StepNone:           "none",
	StepTOTP:           "totp",
	StepChangePassword: "change_password",
	StepEnrollTOTP:     "enroll_totp",
}

// String returns a stable machine name for the step.
func (s Step) String() string {
	if int(s) < len(stepNames) {
		return stepNames[s]
	}
	return fmt.Sprintf("Step(%d)", int(s))
}

// Input is everything the login decision looks at. Nothing in it comes
// from HTTP or storage directly: the caller verifies each factor first.
type Input struct {
	Account Account
	// Roles holds the definitions of the roles the account holds; a role
	// the account names but that is missing here is not granted.
	Roles []Role
	// PasswordOK is true when the password was verified (at login, or
	// earlier in the session being re-evaluated).
	PasswordOK bool
	// Cert is the verified certificate of this login or request; Decide
	// checks that it is bound to the account, and to no other.
	Cert CertResult
	// CertOwners are every account the caller found Cert bound to, the
	// account signing in among them or not (see CertResult.BoundTo). An
	// owner other than the account makes the certificate count for
	// nothing; with none, it counts when it is bound to the account.
	CertOwners []string
	// TOTPOK is true when a TOTP code was verified.
	TOTPOK bool
	// Now is the time of the decision.
	Now time.Time
}

// Decision is the outcome of a login or of re-evaluating a session.
type Decision struct {
	// Allow is true when a session may exist: the password is right and
	// the account may sign in. A session whose Next is StepTOTP or
	// StepChangePassword is not usable until that step is done.
	Allow bool
	// Factors are the factors that counted, in the order password,
	// certificate, totp.
	Factors []string
	// EffectiveRoles are the account's roles whose requirements the
	// factors meet, sorted.
	EffectiveRoles []string
	// Cert is the certificate result after the binding check.
	Cert CertResult
	Next Step
	// Notices tell the user, in plain words, what this session lacks and
	// why.
	Notices []string
	// AuditReason is a short machine-readable outcome for the audit trail.
	AuditReason string
}

// Decide is the one login decision: from an account, its roles and the
// factors verified for this login it decides whether a session may exist,
// which of the account's roles take effect, what the user must do next
// and what to tell them. The same function re-evaluates existing sessions
// on every request, so privileges always follow the current factors,
// roles and account state.
func Decide(in Input) Decision {
	if !in.PasswordOK {
		return Decision{AuditReason: "bad_password"}
	}
	if in.Account.Disabled {
		// Answered like a wrong password by the caller: a disabled account
		// must not be told apart from a wrong password.
		return Decision{AuditReason: "account_disabled"}
	}

	// Room for every factor at once: this runs on every request.
	d := Decision{Allow: true, Factors: append(make([]string, 0, 3), FactorPassword)}
	d.Cert = in.Cert.BoundTo(in.Account, in.CertOwners)
	if d.Cert.Valid() {
		d.Factors = append(d.Factors, FactorCertificate)
		if end := d.Cert.Info.NotAfter; !in.Now.IsZero() && end.Sub(in.Now) < CertRenewalWarning {
			d.Notices = append(d.Notices, fmt.Sprintf("your certificate expires on %s; get a new one before then to keep the roles that need it", end.UTC().Format(dateLayout)))
		}
	} else if d.Cert.Notice != "" {
		d.Notices = append(d.Notices, d.Cert.Notice)
	}

	if in.Account.TOTPEnrolled && !in.TOTPOK {
		d.Next = StepTOTP
		d.AuditReason = "totp_required"
		return d
	}
	if in.TOTPOK {
		d.Factors = append(d.Factors, FactorTOTP)
	}

	defs := make(map[string]Role, len(in.Roles))
	for _, r := range in.Roles {
		defs[r.Name] = r
	}
	var needCert, needTOTP []string
	for _, name := range in.Account.Roles {
		r, ok := defs[name]
		if !ok {
			continue
		}
		certOK := !r.RequireCertificate || d.Cert.Valid()
		totpOK := !r.RequireTOTP || in.TOTPOK
		switch {
		case certOK && totpOK:
			if d.EffectiveRoles == nil {
				d.EffectiveRoles = make([]string, 0, len(in.Account.Roles))
			}
			d.EffectiveRoles = append(d.EffectiveRoles, name)
		case !certOK:
			needCert = append(needCert, name)
		default:
			needTOTP = append(needTOTP, name)
		}
	}
	slices.Sort(d.EffectiveRoles)
	d.EffectiveRoles = slices.Compact(d.EffectiveRoles)
	if len(needCert) > 0 {
		d.Notices = append(d.Notices, accessNeeds(needCert, "your certificate"))
	}
	if len(needTOTP) > 0 {
		if in.Account.TOTPEnrolled {
			d.Notices = append(d.Notices, accessNeeds(needTOTP, "a TOTP code"))
		} else {
			d.Notices = append(d.Notices, accessNeeds(needTOTP, "a TOTP code; enroll TOTP on your account page"))
			d.Next = StepEnrollTOTP
		}
	}
	if in.Account.MustChangePassword {
		d.Next = StepChangePassword
		d.Notices = append(d.Notices, "you must choose a new password before you continue")
	}

	d.AuditReason = "ok"
	if d.Cert.Status != CertValid && d.Cert.Status != CertAbsent {
		d.AuditReason = "ok_certificate_" + d.Cert.Status.String()
	}
	return d
}

// accessNeeds says which roles wait for which factor:
// "admin access needs your certificate".
func accessNeeds(roles []string, factor string) string {
	slices.Sort(roles)
	roles = slices.Compact(roles)
	return fmt.Sprintf("%s access needs %s", joinAnd(roles), factor)
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
