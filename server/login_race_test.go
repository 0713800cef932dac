package server_test

// Sign-ins that are still being decided when the account changes.

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"gatehouse/server"
	"gatehouse/store"
)

// changeWhileSigningIn is a store on which, the next time the account
// named name is read (as a sign-in reads it, before bcrypt runs), change
// runs first: the account changes while the sign-in is decided with what
// it read.
type changeWhileSigningIn struct {
	store.Store
	name   string
	change *atomic.Pointer[func()]
}

func (s changeWhileSigningIn) Account(ctx context.Context, name string) (store.Account, error) {
	a, err := s.Store.Account(ctx, name)
	if name == s.name {
		if change := s.change.Swap(nil); change != nil {
			(*change)()
		}
	}
	return a, err
}

// A password changed, reset or an account disabled while someone signs
// in with the old password ends that sign-in too: the session it writes
// after the change had ended the account's sessions is not left standing.
func TestLogin_ChangeDuringTheSignInEndsIt(t *testing.T) {
	const oldPW, newPW = "alice's long passphrase, 2026", "a brand new passphrase for alice, 2027"
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, p *portal, owner *browser) int
	}{
		{"the owner changes the password", func(t *testing.T, p *portal, owner *browser) int {
			return owner.jsonDo(http.MethodPost, "/api/account/password",
				map[string]string{"current": oldPW, "new": newPW, "confirm": newPW}).Status
		}},
		{"an admin disables the account", func(t *testing.T, p *portal, _ *browser) int {
			admin := p.browser(p.AdminCert)
			admin.login("admin", adminPassword)
			return admin.jsonDo(http.MethodPatch, "/api/admin/users/alice", map[string]any{"disabled": true}).Status
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			change := &atomic.Pointer[func()]{}
			p := newPortalWith(t, func(cfg *server.Config) {
				cfg.Store = changeWhileSigningIn{Store: cfg.Store, name: "alice", change: change}
			})
			p.addAccount("alice", oldPW, "employee")
			owner := p.browser()
			owner.login("alice", oldPW)
			var status atomic.Int32
			run := func() { status.Store(int32(tc.change(t, p, owner))) }
			change.Store(&run)

			thief := p.browser()
			r := thief.post("/login", url.Values{"username": {"alice"}, "password": {oldPW}})
			if got := status.Load(); got < 200 || got > 299 {
				t.Fatalf("setup: the change during the sign-in answered %d", got)
			}
			if s := thief.get("/api/session"); s.Status == http.StatusOK {
				t.Errorf("a sign-in with the password of before the change left a session: login %d, session %s", r.Status, s.Body)
			}
			if r.Status == http.StatusSeeOther {
				t.Errorf("the sign-in decided before the change was answered as a success (303 to %s)", r.Header.Get("Location"))
			}
		})
	}
}

// Account names are lower-case: a name typed with capitals (a phone's
// keyboard capitalises the first letter) signs in as the account. Only
// ASCII letters are folded, so no other character (the Kelvin sign K,
// which Unicode lower-cases to k) can stand for one of a name's.
func TestLogin_NameTypedWithCapitalsSignsIn(t *testing.T) {
	p := newPortal(t)
	p.addAccount("alice", alicePassword, "employee")
	for _, typed := range []string{"Alice", " ALICE "} {
		if r := p.browser().post("/login", url.Values{"username": {typed}, "password": {alicePassword}}); r.Status != http.StatusSeeOther {
			t.Errorf("%q with alice's password: %d %q, want a sign-in", typed, r.Status, r.Alert())
		}
	}
	p.addAccount("kim", alicePassword, "employee")
	if r := p.browser().post("/login", url.Values{"username": {"\u212aim"}, "password": {alicePassword}}); r.Status == http.StatusSeeOther {
		t.Errorf("the Kelvin sign stood for k in a name")
	}
}

// A password set with accents typed one way signs in with them typed the
// other way (a Mac and a phone do not type "é" alike).
func TestLogin_PasswordInAnotherUnicodeFormSignsIn(t *testing.T) {
	p := newPortal(t)
	p.addAccount("alice", "Cre\u0300me bru\u0302le\u0301e fu\u0308r zwo\u0308lf Ga\u0308ste", "employee")
	r := p.browser().post("/login", url.Values{"username": {"alice"}, "password": {"Crème brûlée für zwölf Gäste"}})
	if r.Status != http.StatusSeeOther {
		t.Errorf("the password with its accents composed: %d %q, want a sign-in", r.Status, r.Alert())
	}
}

// A new password that is the current one with its accents typed another
// way is the same password: "must differ" refuses it, and the account's
// sessions go on.
func TestAccount_NewPasswordInAnotherUnicodeFormIsUnchanged(t *testing.T) {
	const composed = "Crème brûlée für zwölf Gäste"
	const decomposed = "Cre\u0300me bru\u0302le\u0301e fu\u0308r zwo\u0308lf Ga\u0308ste"
	p := newPortal(t)
	p.addAccount("alice", composed, "employee")
	b := p.browser()
	b.login("alice", composed)
	r := b.jsonDo(http.MethodPost, "/api/account/password", map[string]string{"current": composed, "new": decomposed, "confirm": decomposed})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "unchanged") {
		t.Errorf("the current password with its accents decomposed as the new one: %d %s, want 400 unchanged", r.Status, r.Body)
	}
}
