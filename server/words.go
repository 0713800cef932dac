package server

import "strings"

// The audit trail keeps machine codes (the JSON API shows them as they
// are); the console pages show them in words. A reason an operator typed
// (a ticket number) is shown as typed.

// reasonWords are audit reasons and certificate statuses in plain words.
var reasonWords = map[string]string{
	"ok":                    "signed in",
	"totp_required":         "password right; waiting for the TOTP code",
	"bad_password":          "wrong password",
	"bad_code":              "wrong code",
	"code_replayed":         "a code already used",
	"locked":                "locked after too many failures",
	"throttled":             "too many failures; asked to wait",
	"account_disabled":      "account disabled",
	"unknown_user":          "no such account",
	"expired":               "expired",
	"bad_current_password":  "wrong current password",
	"valid":                 "valid",
	"absent":                "none presented",
	"unknown_issuer":        "from an authority this portal does not trust",
	"not_yet_valid":         "not valid yet",
	"no_client_auth":        "not made for signing in",
	"revoked":               "revoked",
	"invalid":               "could not be verified",
	"other_user":            "belongs to another account",
	"unbound":               "not linked to this account",
	"session_mismatch":      "not the one the session signed in with",
	"ambiguous":             "names more than one account",
	"code_mismatch":         "wrong confirmation code",
	"certificate_required":  "the approving sign-in had no certificate",
	"not_your_request":      "not the device that asked",
	"totp_approval_off":     "approval with a TOTP code is off",
	"request_expired":       "the request had expired",
	"request_cancelled":     "the request was cancelled",
	"already_issued":        "already issued",
	"already_approved":      "already approved",
	"not_approved":          "not approved yet",
	"too_many_certificates": "too many valid certificates",
	"not_due":               "not due for renewal",
	"not_this_certificate":  "another certificate than the one presented",
	"privileged_target":     "the account holds admin or helpdesk",
	"self":                  "one's own account",
}

// reasonText writes an audit reason for people: known codes in words,
// "ok_certificate_<status>" as a sign-in whose certificate did not count,
// anything else as it is.
func reasonText(code string) string {
	if w, ok := reasonWords[code]; ok {
		return w
	}
	if status, ok := strings.CutPrefix(code, "ok_certificate_"); ok {
		return "signed in; the certificate did not count (" + reasonText(status) + ")"
	}
	return code
}
