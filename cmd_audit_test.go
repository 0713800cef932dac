package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/store"
)

// cliData is a data directory set up with "gatehouse init", for commands
// run the way main runs them.
type cliData struct {
	t    *testing.T
	data string
}

func newCLIData(t *testing.T) *cliData {
	t.Helper()
	d := &cliData{t: t, data: filepath.Join(t.TempDir(), "data")}
	d.run("", "init")
	return d
}

// run runs "gatehouse ARGS…" with stdin and returns its standard output.
// In args, {data} is the data directory and {admin-cert} the fingerprint
// of the first admin's certificate.
func (d *cliData) run(stdin string, args ...string) string {
	d.t.Helper()
	getenv := func(k string) string { return map[string]string{"GATEHOUSE_DATA": d.data}[k] }
	args = slices.Clone(args)
	for i, a := range args {
		a = strings.ReplaceAll(a, "{data}", d.data)
		if strings.Contains(a, "{admin-cert}") {
			a = strings.ReplaceAll(a, "{admin-cert}", d.adminCertFingerprint())
		}
		args[i] = a
	}
	var out bytes.Buffer
	if err := run(d.t.Context(), append([]string{"gatehouse"}, args...), getenv, strings.NewReader(stdin), &out, io.Discard); err != nil {
		d.t.Fatalf("gatehouse %s: %v", strings.Join(args, " "), err)
	}
	return out.String()
}

func (d *cliData) adminCertFingerprint() string {
	d.t.Helper()
	data, err := os.ReadFile(filepath.Join(d.data, "initial-admin.crt"))
	if err != nil {
		d.t.Fatal(err)
	}
	cert, err := ca.ParseCertPEM(data)
	if err != nil {
		d.t.Fatal(err)
	}
	return auth.Fingerprint(cert.Raw)
}

