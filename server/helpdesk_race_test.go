package server_test

// The help desk's boundaries and audit, when the store changes under it
// or fails half-way.

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/server"
	"gatehouse/store"
)

// promoteBeforeWrite is a store on which the named account is granted
// admin by "another admin" the moment anyone next writes it: the grant
// lands between the help desk's boundary check (on the account as read
// before) and its own write.
type promoteBeforeWrite struct {
	store.Store
	target string
	armed  *atomic.Bool
}

func (s promoteBeforeWrite) UpdateAccount(ctx context.Context, name string, fn func(*store.Account) error) error {
	if name == s.target && s.armed.CompareAndSwap(true, false) {
		if err := s.Store.UpdateAccount(ctx, name, func(a *store.Account) error {
			a.Roles = append(a.Roles, "admin")
			return nil
		}); err != nil {
			return err
		}
	}
	return s.Store.UpdateAccount(ctx, name, fn)
}

func helpdeskBrowser(t *testing.T, p *portal) *browser {
	t.Helper()
	p.addAccount("hana", alicePassword, "helpdesk", "employee")
	issued, err := p.ca.IssueClient(ca.ClientRequest{Name: "hana"}, p.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	hana := p.browser(tlsCertificate(issued))
	hana.login("hana", alicePassword)
	return hana
}

// The help desk may not reset the password of an account that holds
// admin when the reset is written, even if it did not hold it when the
// boundary was checked.
func TestHelpdesk_BoundaryHoldsForTheAccountAsItIsWhenTheResetIsWritten(t *testing.T) {
	armed := &atomic.Bool{}
	p := newPortalWith(t, func(cfg *server.Config) {
		cfg.Store = promoteBeforeWrite{Store: cfg.Store, target: "bob", armed: armed}
	})
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	hana := helpdeskBrowser(t, p)
	armed.Store(true)
	r := hana.sendJSON("POST", "/api/helpdesk/users/bob/reset-password", `{"reason":"T-1"}`)
	bob, err := p.store.Account(t.Context(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(bob.Roles, "admin") {
		t.Fatalf("setup: bob was not promoted: %v", bob.Roles)
	}
	if r.Status != http.StatusForbidden || bob.MustChangePassword {
		t.Errorf("help desk reset the password of bob, an admin by the time of the write: status %d, must_change=%t, body %.200s",
			r.Status, bob.MustChangePassword, r.Body)
	}
}

// Same for approving a new device's certificate request: an approval
// written on an account that holds admin by then is a help-desk approval
// of an admin's device.
func TestHelpdesk_BoundaryHoldsForTheAccountAsItIsWhenTheApprovalIsWritten(t *testing.T) {
	armed := &atomic.Bool{}
	p := newPortalWith(t, func(cfg *server.Config) {
		cfg.Store = promoteBeforeWrite{Store: cfg.Store, target: "bob", armed: armed}
	})
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	phone := p.browser()
	phone.login("bob", "a long passphrase for bob, 2026")
	id, code := requestFor(t, phone, "bob's phone")
	hana := helpdeskBrowser(t, p)
	armed.Store(true)
	r := hana.sendJSON("POST", "/api/helpdesk/users/bob/enrollments/"+id+"/approve", `{"reason":"T-2","code":"`+code+`"}`)
	bob, err := p.store.Account(t.Context(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(bob.Roles, "admin") {
		t.Fatalf("setup: bob was not promoted: %v", bob.Roles)
	}
	i := slices.IndexFunc(bob.Enrollments, func(e store.Enrollment) bool { return e.ID == id })
	if r.Status != http.StatusForbidden || bob.Enrollments[i].Status == store.EnrollmentApproved {
		t.Errorf("help desk approved a device of bob, an admin by the time of the write: status %d, enrollment %s, body %.200s",
			r.Status, bob.Enrollments[i].Status, r.Body)
	}
}

// failingSessionEnds is a store whose DeleteUserSessions fails, as a
// store hiccup would.
type failingSessionEnds struct{ store.Store }

func (failingSessionEnds) DeleteUserSessions(context.Context, string) (int, error) {
	return 0, store.ErrUnavailable
}

// A help-desk reset that changed the account is in the audit trail even
// when ending the target's sessions then fails; and the answer does not
// claim that nothing was changed.
func TestHelpdesk_ResetIsAuditedWhenEndingSessionsFails(t *testing.T) {
	p := newPortalWith(t, func(cfg *server.Config) { cfg.Store = failingSessionEnds{cfg.Store} })
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	hana := helpdeskBrowser(t, p)
	r := hana.sendJSON("POST", "/api/helpdesk/users/bob/reset-password", `{"reason":"T-3"}`)
	bob, err := p.store.Account(t.Context(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	page, err := p.store.Audit(t.Context(), store.AuditQuery{Action: "helpdesk.reset_password"})
	if err != nil {
		t.Fatal(err)
	}
	if !bob.MustChangePassword {
		t.Fatalf("setup: the reset did not happen (answer %d %.160s)", r.Status, r.Body)
	}
	if len(page.Items) != 1 || !strings.Contains(page.Items[0].Reason, "T-3; done, but") {
		t.Errorf("bob's password was reset (answer %d %.160s) but the audit trail has %+v, want one event saying it was not finished", r.Status, r.Body, page.Items)
	}
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(r.Body, "partly_done") || strings.Contains(r.Body, "nothing was changed") {
		t.Errorf("answer %d %.200s, want 503 partly_done saying the change was made", r.Status, r.Body)
	}
}

// The same for a TOTP reset: bob, an admin by the time of the write,
// keeps his authenticator.
func TestHelpdesk_BoundaryHoldsForTheAccountAsItIsWhenTheTOTPResetIsWritten(t *testing.T) {
	armed := &atomic.Bool{}
	p := newPortalWith(t, func(cfg *server.Config) {
		cfg.Store = promoteBeforeWrite{Store: cfg.Store, target: "bob", armed: armed}
	})
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	if err := p.store.UpdateAccount(t.Context(), "bob", func(a *store.Account) error {
		a.TOTPSecret = "v1:sealed-secret"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	hana := helpdeskBrowser(t, p)
	armed.Store(true)
	r := hana.sendJSON("POST", "/api/helpdesk/users/bob/reset-totp", `{"reason":"T-6"}`)
	bob, err := p.store.Account(t.Context(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(bob.Roles, "admin") {
		t.Fatalf("setup: bob was not promoted: %v", bob.Roles)
	}
	if r.Status != http.StatusForbidden || bob.TOTPSecret == "" {
		t.Errorf("help desk reset the TOTP of bob, an admin by the time of the write: status %d, body %.200s", r.Status, r.Body)
	}
}

// promoteAfterRead is a store on which the named account is granted
// admin by "another admin" right after the next read of it: the grant
// lands between the help desk's boundary check on the account as first
// read and the operation itself.
type promoteAfterRead struct {
	store.Store
	target string
	armed  *atomic.Bool
}

func (s promoteAfterRead) Account(ctx context.Context, name string) (store.Account, error) {
	a, err := s.Store.Account(ctx, name)
	if err == nil && name == s.target && s.armed.CompareAndSwap(true, false) {
		if err := s.Store.UpdateAccount(ctx, name, func(a *store.Account) error {
			a.Roles = append(a.Roles, "admin")
			return nil
		}); err != nil {
			return store.Account{}, err
		}
	}
	return a, err
}

// An unlock writes no account record to guard, so the target is read
// again before its counters are cleared: bob, made an admin after the
// help desk first read him, keeps his failed sign-ins.
func TestHelpdesk_BoundaryHoldsForTheAccountAsItIsWhenTheUnlockClears(t *testing.T) {
	armed := &atomic.Bool{}
	p := newPortalWith(t, func(cfg *server.Config) {
		cfg.Store = promoteAfterRead{Store: cfg.Store, target: "bob", armed: armed}
	})
	p.addAccount("bob", "a long passphrase for bob, 2026", "employee")
	for range 2 {
		failLogin(t, p, "bob")
	}
	counter := auth.FailureCounter(auth.CounterPassword, "bob")
	if n, err := p.store.Failures(t.Context(), counter); err != nil || n != 2 {
		t.Fatalf("setup: bob has %d password failures (%v), want 2", n, err)
	}
	hana := helpdeskBrowser(t, p)
	armed.Store(true)
	r := hana.sendJSON("POST", "/api/helpdesk/users/bob/unlock", `{"reason":"T-7"}`)
	bob, err := p.store.Account(t.Context(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(bob.Roles, "admin") {
		t.Fatalf("setup: bob was not promoted: %v", bob.Roles)
	}
	n, err := p.store.Failures(t.Context(), counter)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusForbidden || n != 2 {
		t.Errorf("help desk unlocked bob, an admin by the time of the unlock: status %d, %d password failures left (want 2), body %.200s",
			r.Status, n, r.Body)
	}
}
