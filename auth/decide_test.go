package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var builtinRoles = []Role{
	{Name: "admin", RequireCertificate: true},
	{Name: "employee"},
	{Name: "helpdesk", RequireCertificate: true},
}

// decideNow is the time of every decision in TestDecide.
var decideNow = time.Date(2026, 5, 3, 12, 0, 0, 0, time.UTC)

func validCert(cn string) CertResult {
	return CertResult{Status: CertValid, Info: &CertInfo{CommonName: cn, Fingerprint: "sha256:00", NotAfter: decideNow.Add(365 * 24 * time.Hour)}}
}

// TestDecide covers every row of SPEC's decision table and the ways a
// factor can fail.
func TestDecide(t *testing.T) {
	now := decideNow
	admin := Account{Name: "alice", Roles: []string{"admin", "employee"}}
	tests := []struct {
		name string
		in   Input
		want Decision
		// noticeHas lists substrings that must each appear in some notice.
		noticeHas []string
	}{
		{
			name: "password and valid bound certificate gives full access",
			in:   Input{Account: admin, Roles: builtinRoles, PasswordOK: true, Cert: validCert("alice")},
			want: Decision{Allow: true, Factors: []string{"password", "certificate"}, EffectiveRoles: []string{"admin", "employee"}, AuditReason: "ok"},
		},
		{
			name:      "password without certificate drops certificate roles with a notice",
			in:        Input{Account: admin, Roles: builtinRoles, PasswordOK: true},
			want:      Decision{Allow: true, Factors: []string{"password"}, EffectiveRoles: []string{"employee"}, AuditReason: "ok"},
			noticeHas: []string{"admin access needs your certificate"},
		},
		{
			name:      "certificate bound to someone else counts as absent",
			in:        Input{Account: Account{Name: "bob", Roles: []string{"employee"}}, Roles: builtinRoles, PasswordOK: true, Cert: validCert("alice"), CertOwners: []string{"alice"}},
			want:      Decision{Allow: true, Factors: []string{"password"}, EffectiveRoles: []string{"employee"}, AuditReason: "ok_certificate_other_user"},
			noticeHas: []string{`issued to "alice") belongs to another account`},
		},
		{
			name:      "certificate bound to this account and another counts for neither",
			in:        Input{Account: admin, Roles: builtinRoles, PasswordOK: true, Cert: validCert("alice"), CertOwners: []string{"alice", "dupe"}},
			want:      Decision{Allow: true, Factors: []string{"password"}, EffectiveRoles: []string{"employee"}, AuditReason: "ok_certificate_ambiguous"},
			noticeHas: []string{`issued to "alice") names more than one account, so it does not count`, "admin access needs your certificate"},
		},
		{
			name: "certificate naming another account and carrying this account's email counts for neither",
			in: Input{Account: Account{Name: "alice", Email: "alice@example.com", Roles: []string{"admin", "employee"}}, Roles: builtinRoles, PasswordOK: true,
				Cert:       CertResult{Status: CertValid, Info: &CertInfo{CommonName: "dupe", Emails: []string{"ALICE@example.com"}, NotAfter: decideNow.Add(30 * 24 * time.Hour)}},
				CertOwners: []string{"alice", "dupe"}},
			want:      Decision{Allow: true, Factors: []string{"password"}, EffectiveRoles: []string{"employee"}, AuditReason: "ok_certificate_ambiguous"},
			noticeHas: []string{"names more than one account"},
		},
		{
			name:      "certificate bound to two other accounts counts as absent",
			in:        Input{Account: Account{Name: "bob", Roles: []string{"employee"}}, Roles: builtinRoles, PasswordOK: true, Cert: validCert("alice"), CertOwners: []string{"alice", "carol"}},
			want:      Decision{Allow: true, Factors: []string{"password"}, EffectiveRoles: []string{"employee"}, AuditReason: "ok_certificate_ambiguous"},
			noticeHas: []string{"names more than one account"},
		},
		{
			name: "certificate pinned on this account and named for another counts for neither",
			in: Input{Account: Account{Name: "bob", Roles: []string{"admin"}, PinnedFingerprints: []string{"sha256:00"}}, Roles: builtinRoles, PasswordOK: true,
				Cert: validCert("alice"), CertOwners: []string{"alice", "bob"}},
			want:      Decision{Allow: true, Factors: []string{"password"}, AuditReason: "ok_certificate_ambiguous"},
			noticeHas: []string{"names more than one account", "admin access needs your certificate"},
		},
		{
			name: "certificate bound to this account alone, as the caller found, counts",
			in:   Input{Account: admin, Roles: builtinRoles, PasswordOK: true, Cert: validCert("alice"), CertOwners: []string{"alice"}},
			want: Decision{Allow: true, Factors: []string{"password", "certificate"}, EffectiveRoles: []string{"admin", "employee"}, AuditReason: "ok"},
		},
		{
			name:      "certificate bound to nobody counts as absent",
			in:        Input{Account: Account{Name: "bob", Roles: []string{"admin"}}, Roles: builtinRoles, PasswordOK: true, Cert: validCert("stranger")},
			want:      Decision{Allow: true, Factors: []string{"password"}, AuditReason: "ok_certificate_unbound"},
			noticeHas: []string{`issued to "stranger") is not linked to this account`, "admin access needs your certificate"},
		},
		{
			name: "certificate pinned by fingerprint counts whatever its names",
			in: Input{Account: Account{Name: "bob", Roles: []string{"admin"}, PinnedFingerprints: []string{"sha256:00"}}, Roles: builtinRoles, PasswordOK: true,
				Cert: validCert("laptop-17")},
			want: Decision{Allow: true, Factors: []string{"password", "certificate"}, EffectiveRoles: []string{"admin"}, AuditReason: "ok"},
		},
		{
			name: "renewed certificate with a pinned key counts",
			in: Input{Account: Account{Name: "bob", Roles: []string{"admin"}, PinnedKeys: []string{"sha256:key"}}, Roles: builtinRoles, PasswordOK: true,
				Cert: CertResult{Status: CertValid, Info: &CertInfo{CommonName: "laptop-17", Fingerprint: "sha256:renewed", KeyPin: "sha256:key", NotAfter: decideNow.Add(15 * 24 * time.Hour)}}},
			want: Decision{Allow: true, Factors: []string{"password", "certificate"}, EffectiveRoles: []string{"admin"}, AuditReason: "ok"},
		},
		{
			name: "expired certificate gives reduced access with the reason",
			in: Input{Account: Account{Name: "alice", Roles: []string{"admin"}}, Roles: builtinRoles, PasswordOK: true,
				Cert: CertResult{Status: CertExpired, Info: &CertInfo{CommonName: "alice"}, Notice: "your certificate expired on 3 May 2026"}},
			want:      Decision{Allow: true, Factors: []string{"password"}, AuditReason: "ok_certificate_expired"},
			noticeHas: []string{"expired on 3 May 2026", "admin access needs your certificate"},
		},
		{
			name: "certificate about to expire still counts, with a reminder",
			in: Input{Account: admin, Roles: builtinRoles, PasswordOK: true,
				Cert: CertResult{Status: CertValid, Info: &CertInfo{CommonName: "alice", NotAfter: decideNow.Add(13 * 24 * time.Hour)}}},
			want:      Decision{Allow: true, Factors: []string{"password", "certificate"}, EffectiveRoles: []string{"admin", "employee"}, AuditReason: "ok"},
			noticeHas: []string{"your certificate expires on 16 May 2026"},
		},
		{
			name: "wrong password denies whatever the certificate",
			in:   Input{Account: admin, Roles: builtinRoles, PasswordOK: false, Cert: validCert("alice")},
			want: Decision{AuditReason: "bad_password"},
		},
		{
			name: "disabled account is denied",
			in:   Input{Account: Account{Name: "alice", Roles: []string{"employee"}, Disabled: true}, Roles: builtinRoles, PasswordOK: true},
			want: Decision{AuditReason: "account_disabled"},
		},
		{
			name: "TOTP enrolled and code missing asks for the TOTP step",
			in: Input{Account: Account{Name: "alice", Roles: []string{"admin", "employee"}, TOTPEnrolled: true},
				Roles: builtinRoles, PasswordOK: true, Cert: validCert("alice")},
			want: Decision{Allow: true, Factors: []string{"password", "certificate"}, Next: StepTOTP, AuditReason: "totp_required"},
		},
		{
			name: "TOTP enrolled and verified adds the factor",
			in: Input{Account: Account{Name: "alice", Roles: []string{"employee"}, TOTPEnrolled: true},
				Roles: builtinRoles, PasswordOK: true, TOTPOK: true},
			want: Decision{Allow: true, Factors: []string{"password", "totp"}, EffectiveRoles: []string{"employee"}, AuditReason: "ok"},
		},
		{
			name: "role requiring TOTP without enrollment prompts enrollment and keeps other roles",
			in: Input{Account: Account{Name: "alice", Roles: []string{"employee", "finance"}},
				Roles: append([]Role{{Name: "finance", RequireTOTP: true}}, builtinRoles...), PasswordOK: true},
			want:      Decision{Allow: true, Factors: []string{"password"}, EffectiveRoles: []string{"employee"}, Next: StepEnrollTOTP, AuditReason: "ok"},
			noticeHas: []string{"finance access needs a TOTP code; enroll TOTP"},
		},
		{
			name: "role requiring certificate and TOTP needs both",
			in: Input{Account: Account{Name: "alice", Roles: []string{"vault"}, TOTPEnrolled: true},
				Roles: []Role{{Name: "vault", RequireCertificate: true, RequireTOTP: true}}, PasswordOK: true, TOTPOK: true},
			want:      Decision{Allow: true, Factors: []string{"password", "totp"}, AuditReason: "ok"},
			noticeHas: []string{"vault access needs your certificate"},
		},
		{
			name:      "must change password asks for the change step",
			in:        Input{Account: Account{Name: "alice", Roles: []string{"employee"}, MustChangePassword: true}, Roles: builtinRoles, PasswordOK: true},
			want:      Decision{Allow: true, Factors: []string{"password"}, EffectiveRoles: []string{"employee"}, Next: StepChangePassword, AuditReason: "ok"},
			noticeHas: []string{"choose a new password"},
		},
		{
			name: "role named on the account but not defined is not granted",
			in:   Input{Account: Account{Name: "alice", Roles: []string{"employee", "ghost"}}, Roles: builtinRoles, PasswordOK: true},
			want: Decision{Allow: true, Factors: []string{"password"}, EffectiveRoles: []string{"employee"}, AuditReason: "ok"},
		},
		{
			name: "certificate matched by SAN email",
			in: Input{Account: Account{Name: "alice", Email: "Alice@Example.com", Roles: []string{"admin"}}, Roles: builtinRoles, PasswordOK: true,
				Cert: CertResult{Status: CertValid, Info: &CertInfo{CommonName: "Alice Liddell", Emails: []string{"alice@example.com"}, NotAfter: decideNow.Add(30 * 24 * time.Hour)}}},
			want: Decision{Allow: true, Factors: []string{"password", "certificate"}, EffectiveRoles: []string{"admin"}, AuditReason: "ok"},
		},
		{
			name: "session replayed without its certificate loses certificate roles",
			in: Input{Account: admin, Roles: builtinRoles, PasswordOK: true,
				Cert: CertResult{Status: CertAbsent}.ForSession("sha256:00")},
			want:      Decision{Allow: true, Factors: []string{"password"}, EffectiveRoles: []string{"employee"}, AuditReason: "ok_certificate_session_mismatch"},
			noticeHas: []string{"did not present the certificate you signed in with", "admin access needs your certificate"},
		},
		{
			name: "session replayed with another valid certificate loses certificate roles",
			in: Input{Account: admin, Roles: builtinRoles, PasswordOK: true,
				Cert: CertResult{Status: CertValid, Info: &CertInfo{CommonName: "alice", Fingerprint: "sha256:11"}}.ForSession("sha256:00")},
			want:      Decision{Allow: true, Factors: []string{"password"}, EffectiveRoles: []string{"employee"}, AuditReason: "ok_certificate_session_mismatch"},
			noticeHas: []string{"different certificate"},
		},
		{
			name: "session that signed in without a certificate keeps explaining a failing one",
			in: Input{Account: admin, Roles: builtinRoles, PasswordOK: true,
				Cert: CertResult{Status: CertUnknownIssuer, Notice: "your certificate was not issued by a certificate authority this portal trusts"}.ForSession("")},
			want:      Decision{Allow: true, Factors: []string{"password"}, EffectiveRoles: []string{"employee"}, AuditReason: "ok_certificate_unknown_issuer"},
			noticeHas: []string{"not issued by a certificate authority this portal trusts", "admin access needs your certificate"},
		},
		{
			name: "session that signed in without a certificate does not gain one mid-session",
			in: Input{Account: admin, Roles: builtinRoles, PasswordOK: true,
				Cert: validCert("alice").ForSession("")},
			want:      Decision{Allow: true, Factors: []string{"password"}, EffectiveRoles: []string{"employee"}, AuditReason: "ok"},
			noticeHas: []string{"admin access needs your certificate"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.in.Now = now
			got := Decide(tc.in)
			opts := cmp.Options{
				cmpopts.IgnoreFields(Decision{}, "Notices", "Cert"),
				cmpopts.EquateEmpty(),
			}
			if diff := cmp.Diff(tc.want, got, opts); diff != "" {
				t.Errorf("Decide() mismatch (-want +got):\n%s", diff)
			}
			all := strings.Join(got.Notices, " | ")
			for _, s := range tc.noticeHas {
				if !strings.Contains(all, s) {
					t.Errorf("notices %q lack %q", all, s)
				}
			}
			if len(tc.noticeHas) == 0 && len(got.Notices) > 0 && got.Allow {
				t.Errorf("unexpected notices %q", all)
			}
		})
	}
}

// TestDecide_CertificateAloneNeverSignsIn checks that a valid, bound
// certificate without the password grants nothing.
func TestDecide_CertificateAloneNeverSignsIn(t *testing.T) {
	d := Decide(Input{Account: Account{Name: "alice", Roles: []string{"admin"}}, Roles: builtinRoles, Cert: validCert("alice")})
	if d.Allow || len(d.EffectiveRoles) > 0 || len(d.Factors) > 0 {
		t.Fatalf("certificate alone: got %+v", d)
	}
}

func TestJoinAnd(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "a", "a,b": "a and b", "a,b,c": "a, b and c"} {
		var parts []string
		if in != "" {
			parts = strings.Split(in, ",")
		}
		if got := joinAnd(parts); got != want {
			t.Errorf("joinAnd(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	in := Input{Account: Account{Name: "alice", Roles: []string{"admin", "employee"}}, Roles: builtinRoles, PasswordOK: true, Cert: validCert("alice"), Now: time.Now()}
	for b.Loop() {
		Decide(in)
	}
}