// audit returns the whole audit trail, newest first.
func (d *cliData) audit() []store.AuditEvent {
	d.t.Helper()
	st, err := openStore(&env{ctx: d.t.Context()}, &settings{data: d.data}, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	defer st.Close()
	page, err := st.Audit(d.t.Context(), store.AuditQuery{Limit: 1000})
	if err != nil {
		d.t.Fatal(err)
	}
	return page.Items
}

// shownOnce finds the secrets a command prints once: a temporary
// password, a .p12 import password, a client secret.
var shownOnce = regexp.MustCompile(`(?m)^(?:temporary password|import password for \S+|client secret \(shown once\)): (\S+)$`)

// Every command that changes an account, a role, a certificate, an app,
// a session or an OpenID Connect setting leaves exactly one audit event:
// actor cli, what was done to whom, what changed, success, the time of
// the change in UTC, and never a password, key or import password.
// Granting admin from a shell must not leave the trail silent, as it did
// for user add, user roles, user enable, user pin and unpin, role set,
// role delete and cert issue.
func TestCLI_EveryChangeIsAudited(t *testing.T) {
	const password = "velvet-harbour-quietly-47-lanterns"
	carol := []string{"user", "add", "carol", "--role", "employee"}
	tests := []struct {
		name   string
		setup  [][]string
		args   []string
		stdin  string
		action string
		// target and reason are regular expressions for the whole field.
		target, reason string
		// certificate: the event names a certificate by fingerprint.
		certificate bool
	}{
		{name: "user add", args: []string{"user", "add", "carol", "--role", "employee", "--role", "helpdesk", "--email", "carol@example.com"},
			action: "account.create", target: "carol", reason: `roles employee,helpdesk; email carol@example\.com; must change password`},
		{name: "user add with a password", args: []string{"user", "add", "carol", "--role", "employee", "--password-stdin"}, stdin: password + "\n",
			action: "account.create", target: "carol", reason: `roles employee`},
		{name: "user passwd", setup: [][]string{carol}, args: []string{"user", "passwd", "carol", "--password-stdin"}, stdin: password + "\n",
			action: "account.password.set", target: "carol", reason: `0 session\(s\) ended`},
		{name: "user roles", setup: [][]string{carol}, args: []string{"user", "roles", "carol", "--role", "admin", "--role", "employee"},
			action: "account.roles.set", target: "carol", reason: `roles employee -> admin,employee`},
		{name: "user disable", setup: [][]string{carol}, args: []string{"user", "disable", "carol"},
			action: "account.disable", target: "carol", reason: `0 session\(s\) ended`},
		{name: "user enable", setup: [][]string{carol, {"user", "disable", "carol"}}, args: []string{"user", "enable", "carol"},
			action: "account.enable", target: "carol"},
		{name: "user unlock", setup: [][]string{carol}, args: []string{"user", "unlock", "carol"},
			action: "account.unlock", target: "carol"},
		{name: "user pin by fingerprint", setup: [][]string{carol}, args: []string{"user", "pin", "carol", "--fingerprint", "sha256:" + strings.Repeat("ab", 32)},
			action: "account.pin", target: "carol", reason: `pinned certificate sha256:(ab){32}`},
		{name: "user pin by public key", setup: [][]string{carol}, args: []string{"user", "pin", "carol", "--cert", "{data}/initial-admin.crt"},
			action: "account.pin", target: "carol", reason: `pinned public key sha256:[0-9a-f]{64}`},
		{name: "user unpin", setup: [][]string{carol, {"user", "pin", "carol", "--key-pin", "sha256:" + strings.Repeat("cd", 32)}},
			args:   []string{"user", "unpin", "carol", "sha256:" + strings.Repeat("cd", 32)},
			action: "account.unpin", target: "carol", reason: `unpinned sha256:(cd){32}`},
		{name: "role set, a new role", args: []string{"role", "set", "finance", "--require-totp"},
			action: "role.put", target: "finance", reason: `created; require_certificate=false require_totp=true`},
		{name: "role set, a change", args: []string{"role", "set", "admin", "--require-certificate=false"},
			action: "role.put", target: "admin", reason: `require_certificate=false require_totp=false`},
		{name: "role delete", setup: [][]string{{"role", "set", "finance"}, {"user", "add", "carol", "--role", "finance"}}, args: []string{"role", "delete", "finance"},
			action: "role.delete", target: "finance", reason: `taken off 1 account\(s\)`},
		{name: "cert issue", setup: [][]string{carol}, args: []string{"cert", "issue", "carol", "--out", "{data}/carol"},
			action: "certificate.issue", target: "carol", reason: `serial [0-9a-f]+, valid until \d{4}-\d\d-\d\d`, certificate: true},
		{name: "cert issue with an import password", setup: [][]string{carol}, args: []string{"cert", "issue", "carol", "--out", "{data}/carol", "--p12-password-stdin"}, stdin: password + "\n",
			action: "certificate.issue", target: "carol", reason: `serial [0-9a-f]+, valid until \d{4}-\d\d-\d\d`, certificate: true},
		{name: "cert revoke", args: []string{"cert", "revoke", "{admin-cert}", "--reason", "INC-7 lost laptop"},
			action: "certificate.revoke", target: "admin", reason: `INC-7 lost laptop; .*`, certificate: true},
		{name: "app set", args: []string{"app", "set", "wiki", "--url", "https://wiki.example.com/", "--role", "employee"},
			action: "app.put", target: "wiki", reason: `url https://wiki\.example\.com/ roles employee`},
		{name: "app delete", setup: [][]string{{"app", "set", "wiki", "--url", "https://wiki.example.com/", "--role", "employee"}}, args: []string{"app", "delete", "wiki"},
			action: "app.delete", target: "wiki"},
		{name: "session end", setup: [][]string{carol}, args: []string{"session", "end", "carol"},
			action: "sessions.revoke", target: "carol", reason: `0 session\(s\)`},
		{name: "oidc-client set", args: []string{"oidc-client", "set", "grafana", "--redirect-uri", "https://grafana.example.com/login/generic_oauth", "--role", "employee"},
			action: "oidc_client.put", target: "grafana", reason: `redirect_uris https://grafana\.example\.com/login/generic_oauth roles employee public false new secret`},
		{name: "oidc-client delete", setup: [][]string{{"oidc-client", "set", "grafana", "--redirect-uri", "https://grafana.example.com/login/generic_oauth", "--role", "employee"}},
			args: []string{"oidc-client", "delete", "grafana"}, action: "oidc_client.delete", target: "grafana"},
		{name: "oidc-keys rotate", args: []string{"oidc-keys", "rotate"},
			action: "oidc.keys.rotate", target: `\S+`},
	}

	// Every command is above, or changes nothing an admin answers for.
	unchanging := []string{"serve", "init", "health", "user list", "role list", "cert list", "app list", "session list", "oidc-client list", "audit"}
	covered := map[string]bool{}
	for _, tc := range tests {
		if c, _ := lookup(tc.args); c != nil {
			covered[c.name] = true
		}
	}
	for _, c := range commands {
		if !covered[c.name] && !slices.Contains(unchanging, c.name) {
			t.Errorf("gatehouse %s: no case shows that it is audited (or add it to the commands that change nothing)", c.name)
		}
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newCLIData(t)
			for _, args := range tc.setup {
				d.run("", args...)
			}
			before := d.audit()
			start := time.Now()
			out := d.run(tc.stdin, tc.args...)
			end := time.Now()
			all := d.audit()

			var added []store.AuditEvent
			for _, ev := range all {
				if !slices.ContainsFunc(before, func(b store.AuditEvent) bool { return b.ID == ev.ID }) {
					added = append(added, ev)
				}
			}
			if len(added) != 1 {
				t.Fatalf("gatehouse %s left %d audit events, want 1: %+v", strings.Join(tc.args, " "), len(added), added)
			}
			ev := added[0]
			if ev.Actor != "cli" || ev.Outcome != "success" || ev.Action != tc.action {
				t.Errorf("event: actor %q, outcome %q, action %q; want cli, success, %s", ev.Actor, ev.Outcome, ev.Action, tc.action)
			}
			if !regexp.MustCompile(`^(?:` + tc.target + `)$`).MatchString(ev.Target) {
				t.Errorf("event target %q, want %s", ev.Target, tc.target)
			}
			if !regexp.MustCompile(`^(?:` + tc.reason + `)$`).MatchString(ev.Reason) {
				t.Errorf("event reason %q, want %s", ev.Reason, tc.reason)
			}
			if tc.certificate != strings.HasPrefix(ev.CertFingerprint, "sha256:") {
				t.Errorf("event certificate fingerprint %q, want one: %t", ev.CertFingerprint, tc.certificate)
			}
			if ev.Time.Location() != time.UTC || ev.Time.Before(start.Truncate(time.Second)) || ev.Time.After(end.Add(time.Second)) {
				t.Errorf("event time %v, want the time of the command (%v to %v) in UTC", ev.Time, start.UTC(), end.UTC())
			}

			secrets := []string{}
			if s := strings.TrimSpace(tc.stdin); s != "" {
				secrets = append(secrets, s)
			}
			for _, m := range shownOnce.FindAllStringSubmatch(out, -1) {
				secrets = append(secrets, m[1])
			}
			trail, err := json.Marshal(all)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if bytes.Contains(trail, []byte(s)) {
					t.Errorf("the audit trail holds the secret %q", s)
				}
			}
		})
	}
}

