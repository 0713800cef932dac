package tests

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// gatehouse runs the gatehouse binary with args and extra environment
// variables (KEY=VALUE), in an empty working directory so that the
// default ./data is never anyone's, and returns its output and exit
// status.
func gatehouse(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatehouseBinary(t), args...)
	cmd.Env = append(childEnv(), env...)
	cmd.Dir = t.TempDir()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run gatehouse %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// Help for one command shows that command's flags and no other's, on
// standard output, with exit status 0, whichever way it is asked for.
func TestCLI_HelpShowsOnlyTheCommandsOwnFlags(t *testing.T) {
	t.Parallel()
	serveOnly := []string{"--addr", "--tls-key", "--client-ca", "--crl", "--session-idle", "--session-max", "--cookie-domain", "--trusted-proxy", "--enroll-with-totp", "--max-device-certificates"}
	tests := []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"cert issue -h", []string{"cert", "issue", "-h"},
			[]string{"usage: gatehouse cert issue NAME --out PREFIX", "--out", "--days", "--p12-password-stdin", "--data", "--store", "GATEHOUSE_DATA"}, serveOnly},
		{"cert issue --help", []string{"cert", "issue", "--help"}, []string{"--out"}, serveOnly},
		{"help cert issue", []string{"help", "cert", "issue"}, []string{"usage: gatehouse cert issue", "--out"}, serveOnly},
		{"user add -h", []string{"user", "add", "-h"}, []string{"--role", "--email", "--password-stdin"}, append([]string{"--out"}, serveOnly...)},
		{"help app set", []string{"help", "app", "set"}, []string{"usage: gatehouse app set NAME --url URL --role R", "--url", "--role"}, serveOnly},
		{"session end -h", []string{"session", "end", "-h"}, []string{"usage: gatehouse session end USER [HANDLE]"}, append([]string{"--role"}, serveOnly...)},
		{"serve --help", []string{"serve", "--help"},
			[]string{"usage: gatehouse serve", "--addr", "--cookie-domain", "--session-idle", "--trusted-proxy", "--data", "GATEHOUSE_SESSION_IDLE"},
			[]string{"flag: help requested", "--out", "--role", "--ready"}},
		{"health -h", []string{"health", "-h"}, []string{"--ready", "--addr", "--tls-cert"}, []string{"--cookie-domain", "--session-idle", "--tls-key"}},
		{"help", []string{"help"}, []string{"usage: gatehouse COMMAND", "serve", "cert issue", "app set", "app list", "app delete", "session list", "session end"}, []string{"--cookie-domain"}},
		{"cert -h", []string{"cert", "-h"}, []string{"cert issue", "cert revoke", "cert list"}, []string{"user add", "--addr"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := gatehouse(t, nil, tc.args...)
			if code != 0 {
				t.Errorf("exit status %d, want 0\nstderr:\n%s", code, stderr)
			}
			if strings.TrimSpace(stderr) != "" {
				t.Errorf("help wrote to standard error:\n%s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("help does not show %q:\n%s", w, stdout)
				}
			}
			for _, n := range tc.not {
				if regexp.MustCompile(regexp.QuoteMeta(n) + `\b`).MatchString(stdout + stderr) {
					t.Errorf("help shows %q, which is not this command's:\n%s", n, stdout)
				}
			}
		})
	}
}

// A command line that cannot be understood is refused with exit status 2
// (as the Go tool does), in plain words that say what is wrong and where
// to look.
func TestCLI_RefusesWhatACommandDoesNotTake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		words []string
	}{
		{"a serve flag on cert issue", []string{"cert", "issue", "alice", "--out", "alice", "--addr", ":1"},
			[]string{"cert issue", "unknown flag --addr", "gatehouse help cert issue"}},
		{"a serve flag on user list", []string{"user", "list", "--cookie-domain", "example.com"}, []string{"unknown flag --cookie-domain"}},
		{"a bad value", []string{"cert", "issue", "alice", "--out", "alice", "--days", "many"}, []string{"--days", "many"}},
		{"too many arguments", []string{"user", "list", "extra"}, []string{"user list", "usage: gatehouse user list"}},
		{"too few arguments", []string{"app", "delete"}, []string{"app delete", "usage: gatehouse app delete NAME"}},
		{"unknown command", []string{"frobnicate"}, []string{`unknown command "frobnicate"`, "cert issue", "session end"}},
		{"unknown subcommand", []string{"cert", "frobnicate"}, []string{`unknown command "cert frobnicate"`, "cert issue"}},
		{"a group alone", []string{"cert"}, []string{"cert issue", "cert revoke", "cert list"}},
		{"help for an unknown command", []string{"help", "frobnicate"}, []string{`unknown command "frobnicate"`}},
		{"nothing", nil, []string{"usage: gatehouse COMMAND"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := gatehouse(t, nil, tc.args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2\nstderr:\n%s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("a refused command line wrote to standard output:\n%s", stdout)
			}
			for _, w := range tc.words {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, "flag provided but not defined") {
				t.Errorf("stderr speaks the flag package's words, not plain ones:\n%s", stderr)
			}
		})
	}
}

