package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"software.sslmate.com/src/go-pkcs12"

	"gatehouse/auth/ca"
)

func TestCLI_WorksAgainstRunningServer(t *testing.T) {
	t.Parallel()
	p := startPortal(t)

	// An account made while the server runs can sign in at once.
	const carolPassword = "a long passphrase for carol, 2026"
	p.cli(t, carolPassword+"\n", "user", "add", "carol", "--role", "employee", "--password-stdin")
	list := p.cli(t, "", "user", "list")
	if !regexp.MustCompile(`(?m)^carol\s+employee\s`).MatchString(list) {
		t.Fatalf("user list does not show carol with role employee:\n%s", list)
	}
	phone := p.client(t, nil)
	wantRedirect(t, phone.login(t, "carol", carolPassword), "/")
	if diff := cmp.Diff([]string{"employee"}, phone.session(t).EffectiveRoles); diff != "" {
		t.Errorf("carol's effective_roles (-want +got):\n%s", diff)
	}

	// A new role that needs a certificate, granted while carol's session
	// is live: the session is re-evaluated on its next request.
	p.cli(t, "", "role", "set", "auditors", "--require-certificate")
	p.cli(t, "", "user", "roles", "carol", "--role", "employee", "--role", "auditors")
	s := phone.session(t)
	if diff := cmp.Diff([]string{"auditors", "employee"}, s.Roles); diff != "" {
		t.Errorf("carol's roles after the change (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"employee"}, s.EffectiveRoles); diff != "" {
		t.Errorf("carol's effective_roles without a certificate (-want +got):\n%s", diff)
	}
	wantNotice(t, s, "auditors access needs your certificate")

	// A certificate issued while the server runs counts at once.
	prefix := filepath.Join(t.TempDir(), "carol")
	out := p.cli(t, "", "cert", "issue", "carol", "--out", prefix)
	for _, ext := range []string{".crt", ".key", ".p12"} {
		if _, err := os.Stat(prefix + ext); err != nil {
			t.Errorf("cert issue did not write %s%s: %v", prefix, ext, err)
		}
	}
	m := regexp.MustCompile(`import password for .*\.p12: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("cert issue printed no import password:\n%s", out)
	}
	p12, err := os.ReadFile(prefix + ".p12")
	if err != nil {
		t.Fatal(err)
	}
	if _, leaf, _, err := pkcs12.DecodeChain(p12, m[1]); err != nil {
		t.Errorf("the printed import password does not open %s.p12: %v", prefix, err)
	} else if leaf.Subject.CommonName != "carol" {
		t.Errorf("%s.p12 holds a certificate for %q, want carol", prefix, leaf.Subject.CommonName)
	}
	carolCert := loadCert(t, prefix)
	laptop := p.client(t, &carolCert)
	wantRedirect(t, laptop.login(t, "carol", carolPassword), "/")
	s = laptop.session(t)
	if diff := cmp.Diff([]string{"auditors", "employee"}, s.EffectiveRoles); diff != "" {
		t.Errorf("carol's effective_roles with her certificate (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"password", "certificate"}, s.Factors); diff != "" {
		t.Errorf("carol's factors with her certificate (-want +got):\n%s", diff)
	}

	// An account made without a password gets a temporary one that must
	// be changed before anything else.
	out = p.cli(t, "", "user", "add", "dave", "--role", "employee")
	m = regexp.MustCompile(`temporary password: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("user add without a password printed no temporary password:\n%s", out)
	}
	dave := p.client(t, nil)
	wantRedirect(t, dave.login(t, "dave", m[1]), "/account/password")
	wantRedirect(t, dave.get(t, "/"), "/account/password")
}

func TestServe_InitialisesEmptyDataDirOnFirstStart(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	if err := os.Mkdir(p.Data, 0o700); err != nil {
		t.Fatal(err)
	}
	p.serve(t) // no "gatehouse init" first

	credsPath := filepath.Join(p.Data, "initial-admin.txt")
	if out := p.serverStdout(t); !strings.Contains(out, credsPath) {
		t.Errorf("serve's output does not say where the credentials are (%s):\n%s", credsPath, out)
	}
	fi, err := os.Stat(credsPath)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("initial-admin.txt has mode %v, want 0600", mode)
	}
	for _, name := range []string{
		"pki/ca.crt", "pki/ca.key", "pki/server.crt", "pki/server.key",
		"initial-admin.crt", "initial-admin.key", "initial-admin.p12",
	} {
		if _, err := os.Stat(filepath.Join(p.Data, name)); err != nil {
			t.Errorf("DATA/%s: %v", name, err)
		}
	}
	keyPEM, err := os.ReadFile(filepath.Join(p.Data, "pki", "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ca.ParseKeyPEM(keyPEM)
	if err != nil {
		t.Fatalf("DATA/pki/ca.key: %v", err)
	}
	if ec, ok := key.(*ecdsa.PrivateKey); !ok || ec.Curve != elliptic.P256() {
		t.Errorf("DATA/pki/ca.key is a %T, want an ECDSA P-256 key", key)
	}

	// The credentials it printed work: the first admin signs in with the
	// certificate and gets admin.
	p.readAdminCredentials(t)
	cert := p.adminCert(t)
	c := p.client(t, &cert)
	wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
	if s := c.session(t); !slices.Contains(s.EffectiveRoles, "admin") {
		t.Errorf("the first admin's effective_roles = %q, want admin among them", s.EffectiveRoles)
	}
}