// failingAudit is a store whose audit trail cannot be written.
type failingAudit struct{ store.Store }

var errAuditDown = errors.New("audit trail unavailable")

func (failingAudit) AppendAudit(ctx context.Context, ev store.AuditEvent) error { return errAuditDown }

// A change whose audit event cannot be written stands, and the command
// fails saying so: the change was made but is not recorded. What is
// shown only once (a temporary password) is shown all the same, or the
// new account would be of no use.
func TestCLI_ChangeNotRecordedFailsAndSaysSo(t *testing.T) {
	st := openTestStore(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	var out bytes.Buffer
	e := &env{ctx: t.Context(), getenv: func(string) string { return "" }, stdin: strings.NewReader(""), stdout: &out, stderr: io.Discard}
	broken := failingAudit{st}
	now := time.Now()

	err := roleSet(e, broken, "employee", optionalBool{}, optionalBool{}, now)
	if !errors.Is(err, errNotRecorded) || !errors.Is(err, errAuditDown) || !strings.Contains(err.Error(), "the change was made") {
		t.Errorf("role set with the audit trail down: %v, want it to say the change was made but not recorded, and why", err)
	}
	if _, err := st.Role(t.Context(), "employee"); err != nil {
		t.Errorf("role set with the audit trail down: the role is not there (%v), want the change made", err)
	}

	err = userAdd(e, broken, "carol", []string{"employee"}, "", false, now)
	if !errors.Is(err, errNotRecorded) || !strings.Contains(err.Error(), "account.create carol") {
		t.Errorf("user add with the audit trail down: %v, want it to say account.create carol was made but not recorded", err)
	}
	if _, err := st.Account(t.Context(), "carol"); err != nil {
		t.Errorf("user add with the audit trail down: no account (%v), want the change made", err)
	}
	if !shownOnce.MatchString(out.String()) {
		t.Errorf("user add with the audit trail down printed %q, want the temporary password shown", out.String())
	}
}

// The admin role cannot be deleted from the command line either, as the
// admin API refuses it: nobody could administer the portal after.
func TestCLI_AdminRoleCannotBeDeleted(t *testing.T) {
	d := newCLIData(t)
	getenv := func(k string) string { return map[string]string{"GATEHOUSE_DATA": d.data}[k] }
	err := run(t.Context(), []string{"gatehouse", "role", "delete", "admin"}, getenv, strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "cannot be deleted") {
		t.Errorf("role delete admin = %v, want refused", err)
	}
	st, err := openStore(&env{ctx: t.Context()}, &settings{data: d.data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Role(t.Context(), "admin"); err != nil {
		t.Errorf("the admin role after the refused delete: %v", err)
	}
}

// The audit trail starts with what gatehouse init made: the first admin
// and its certificate.
func TestCLI_InitRecordsTheFirstAdminAndItsCertificate(t *testing.T) {
	d := newCLIData(t)
	events := d.audit()
	var actions []string
	for _, ev := range events {
		if ev.Actor != cliActor || ev.Target != "admin" || ev.Outcome != "success" {
			t.Errorf("event after init: %+v, want by cli, on admin, a success", ev)
		}
		actions = append(actions, ev.Action)
	}
	slices.Sort(actions)
	if !slices.Equal(actions, []string{"account.create", "certificate.issue"}) {
		t.Errorf("audit trail after init: %q, want the first admin's account.create and certificate.issue", actions)
	}
	if i := slices.IndexFunc(events, func(ev store.AuditEvent) bool { return ev.Action == "certificate.issue" }); i < 0 || events[i].CertFingerprint != d.adminCertFingerprint() {
		t.Errorf("init's certificate.issue event does not name the admin's certificate")
	}
}
