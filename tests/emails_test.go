package tests

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"gatehouse/store"
)

// noticeTwoAccounts is what a person is told when the certificate they
// present names more than one account.
const noticeTwoAccounts = "names more than one account, so it does not count"

// wantAmbiguousLogin checks that the newest login event of user is a
// warning about a certificate that names more than one account.
func wantAmbiguousLogin(t *testing.T, p *portal, user string) {
	t.Helper()
	events, raw := p.audit(t, 100)
	i := slices.IndexFunc(events, func(e auditEvent) bool { return e.Action == "login" && e.Actor == user })
	if i < 0 {
		t.Fatalf("no login event of %s in the audit trail:\n%s", user, raw)
	}
	if e := events[i]; e.Outcome != "warning" || e.CertStatus != "ambiguous" {
		t.Errorf("login event of %s = %+v, want outcome warning and cert_status ambiguous", user, e)
	}
}

// The attack of "Certificate identity you can trust": an admin makes an
// employee account with the admin's own email in capitals, and then any
// certificate for that account (which a help-desk user may issue) would
// count for the admin. The email is refused; and a certificate made to
// match both accounts anyway (one's name, the other's email, signed by
// the portal's own CA) counts for neither.
func TestEmails_CopyOfAdminsEmailRefusedAndCertificateNamingBothCountsForNeither(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	admin := p.adminSignIn(t)
	r := admin.jsonRequest(t, "PATCH", "/api/admin/users/admin", map[string]any{"email": "admin@example.com"})
	wantStatus(t, r, http.StatusOK)
	admin = p.adminSignIn(t) // a change to an account ends its sessions

	create := map[string]any{"name": "dupe", "email": "ADMIN@example.com", "roles": []string{"employee"}, "password": passphrase("dupe")}
	wantAPIError(t, admin.jsonRequest(t, "POST", "/api/admin/users", create), http.StatusConflict, "email_taken", "another account already uses that email")
	wantAPIError(t, admin.get(t, "/api/admin/users/dupe"), http.StatusNotFound, "no_such_user")
	stderr := p.cliFails(t, "user", "add", "dupe", "--role", "employee", "--email", "Admin@Example.COM")
	if !strings.Contains(stderr, "another account already uses the email") {
		t.Errorf("gatehouse user add with the admin's email: stderr %q, want it to say another account already uses the email", stderr)
	}

	create["email"] = "dupe@example.com"
	wantStatus(t, admin.jsonRequest(t, "POST", "/api/admin/users", create), http.StatusCreated)
	change := map[string]any{"email": "admin@EXAMPLE.com"}
	wantAPIError(t, admin.jsonRequest(t, "PATCH", "/api/admin/users/dupe", change), http.StatusConflict, "email_taken", "another account already uses that email")
	if u := admin.user(t, "dupe"); u.Email != "dupe@example.com" {
		t.Errorf("dupe's email after the refused change = %q, want dupe@example.com", u.Email)
	}

	both := p.builtinCA(t).issue(t, clientTemplate("dupe", "admin@example.com"), nil)
	for _, u := range []struct{ name, password string }{{"admin", p.AdminPassword}, {"dupe", passphrase("dupe")}} {
		t.Run("signing in as "+u.name, func(t *testing.T) {
			s := loginSession(t, p, &both, u.name, u.password)
			wantCertificateIgnored(t, s, noticeTwoAccounts, "employee")
			wantAmbiguousLogin(t, p, u.name)
		})
	}
}

// A store written before emails were unique may hold two accounts with
// one email: the portal starts, says so in its log and on /readyz, and a
// certificate with that email counts for neither account.
func TestEmails_SharedEmailFromBeforeIsWarnedAboutAndCountsForNeither(t *testing.T) {
	t.Parallel()
	p := initPortal(t)
	opt, err := redis.ParseURL(p.Redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	for name, email := range map[string]string{"alice": "Shared@Example.com", "bob": "shared@example.com"} {
		hash, err := bcrypt.GenerateFromPassword([]byte(passphrase(name)), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(store.Account{Name: name, Email: email, PasswordHash: string(hash), Roles: []string{"employee"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(t.Context(), "gatehouse:account:"+name, b, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.SAdd(t.Context(), "gatehouse:accounts", name).Err(); err != nil {
			t.Fatal(err)
		}
	}
	p.start(t)

	var ready struct {
		Warnings []string `json:"warnings"`
	}
	resp := p.client(t, nil).get(t, "/readyz")
	wantStatus(t, resp, http.StatusOK)
	decodeJSON(t, resp, &ready)
	if !slices.ContainsFunc(ready.Warnings, func(w string) bool { return strings.Contains(w, "belong to more than one account") }) {
		t.Errorf("/readyz warnings = %q, want one about emails that belong to more than one account", ready.Warnings)
	}
	if out := p.server.output(); !strings.Contains(out, "accounts share an email") || !strings.Contains(out, "alice,bob") {
		t.Errorf("the log does not name the accounts that share an email:\n%s", out)
	}

	shared := p.builtinCA(t).issue(t, clientTemplate("Shared Mailbox", "shared@example.com"), nil)
	for _, name := range []string{"alice", "bob"} {
		s := loginSession(t, p, &shared, name, passphrase(name))
		wantCertificateIgnored(t, s, noticeTwoAccounts, "employee")
	}
}
