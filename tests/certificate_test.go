package tests

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	erinPassword = "a long passphrase for erin, 2026"
	bobPassword  = "a long passphrase for bob, 2026"
)

// enterprisePKI is a company's own PKI: an offline root the portal is
// told to trust, and an issuing intermediate that signs the certificates
// people and devices use (and that the portal is not told about).
type enterprisePKI struct {
	root, issuing *testCA
	// rootFile holds the root certificate, for --client-ca.
	rootFile string
}

func newEnterprisePKI(t *testing.T) *enterprisePKI {
	t.Helper()
	root := newRootCA(t, "Corp Example Root CA", nil)
	e := &enterprisePKI{
		root:     root,
		issuing:  root.newIntermediate(t, "Corp Example Issuing CA 1"),
		rootFile: filepath.Join(t.TempDir(), "corp-root.crt"),
	}
	writeCertPEM(t, e.rootFile, root.Cert)
	return e
}

// issue signs tmpl for a new key with the issuing CA; the client
// presents the leaf and the intermediate.
func (e *enterprisePKI) issue(t *testing.T, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	return e.issuing.issue(t, tmpl, nil, e.issuing.Cert)
}

// startEnterprisePortal starts a portal that trusts the enterprise root
// and its own built-in CA, with erin (employee and secure, a role that
// needs a certificate) and bob (employee). flags are more serve flags.
func startEnterprisePortal(t *testing.T, e *enterprisePKI, flags ...string) *portal {
	t.Helper()
	p := initPortal(t)
	p.start(t, append([]string{"--client-ca", e.rootFile, "--client-ca", filepath.Join(p.Data, "pki", "ca.crt")}, flags...)...)
	p.cli(t, erinPassword+"\n", "user", "add", "erin", "--role", "employee", "--email", "erin@corp.example", "--password-stdin")
	p.cli(t, bobPassword+"\n", "user", "add", "bob", "--role", "employee", "--password-stdin")
	p.cli(t, "", "role", "set", "secure", "--require-certificate")
	p.cli(t, "", "user", "roles", "erin", "--role", "employee", "--role", "secure")
	return p
}

// loginSession signs in as user with password over a new client that
// presents cert (none when nil), and returns the session.
func loginSession(t *testing.T, p *portal, cert *tls.Certificate, user, password string) sessionInfo {
	t.Helper()
	c := p.client(t, cert)
	wantRedirect(t, c.login(t, user, password), "/")
	if cert != nil && c.certRequests.Load() == 0 {
		t.Fatal("the server never asked for a client certificate, so none was presented")
	}
	return c.session(t)
}

