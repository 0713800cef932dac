package server

import (
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
)

func TestOIDCClaims_AMRAndACRFollowTheFactors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		factors []string
		amr     []string
		acr     string
	}{
		{"password only", []string{auth.FactorPassword}, []string{"pwd"}, oidcACRPassword},
		{"password and TOTP", []string{auth.FactorPassword, auth.FactorTOTP}, []string{"pwd", "otp", "mfa"}, oidcACRMultiFactor},
		{"password and certificate", []string{auth.FactorPassword, auth.FactorCertificate}, []string{"pwd", "swk", "mfa"}, oidcACRCertificate},
		{"all three", []string{auth.FactorPassword, auth.FactorCertificate, auth.FactorTOTP}, []string{"pwd", "swk", "otp", "mfa"}, oidcACRCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := amrOf(tc.factors); !slices.Equal(got, tc.amr) {
				t.Errorf("amrOf(%q) = %q, want %q", tc.factors, got, tc.amr)
			}
			if got := acrOf(tc.factors); got != tc.acr {
				t.Errorf("acrOf(%q) = %q, want %q", tc.factors, got, tc.acr)
			}
			if got := factorsOfAMR(amrOf(tc.factors)); !slices.Equal(got, tc.factors) {
				t.Errorf("factorsOfAMR(amrOf(%q)) = %q", tc.factors, got)
			}
		})
	}
}

func TestOIDCClient_RedirectURIRules(t *testing.T) {
	for _, tc := range []struct {
		uri    string
		public bool
		ok     bool
	}{
		{"https://grafana.example.com/login/generic_oauth", false, true},
		{"https://grafana.example.com:3000/cb?tenant=a", false, true},
		{"http://grafana.example.com/cb", false, false},
		{"http://127.0.0.1:8000/cb", false, false},
		{"http://127.0.0.1:8000/cb", true, true},
		{"http://[::1]:8000/cb", true, true},
		{"http://localhost.evil.example/cb", true, false},
		{"https://app.example.com/cb#frag", false, false},
		{"https://user:pw@app.example.com/cb", false, false},
		{"/relative/cb", false, false},
		{"javascript:alert(1)", false, false},
	} {
		err := CheckRedirectURI(tc.uri, tc.public)
		if (err == nil) != tc.ok {
			t.Errorf("CheckRedirectURI(%q, public %t) = %v, want ok %t", tc.uri, tc.public, err, tc.ok)
		}
	}
}

func TestOIDCClient_SecretShownOnceAndKeptAsHash(t *testing.T) {
	now := time.Date(2026, 5, 3, 12, 0, 0, 0, time.UTC)
	uris := []string{"https://grafana.example.com/login/generic_oauth"}
	c, secret, err := NewOIDCClient(nil, "grafana", uris, []string{"employee"}, false, false, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) < 40 || c.SecretHash != secretHash(secret) || strings.Contains(c.SecretHash, secret) {
		t.Fatalf("new client: secret %q, hash %q; want a long secret kept only as its hash", secret, c.SecretHash)
	}
	again, secret2, err := NewOIDCClient(&c, "grafana", uris, []string{"employee", "admin"}, false, false, now.Add(time.Hour))
	if err != nil || secret2 != "" || again.SecretHash != c.SecretHash || !again.CreatedAt.Equal(now) {
		t.Errorf("changed client: secret %q, hash kept %t, created %v, err %v; want no new secret and the old hash", secret2, again.SecretHash == c.SecretHash, again.CreatedAt, err)
	}
	rotated, secret3, err := NewOIDCClient(&c, "grafana", uris, []string{"employee"}, false, true, now)
	if err != nil || secret3 == "" || rotated.SecretHash == c.SecretHash {
		t.Errorf("new secret asked for: got %q, hash changed %t, err %v", secret3, rotated.SecretHash != c.SecretHash, err)
	}
	public, secret4, err := NewOIDCClient(&c, "grafana", uris, []string{"employee"}, true, false, now)
	if err != nil || secret4 != "" || public.SecretHash != "" {
		t.Errorf("public client: secret %q, hash %q, err %v; want neither", secret4, public.SecretHash, err)
	}
	for _, bad := range []struct {
		id    string
		uris  []string
		roles []string
	}{
		{"Bad Name", uris, []string{"employee"}},
		{"grafana", nil, []string{"employee"}},
		{"grafana", uris, nil},
	} {
		if _, _, err := NewOIDCClient(nil, bad.id, bad.uris, bad.roles, false, false, now); err == nil {
			t.Errorf("NewOIDCClient(%q, %q, %q) succeeded, want an error", bad.id, bad.uris, bad.roles)
		}
	}
}