// The settings that took an environment variable still do, for the
// commands that have them; a serve setting in the environment (as in the
// container image, where GATEHOUSE_ADDR is set for every command) does
// not disturb a command that has no such flag.
func TestCLI_SettingsFromTheEnvironment(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	env := []string{"GATEHOUSE_DATA=" + p.Data, "GATEHOUSE_STORE=" + p.Redis.URL,
		"GATEHOUSE_ADDR=:1", "GATEHOUSE_COOKIE_DOMAIN=example.com", "GATEHOUSE_SESSION_IDLE=5m"}
	stdout, stderr, code := gatehouse(t, env, "user", "list")
	if code != 0 || !regexp.MustCompile(`(?m)^admin\s`).MatchString(stdout) {
		t.Fatalf("user list with GATEHOUSE_DATA and GATEHOUSE_STORE: exit %d, want 0 and the portal's admin\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// cert issue reads the CA from GATEHOUSE_DATA.
	prefix := t.TempDir() + "/admin2"
	if _, stderr, code := gatehouse(t, env, "cert", "issue", "admin", "--out", prefix); code != 0 {
		t.Errorf("cert issue with GATEHOUSE_DATA: exit %d\n%s", code, stderr)
	}

	// A serve flag from the environment reaches serve: an idle time too
	// short is refused before anything starts.
	_, stderr, code = gatehouse(t, []string{"GATEHOUSE_DATA=" + t.TempDir(), "GATEHOUSE_ADDR=127.0.0.1:0", "GATEHOUSE_SESSION_IDLE=30s"}, "serve")
	if code == 0 || !strings.Contains(stderr, "--session-idle 30s") {
		t.Errorf("serve with GATEHOUSE_SESSION_IDLE=30s: exit %d, want it refused for --session-idle 30s\nstderr:\n%s", code, stderr)
	}
}

// apiApp is an app in the admin API.
type apiApp struct {
	Name  string   `json:"name"`
	URL   string   `json:"url"`
	Roles []string `json:"roles"`
}

// Apps made, changed and deleted with the command line are the portal's
// apps at once, checked by the same rules as the admin API, and recorded
// in the audit trail.
func TestCLI_AppSetListDelete(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	apiAppOf := func(name string) (apiApp, int) {
		r := admin.get(t, "/api/admin/apps/"+name)
		var a apiApp
		if r.Status == http.StatusOK {
			decodeJSON(t, r, &a)
		}
		return a, r.Status
	}

	out := p.cli(t, "", "app", "set", "wiki", "--url", "https://Wiki.Example.com", "--role", "employee")
	if !strings.Contains(out, "https://wiki.example.com/") {
		t.Errorf("app set does not show the URL as kept:\n%s", out)
	}
	if a, status := apiAppOf("wiki"); status != http.StatusOK || a.URL != "https://wiki.example.com/" || !slices.Equal(a.Roles, []string{"employee"}) {
		t.Errorf("GET /api/admin/apps/wiki after app set: %d %+v", status, a)
	}
	list := p.cli(t, "", "app", "list")
	if !regexp.MustCompile(`(?m)^wiki\s+https://wiki\.example\.com/\s+employee\s*$`).MatchString(list) {
		t.Errorf("app list does not show wiki with its URL and role:\n%s", list)
	}

	// Set again: replaced.
	p.cli(t, "", "app", "set", "wiki", "--url", "https://wiki.example.com/docs", "--role", "helpdesk", "--role", "employee")
	if a, _ := apiAppOf("wiki"); a.URL != "https://wiki.example.com/docs/" || !slices.Equal(a.Roles, []string{"employee", "helpdesk"}) {
		t.Errorf("wiki after a second app set: %+v, want the new URL and both roles", a)
	}
	// An app made with the API is listed too.
	wantStatus(t, admin.jsonRequest(t, "PUT", "/api/admin/apps/grafana", map[string]any{"url": "https://grafana.example.com/", "roles": []string{"admin"}}), http.StatusCreated)
	if list := p.cli(t, "", "app", "list"); !regexp.MustCompile(`(?m)^grafana\s+https://grafana\.example\.com/\s+admin\s*$`).MatchString(list) {
		t.Errorf("app list does not show the app made with the API:\n%s", list)
	}

	// The admin API's rules, in the admin API's words.
	for _, tc := range []struct {
		name  string
		args  []string
		words string
	}{
		{"plain http", []string{"wiki2", "--url", "http://wiki2.example.com/", "--role", "employee"}, `the URL must look like "https://app.example.com/"`},
		{"a query", []string{"wiki2", "--url", "https://wiki2.example.com/?a=b", "--role", "employee"}, "must not carry a user, a query or a fragment"},
		{"a bad name", []string{"Wiki 2", "--url", "https://wiki2.example.com/", "--role", "employee"}, `app name "Wiki 2"`},
		{"no role", []string{"wiki2", "--url", "https://wiki2.example.com/"}, "give the app at least one role that may open it"},
		{"no such role", []string{"wiki2", "--url", "https://wiki2.example.com/", "--role", "nosuch"}, `no role named "nosuch"`},
		{"another app's URL", []string{"wiki2", "--url", "https://WIKI.example.com:443/docs/", "--role", "employee"}, "the app wiki already has the URL https://wiki.example.com/docs/"},
		{"no URL", []string{"wiki2", "--role", "employee"}, "--url"},
	} {
		stderr := p.cliFails(t, append([]string{"app", "set"}, tc.args...)...)
		if !strings.Contains(stderr, tc.words) {
			t.Errorf("app set with %s: stderr %q, want it to say %q", tc.name, stderr, tc.words)
		}
	}
	if _, status := apiAppOf("wiki2"); status != http.StatusNotFound {
		t.Errorf("a refused app set made wiki2: GET answers %d", status)
	}

	p.cli(t, "", "app", "delete", "wiki")
	if _, status := apiAppOf("wiki"); status != http.StatusNotFound {
		t.Errorf("GET /api/admin/apps/wiki after app delete: %d, want 404", status)
	}
	if list := p.cli(t, "", "app", "list"); regexp.MustCompile(`(?m)^wiki\s`).MatchString(list) {
		t.Errorf("app list shows the deleted app:\n%s", list)
	}
	if stderr := p.cliFails(t, "app", "delete", "wiki"); !strings.Contains(stderr, `no app named "wiki"`) {
		t.Errorf("app delete of a missing app: stderr %q", stderr)
	}

	events, _ := p.audit(t, 50)
	var got []string
	for _, e := range events {
		if e.Actor == "cli" && strings.HasPrefix(e.Action, "app.") {
			got = append(got, e.Action+" "+e.Target)
		}
	}
	if diff := cmp.Diff([]string{"app.delete wiki", "app.put wiki", "app.put wiki"}, got); diff != "" {
		t.Errorf("the command line's app events in the audit trail, newest first (-want +got):\n%s", diff)
	}
}

// sessionRow is one line of "gatehouse session list".
type sessionRow struct {
	User, Handle, Factors, Client, Created, LastSeen, Expires string
}

// sessionList runs "gatehouse session list [USER]" and parses its table,
// returning the raw output too.
func (p *portal) sessionList(t *testing.T, args ...string) ([]sessionRow, string) {
	t.Helper()
	out := p.cli(t, "", append([]string{"session", "list"}, args...)...)
	var rows []sessionRow
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if i == 0 {
			if diff := cmp.Diff([]string{"USER", "HANDLE", "FACTORS", "CLIENT", "CREATED", "LAST", "SEEN", "EXPIRES"}, f); diff != "" {
				t.Fatalf("session list header (-want +got):\n%s", diff)
			}
			continue
		}
		if len(f) != 7 {
			t.Fatalf("session list line %q does not have 7 columns:\n%s", line, out)
		}
		rows = append(rows, sessionRow{f[0], f[1], f[2], f[3], f[4], f[5], f[6]})
	}
	return rows, out
}

// The command line lists live sessions as the admin API does (the same
// handles, never a session ID) and ends all of a user's sessions or one,
// at once, with a record in the audit trail.
func TestCLI_SessionListAndEnd(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	p.addUser(t, "erin", passphrase("erin"), "employee")
	p.addUser(t, "fay", passphrase("fay"), "employee")
	erinCert, _, _ := p.issueCert(t, "erin")
	laptop := p.signIn(t, &erinCert, "erin", passphrase("erin"))
	phone := p.signIn(t, nil, "erin", passphrase("erin"))
	fay := p.signIn(t, nil, "fay", passphrase("fay"))

	rows, out := p.sessionList(t, "erin")
	api, _ := admin.sessionsOf(t, "erin")
	if len(rows) != 2 || len(api) != 2 {
		t.Fatalf("erin's sessions: %d listed, %d in the API; want 2\n%s", len(rows), len(api), out)
	}
	var laptopHandle, phoneHandle string
	for _, r := range rows {
		if r.User != "erin" || r.Client != "127.0.0.1" {
			t.Errorf("session %+v: want user erin from 127.0.0.1", r)
		}
		if !slices.ContainsFunc(api, func(s apiLiveSession) bool {
			return s.Handle == r.Handle && strings.Join(s.Factors, ",") == r.Factors
		}) {
			t.Errorf("session %+v: the admin API has no session with that handle and those factors: %+v", r, api)
		}
		switch r.Factors {
		case "password,certificate":
			laptopHandle = r.Handle
		case "password":
			phoneHandle = r.Handle
		}
	}
	if laptopHandle == "" || phoneHandle == "" {
		t.Fatalf("want one session with password,certificate and one with password:\n%s", out)
	}

	_, all := p.sessionList(t)
	for _, name := range []string{"admin", "erin", "fay"} {
		if !regexp.MustCompile(`(?m)^` + name + `\s`).MatchString(all) {
			t.Errorf("session list without a user does not list %s:\n%s", name, all)
		}
	}
	for who, c := range map[string]*client{"erin's laptop": laptop, "erin's phone": phone, "fay": fay, "admin": admin} {
		for what, secret := range map[string]string{"cookie value": c.cookieValue(t), "session ID": sessionIDOf(t, p, c)} {
			if strings.Contains(out+all, secret) {
				t.Errorf("session list shows the %s of %s", what, who)
			}
		}
	}

	// A handle is scoped to its user.
	if stderr := p.cliFails(t, "session", "end", "fay", phoneHandle); !strings.Contains(stderr, "fay has no session "+phoneHandle) {
		t.Errorf("session end with another user's handle: stderr %q", stderr)
	}
	phone.session(t)

	// One by handle: that one only.
	if out := p.cli(t, "", "session", "end", "erin", phoneHandle); !strings.Contains(out, "erin: 1 session(s) ended") {
		t.Errorf("session end erin HANDLE printed %q", out)
	}
	wantUnauthenticated(t, phone.get(t, "/api/session"))
	laptop.session(t)
	fay.session(t)
	if rows, out := p.sessionList(t, "erin"); len(rows) != 1 || rows[0].Handle != laptopHandle {
		t.Errorf("erin's sessions after ending the phone's: want the laptop's only:\n%s", out)
	}

	// All of erin's.
	phone = p.signIn(t, nil, "erin", passphrase("erin"))
	if out := p.cli(t, "", "session", "end", "erin"); !strings.Contains(out, "erin: 2 session(s) ended") {
		t.Errorf("session end erin printed %q", out)
	}
	wantUnauthenticated(t, laptop.get(t, "/api/session"))
	wantUnauthenticated(t, phone.get(t, "/api/session"))
	fay.session(t)
	admin.session(t)
	if stderr := p.cliFails(t, "session", "end", "nobody"); !strings.Contains(stderr, `no account named "nobody"`) {
		t.Errorf("session end for a missing account: stderr %q", stderr)
	}
	if stderr := p.cliFails(t, "session", "list", "nobody"); !strings.Contains(stderr, `no account named "nobody"`) {
		t.Errorf("session list for a missing account: stderr %q", stderr)
	}

	events, _ := p.audit(t, 50)
	n := 0
	for _, e := range events {
		if e.Action == "sessions.revoke" && e.Actor == "cli" && e.Target == "erin" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d sessions.revoke events by cli about erin, want 2", n)
	}
}
