package tests

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const carolPassword = "a long passphrase for carol, 2026"

func TestRoleChanges_ReevaluateLiveSessions(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	p.cli(t, "", "role", "set", "auditors")
	p.cli(t, carolPassword+"\n", "user", "add", "carol", "--role", "employee", "--role", "auditors", "--password-stdin")

	adminCert := p.adminCert(t)
	admin := p.client(t, &adminCert)
	wantRedirect(t, admin.login(t, "admin", p.AdminPassword), "/")
	carol := p.client(t, nil) // a phone: password only
	wantRedirect(t, carol.login(t, "carol", carolPassword), "/")
	wantEffective(t, "carol at first", carol.session(t), "auditors", "employee")

	// employee now needs a certificate: the certificate session keeps it,
	// the password-only session loses it on its next request.
	p.cli(t, "", "role", "set", "employee", "--require-certificate")
	wantEffective(t, "admin (certificate) after employee needs one", admin.session(t), "admin", "employee")
	s := carol.session(t)
	wantEffective(t, "carol (password) after employee needs a certificate", s, "auditors")
	wantNotice(t, s, "employee access needs your certificate")

	p.cli(t, "", "role", "set", "employee", "--require-certificate=false")
	s = carol.session(t)
	wantEffective(t, "carol after employee no longer needs a certificate", s, "auditors", "employee")
	if len(s.Notices) != 0 {
		t.Errorf("carol's notices after the requirement was lifted = %q, want none", s.Notices)
	}

	p.cli(t, "", "role", "delete", "auditors")
	wantEffective(t, "carol after auditors was deleted", carol.session(t), "employee")
	wantEffective(t, "admin after auditors was deleted", admin.session(t), "admin", "employee")

	// A second live session of carol's that makes no request while she
	// is disabled.
	carolLaptop := p.client(t, nil)
	wantRedirect(t, carolLaptop.login(t, "carol", carolPassword), "/")
	idle := carolLaptop.cookieValue(t)

	p.cli(t, "", "user", "disable", "carol")
	wantUnauthenticated(t, carol.get(t, "/api/session"))
	if s := admin.session(t); !slices.Contains(s.EffectiveRoles, "admin") {
		t.Errorf("disabling carol changed the admin's session: %+v", s)
	}

	// Disabling revokes her sessions (SPEC, Sessions): enabling the
	// account again does not bring a session back, whether or not it
	// made a request in between.
	p.cli(t, "", "user", "enable", "carol")
	wantUnauthenticated(t, carol.get(t, "/api/session"))
	wantUnauthenticated(t, carolLaptop.withCookie(t, "GET", "/api/session", nil, idle))
}

// wantEffective checks a session's effective roles.
func wantEffective(t *testing.T, who string, s sessionInfo, roles ...string) {
	t.Helper()
	if diff := cmp.Diff(roles, s.EffectiveRoles); diff != "" {
		t.Errorf("%s: effective_roles (-want +got):\n%s", who, diff)
	}
}