// wantCertificateCounts checks a session in which the certificate cert
// counted.
func wantCertificateCounts(t *testing.T, s sessionInfo, cert tls.Certificate, effective ...string) {
	t.Helper()
	if diff := cmp.Diff([]string{"password", "certificate"}, s.Factors); diff != "" {
		t.Errorf("factors (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(effective, s.EffectiveRoles); diff != "" {
		t.Errorf("effective_roles (-want +got):\n%s", diff)
	}
	if want := fingerprint(leafOf(t, cert)); s.Certificate == nil || s.Certificate.Fingerprint != want {
		t.Errorf("certificate = %+v, want fingerprint %s", s.Certificate, want)
	}
	if len(s.Notices) != 0 {
		t.Errorf("notices = %q, want none", s.Notices)
	}
}

// wantCertificateIgnored checks a session in which the presented
// certificate did not count: the password alone, and a notice saying why.
func wantCertificateIgnored(t *testing.T, s sessionInfo, notice string, effective ...string) {
	t.Helper()
	if diff := cmp.Diff([]string{"password"}, s.Factors); diff != "" {
		t.Errorf("factors (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(effective, s.EffectiveRoles); diff != "" {
		t.Errorf("effective_roles (-want +got):\n%s", diff)
	}
	if s.Certificate != nil {
		t.Errorf("certificate = %+v, want null", s.Certificate)
	}
	wantNotice(t, s, notice)
}

func TestClientCAs_EnterprisePKIWithIntermediate(t *testing.T) {
	t.Parallel()
	e := newEnterprisePKI(t)
	p := startEnterprisePortal(t, e)
	erinCert := e.issue(t, clientTemplate("Erin Example", "erin@corp.example"))

	t.Run("leaf and intermediate presented", func(t *testing.T) {
		t.Parallel()
		s := loginSession(t, p, &erinCert, "erin", erinPassword)
		wantCertificateCounts(t, s, erinCert, "employee", "secure")
	})

	t.Run("leaf without its intermediate", func(t *testing.T) {
		t.Parallel()
		leafOnly := tls.Certificate{Certificate: erinCert.Certificate[:1], PrivateKey: erinCert.PrivateKey}
		s := loginSession(t, p, &leafOnly, "erin", erinPassword)
		wantCertificateIgnored(t, s, "not issued by a certificate authority this portal trusts", "employee")
		wantNotice(t, s, "secure access needs your certificate")
	})

	t.Run("the built-in CA still counts beside it", func(t *testing.T) {
		t.Parallel()
		adminCert := p.adminCert(t)
		s := loginSession(t, p, &adminCert, "admin", p.AdminPassword)
		wantCertificateCounts(t, s, adminCert, "admin", "employee")
	})
}

func TestBinding_PinnedKeyAndNotices(t *testing.T) {
	t.Parallel()
	e := newEnterprisePKI(t)
	p := startEnterprisePortal(t, e)

	// A device certificate: it names the laptop, not a person.
	deviceKey := newKey(t)
	device := e.issuing.issue(t, clientTemplate("LAPTOP-0042"), deviceKey, e.issuing.Cert)

	s := loginSession(t, p, &device, "erin", erinPassword)
	wantCertificateIgnored(t, s, "is not linked to this account", "employee")
	wantNotice(t, s, "LAPTOP-0042")

	deviceFile := filepath.Join(t.TempDir(), "laptop-0042.pem")
	writeCertPEM(t, deviceFile, leafOf(t, device))
	p.cli(t, "", "user", "pin", "erin", "--cert", deviceFile)

	t.Run("pinned certificate counts", func(t *testing.T) {
		t.Parallel()
		s := loginSession(t, p, &device, "erin", erinPassword)
		wantCertificateCounts(t, s, device, "employee", "secure")
	})

	t.Run("renewal with the same key counts", func(t *testing.T) {
		t.Parallel()
		tmpl := clientTemplate("LAPTOP-0042")
		tmpl.NotAfter = tmpl.NotAfter.Add(30 * 24 * time.Hour)
		renewed := e.issuing.issue(t, tmpl, deviceKey, e.issuing.Cert)
		if leafOf(t, renewed).SerialNumber.Cmp(leafOf(t, device).SerialNumber) == 0 {
			t.Fatal("the renewed certificate has the same serial")
		}
		s := loginSession(t, p, &renewed, "erin", erinPassword)
		wantCertificateCounts(t, s, renewed, "employee", "secure")
	})

	t.Run("same name with another key is not linked", func(t *testing.T) {
		t.Parallel()
		other := e.issue(t, clientTemplate("LAPTOP-0042"))
		s := loginSession(t, p, &other, "erin", erinPassword)
		wantCertificateIgnored(t, s, "is not linked to this account", "employee")
	})

	t.Run("another account signing in with it", func(t *testing.T) {
		t.Parallel()
		s := loginSession(t, p, &device, "bob", bobPassword)
		wantCertificateIgnored(t, s, "belongs to another account", "employee")

		events, raw := p.audit(t, 100)
		i := slices.IndexFunc(events, func(e auditEvent) bool { return e.Action == "login" && e.Actor == "bob" })
		if i < 0 {
			t.Fatalf("no login event of bob in the audit trail:\n%s", raw)
		}
		if ev := events[i]; ev.Outcome != "warning" || ev.CertFingerprint != fingerprint(leafOf(t, device)) {
			t.Errorf("bob's login event = %+v, want outcome warning and cert_fingerprint %s", ev, fingerprint(leafOf(t, device)))
		}
	})
}

func TestCertificateChecks_PlainWordsNotices(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	builtin := p.builtinCA(t)
	now := time.Now()
	const dateLayout = "2 January 2006"

	for _, tc := range []struct {
		name string
		// change alters a valid admin certificate.
		change     func(*x509.Certificate)
		notice     string
		certStatus string
	}{
		{
			name: "expired",
			change: func(c *x509.Certificate) {
				// Issued while the CA was already valid (it was made at
				// init, five minutes backdated), expired a minute ago.
				c.NotBefore = builtin.Cert.NotBefore
				c.NotAfter = now.Add(-time.Minute)
			},
			notice:     "your certificate expired on " + now.Add(-time.Minute).UTC().Format(dateLayout),
			certStatus: "expired",
		},
		{
			name:       "no extended key usage",
			change:     func(c *x509.Certificate) { c.ExtKeyUsage = nil },
			notice:     "not made for signing in",
			certStatus: "no_client_auth",
		},
		{
			name:       "server authentication only",
			change:     func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} },
			notice:     "not made for signing in",
			certStatus: "no_client_auth",
		},
		{
			name: "not yet valid",
			change: func(c *x509.Certificate) {
				c.NotBefore = now.Add(48 * time.Hour)
				c.NotAfter = now.Add(clientValidity)
			},
			notice:     "your certificate is not valid until " + now.Add(48*time.Hour).UTC().Format(dateLayout),
			certStatus: "not_yet_valid",
		},
	} {
		// One after the other, so that the newest login event in the
		// audit trail is this case's.
		t.Run(tc.name, func(t *testing.T) {
			tmpl := clientTemplate("admin")
			tc.change(tmpl)
			cert := builtin.issue(t, tmpl, nil)

			// The handshake succeeds and so does the login: a failed
			// certificate is treated as absent.
			c := p.client(t, &cert)
			r := c.get(t, "/login")
			wantStatus(t, r, http.StatusOK)
			wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
			if c.certRequests.Load() == 0 {
				t.Fatal("the server never asked for a client certificate, so none was presented")
			}
			s := c.session(t)
			wantCertificateIgnored(t, s, tc.notice, "employee")
			wantNotice(t, s, "admin access needs your certificate")

			events, raw := p.audit(t, 20)
			i := slices.IndexFunc(events, func(e auditEvent) bool { return e.Action == "login" })
			if i < 0 {
				t.Fatalf("no login event in the audit trail:\n%s", raw)
			}
			if ev := events[i]; ev.Actor != "admin" || ev.CertStatus != tc.certStatus || ev.Reason != "ok_certificate_"+tc.certStatus {
				t.Errorf("newest login event = %+v, want actor admin, cert_status %q, reason %q", ev, tc.certStatus, "ok_certificate_"+tc.certStatus)
			}
		})
	}
}
