package server_test

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/store"
	"gatehouse/tests/certtest"
)

// sessionView is what the tests below read of GET /api/session.
type sessionView struct {
	Factors        []string        `json:"factors"`
	EffectiveRoles []string        `json:"effective_roles"`
	Certificate    json.RawMessage `json:"certificate"`
	Notices        []string        `json:"notices"`
}

func (b *browser) sessionView(t *testing.T) sessionView {
	t.Helper()
	r := b.get("/api/session")
	wantStatus(t, "GET /api/session", r, http.StatusOK)
	var v sessionView
	if err := json.Unmarshal([]byte(r.Body), &v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	return v
}

// putLegacyAccount writes an account straight into Redis, as a gatehouse
// from before emails were unique could have: beside another account with
// the same email.
func (p *portal) putLegacyAccount(t *testing.T, a store.Account) {
	t.Helper()
	opt, err := redis.ParseURL(p.redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(t.Context(), "gatehouse:account:"+a.Name, b, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SAdd(t.Context(), "gatehouse:accounts", a.Name).Err(); err != nil {
		t.Fatal(err)
	}
}

// A certificate whose names match more than one account counts for none
// of them: signing in with it gives the password's roles only, a notice
// that says why (on that request and the ones after it), a warning in the
// audit trail and in the log.
func TestLogin_CertificateNamingMoreThanOneAccountCountsForNone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// cert is the certificate's common name and SAN email.
		cn, email string
		// setup makes the second account the certificate names.
		setup func(t *testing.T, p *portal)
	}{
		{
			name: "one account's name and another's email",
			cn:   "dupe", email: "ADMIN@example.com",
			setup: func(t *testing.T, p *portal) { p.addAccount("dupe", "a long passphrase for dupe, 2026", "employee") },
		},
		{
			name: "an email two accounts shared before emails were unique",
			cn:   "Alex Admin", email: "admin@example.com",
			setup: func(t *testing.T, p *portal) {
				hash, err := p.hasher.Hash(t.Context(), "a long passphrase for dupe, 2026")
				if err != nil {
					t.Fatal(err)
				}
				p.putLegacyAccount(t, store.Account{Name: "dupe", Email: "Admin@Example.com", PasswordHash: hash, Roles: []string{"employee"}})
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPortal(t)
			err := p.store.UpdateAccount(t.Context(), "admin", func(a *store.Account) error {
				a.Email = "admin@example.com"
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(t, p)
			issued, err := p.ca.IssueClient(ca.ClientRequest{Name: tc.cn, Email: tc.email}, p.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			cert := tlsCertificate(issued)

			for _, user := range []struct{ name, password string }{{"admin", adminPassword}, {"dupe", "a long passphrase for dupe, 2026"}} {
				b := p.browser(cert)
				b.login(user.name, user.password)
				for _, when := range []string{"after sign-in", "on a later request"} {
					v := b.sessionView(t)
					if !slices.Equal(v.Factors, []string{auth.FactorPassword}) || !slices.Equal(v.EffectiveRoles, []string{"employee"}) || string(v.Certificate) != "null" {
						t.Errorf("%s %s: factors %q, effective roles %q, certificate %s; want the password alone, employee, no certificate",
							user.name, when, v.Factors, v.EffectiveRoles, v.Certificate)
					}
					if !slices.ContainsFunc(v.Notices, func(n string) bool { return strings.Contains(n, "names more than one account, so it does not count") }) {
						t.Errorf("%s %s: notices %q, want one saying the certificate names more than one account", user.name, when, v.Notices)
					}
				}
				page, err := p.store.Audit(t.Context(), store.AuditQuery{Actor: user.name, Action: "login", Limit: 1})
				events := page.Items
				if err != nil || len(events) != 1 {
					t.Fatalf("login event of %s: %v, %v", user.name, events, err)
				}
				if e := events[0]; e.Outcome != "warning" || e.CertStatus != "ambiguous" || e.CertFingerprint != auth.Fingerprint(issued.Cert.Raw) {
					t.Errorf("login event of %s = %+v, want outcome warning, cert_status ambiguous and the certificate's fingerprint", user.name, e)
				}
			}
			if logs := p.logs.String(); !strings.Contains(logs, "certificate names more than one account") || !strings.Contains(logs, "accounts=admin,dupe") {
				t.Errorf("the log has no warning naming both accounts:\n%s", logs)
			}
		})
	}
}

// A certificate pinned by fingerprint on one account and naming another
// by its SAN email counts for neither, in whichever encoding it comes:
// re-encoding its ECDSA signature (s -> n-s), which anyone holding it can
// do, gives it another fingerprint but must not shake off the pin and
// leave it to the account its email names. A pin made from the
// re-encoded twin holds the same way, and an encoding that is not DER
// (which Go's parser takes) does not count at all.
func TestLogin_CertificatePinnedOnOneAccountAndNamingAnotherCountsForNeitherInAnyEncoding(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	ctx := t.Context()
	if err := p.store.UpdateAccount(ctx, "admin", func(a *store.Account) error {
		a.Email = "admin@example.com"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	issued, err := p.ca.IssueClient(ca.ClientRequest{Name: "laptop-0042", Email: "admin@example.com"}, p.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	twinDER, err := certtest.ReencodeSignature(issued.Cert, p.ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	notDER, err := certtest.AppendInsideCertificate(issued.Cert, []byte{0x05, 0x00})
	if err != nil {
		t.Fatal(err)
	}
	encoding := func(der []byte) *ca.Issued {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		is := *issued
		is.Cert = c
		return &is
	}
	p.addAccount("dupe", "a long passphrase for dupe, 2026", "employee")

	for _, tc := range []struct {
		name          string
		pin           []byte // the encoding whose fingerprint dupe pins
		presented     *ca.Issued
		wantAmbiguous bool // else: does not count at all
	}{
		{"pin of the original, original presented", issued.Cert.Raw, issued, true},
		{"pin of the original, re-encoded twin presented", issued.Cert.Raw, encoding(twinDER), true},
		{"pin of the twin, original presented", twinDER, issued, true},
		{"pin of the original, an encoding that is not DER presented", issued.Cert.Raw, encoding(notDER), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.store.UpdateAccount(ctx, "dupe", func(a *store.Account) error {
				a.PinnedFingerprints = []string{auth.Fingerprint(tc.pin)}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			b := p.browser(tlsCertificate(tc.presented))
			b.login("admin", adminPassword)
			v := b.sessionView(t)
			if !slices.Equal(v.Factors, []string{auth.FactorPassword}) || !slices.Equal(v.EffectiveRoles, []string{"employee"}) {
				t.Errorf("factors %q, effective roles %q; want the password alone and employee: the certificate (pinned on dupe, named for admin) counts for neither",
					v.Factors, v.EffectiveRoles)
			}
			ambiguous := slices.ContainsFunc(v.Notices, func(n string) bool { return strings.Contains(n, "names more than one account") })
			if ambiguous != tc.wantAmbiguous {
				t.Errorf("notices %q; want one saying the certificate names more than one account: %t", v.Notices, tc.wantAmbiguous)
			}
		})
	}
}
