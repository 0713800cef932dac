package tests

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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

// cliFails runs a gatehouse command that must fail, and returns what it
// wrote to standard error.
func (p *portal) cliFails(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := p.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("gatehouse %s succeeded, want it to fail\nstdout:\n%s", strings.Join(args, " "), stdout.String())
	}
	return stderr.String()
}

// The command line refuses an email that another account has, whatever
// its case, on either store, and says so in plain words.
func TestCLI_UserAddRefusesAnEmailAnotherAccountHas(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		new  func(t *testing.T) *portal
	}{
		{"embedded store", func(t *testing.T) *portal {
			dir := t.TempDir()
			return &portal{Data: filepath.Join(dir, "data"), bin: gatehouseBinary(t), logDir: dir}
		}},
		{"redis store", func(t *testing.T) *portal { return newPortal(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.new(t)
			p.cli(t, "", "init")
			p.cli(t, "", "user", "add", "alice", "--role", "employee", "--email", "alice@example.com")
			stderr := p.cliFails(t, "user", "add", "dupe", "--role", "admin", "--email", "ALICE@Example.com")
			if !strings.Contains(stderr, "another account already uses the email ALICE@Example.com") {
				t.Errorf("user add with alice's email in capitals: stderr %q, want it to say another account already uses the email", stderr)
			}
			if list := p.cli(t, "", "user", "list"); regexp.MustCompile(`(?m)^dupe\s`).MatchString(list) {
				t.Errorf("the refused account is listed:\n%s", list)
			}
			p.cli(t, "", "user", "add", "dupe", "--role", "employee", "--email", "dupe@example.com")
		})
	}
}

func TestServe_InitialisesEmptyDataDirOnFirstStart(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	if err := os.Mkdir(p.Data, 0o700); err != nil {
		t.Fatal(err)
	}
	p.serve(t) // no "gatehouse init" first

	credsPath := filepath.Join(p.Data, "initial-admin.txt")
	// The first sign-in, with the file's password, asks for the admin's own.
	p.readAdminCredentialsFile(t)
	p.firstAdminSignIn(t, p.client(t, nil))
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

// auditEvent is one line of "gatehouse audit": the fields the tests look
// at, decoded independently of the portal's own types.
type auditEvent struct {
	ID              string    `json:"id"`
	Time            time.Time `json:"time"`
	Action          string    `json:"action"`
	Outcome         string    `json:"outcome"`
	Actor           string    `json:"actor"`
	ActorFactors    []string  `json:"actor_factors"`
	Target          string    `json:"target"`
	Reason          string    `json:"reason"`
	CertFingerprint string    `json:"cert_fingerprint"`
	CertStatus      string    `json:"cert_status"`
	Notices         []string  `json:"notices"`
}

// audit runs "gatehouse audit --limit N" and returns the events, newest
// first, and the raw output (to search for what must never be in it).
func (p *portal) audit(t *testing.T, limit int) ([]auditEvent, string) {
	t.Helper()
	out := p.cli(t, "", "audit", "--limit", strconv.Itoa(limit))
	var events []auditEvent
	for line := range strings.Lines(out) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var e auditEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("gatehouse audit printed a line that is not JSON: %v\n%s", err, line)
		}
		events = append(events, e)
	}
	return events, out
}

// certRow is one line of "gatehouse cert list".
type certRow struct {
	User, Serial, NotAfter, Status, Fingerprint string
}

// certList runs "gatehouse cert list [NAME]" and parses its table:
// USER SERIAL NOT-AFTER STATUS… FINGERPRINT, where the status may be
// more than one word ("revoked 2026-05-03").
func (p *portal) certList(t *testing.T, args ...string) []certRow {
	t.Helper()
	out := p.cli(t, "", append([]string{"cert", "list"}, args...)...)
	var rows []certRow
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if i == 0 {
			if len(f) == 0 || f[0] != "USER" {
				t.Fatalf("cert list printed no header line:\n%s", out)
			}
			continue
		}
		if len(f) < 5 {
			t.Fatalf("cert list line %q has fewer than 5 columns:\n%s", line, out)
		}
		rows = append(rows, certRow{User: f[0], Serial: f[1], NotAfter: f[2],
			Status: strings.Join(f[3:len(f)-1], " "), Fingerprint: f[len(f)-1]})
	}
	return rows
}

// certRowOf returns the cert list row with that fingerprint.
func (p *portal) certRowOf(t *testing.T, fingerprint string) certRow {
	t.Helper()
	rows := p.certList(t)
	for _, r := range rows {
		if r.Fingerprint == fingerprint {
			return r
		}
	}
	t.Fatalf("cert list has no certificate %s: %+v", fingerprint, rows)
	return certRow{}
}
