package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/server"
	"gatehouse/store"
)

const alicePassword = "alice's long passphrase, 2026"

// addAlice adds alice (employee) with a certificate from the portal's CA
// valid for validity, recorded as issued, and returns it.
func addAlice(t *testing.T, p *portal, validity time.Duration) *ca.Issued {
	t.Helper()
	p.addAccount("alice", alicePassword, "employee")
	issued, err := p.ca.IssueClient(ca.ClientRequest{Name: "alice", Validity: validity}, p.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.store.PutCertificate(t.Context(), store.CertificateOf(issued.Cert, "alice", p.clock.Now())); err != nil {
		t.Fatal(err)
	}
	return issued
}

// requestFor makes a request on b and returns its id and code.
func requestFor(t *testing.T, b *browser, name string) (id, code string) {
	t.Helper()
	r := b.jsonDo(http.MethodPost, "/api/account/enrollments", map[string]string{"name": name})
	wantStatus(t, "request "+name, r, http.StatusCreated)
	var e struct{ ID, Code string }
	if err := json.Unmarshal([]byte(r.Body), &e); err != nil || e.ID == "" || len(e.Code) != 6 {
		t.Fatalf("request = %s (%v)", r.Body, err)
	}
	return e.ID, e.Code
}

// wantCode checks a JSON error's status and machine code.
func wantCode(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	wantStatus(t, what, r, status)
	var e struct{ Error, Code string }
	if err := json.Unmarshal([]byte(r.Body), &e); err != nil || e.Code != code || e.Error == "" {
		t.Errorf("%s: body %s, want code %q with plain words", what, r.Body, code)
	}
}

func TestEnrollment_ExpiredRequestIsNeitherApprovedNorIssued(t *testing.T) {
	p := newPortal(t)
	laptop := p.browser(tlsCertificate(addAlice(t, p, 0)))
	laptop.login("alice", alicePassword)
	phone := p.browser()
	phone.login("alice", alicePassword)

	id, code := requestFor(t, phone, "phone")
	p.clock.Advance(15 * time.Minute)
	wantCode(t, "approve after 15 minutes", laptop.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/approve", map[string]string{"code": code}),
		http.StatusConflict, "request_expired")

	id, code = requestFor(t, phone, "phone again")
	p.clock.Advance(14 * time.Minute)
	wantStatus(t, "approve at 14 minutes", laptop.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/approve", map[string]string{"code": code}), http.StatusOK)
	// Approval gives the device fifteen minutes from then.
	p.clock.Advance(14 * time.Minute)
	p.clock.Advance(time.Minute)
	wantCode(t, "issue 15 minutes after approval", phone.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/issue", map[string]string{"format": "p12"}),
		http.StatusConflict, "request_expired")
}

func TestEnrollment_ApprovalWithTOTPOnlyWhereTheOperatorAllowsIt(t *testing.T) {
	p := newPortalWith(t, func(c *server.Config) { c.EnrollWithTOTP = true })
	p.addAccount("alice", alicePassword, "employee")
	signIn := func(secret string) *browser {
		t.Helper()
		b := p.browser()
		b.login("alice", alicePassword)
		wantStatus(t, "TOTP step", b.post("/login/totp", url.Values{"code": {codeAt(t, secret, p.clock.Now())}}), http.StatusSeeOther)
		p.clock.Advance(auth.TOTPPeriod)
		return b
	}

	// A stolen password alone must not become a certificate: set up TOTP
	// on the attacker's phone, then approve with it. TOTP set up less than
	// a week ago approves nothing.
	attacker := p.browser()
	secret, _ := enroll(t, p, attacker, "alice", alicePassword)
	id, _ := requestFor(t, attacker, "attacker's phone")
	wantCode(t, "approve with TOTP set up just now", attacker.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/approve",
		map[string]string{"totp": codeAt(t, secret, p.clock.Now())}), http.StatusForbidden, "totp_too_new")

	p.clock.Advance(7 * 24 * time.Hour)
	phone := signIn(secret)
	id, _ = requestFor(t, phone, "phone")
	other := signIn(secret)

	approve := func(b *browser, body map[string]string) response {
		return b.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/approve", body)
	}
	wantCode(t, "another session with a TOTP code", approve(other, map[string]string{"totp": codeAt(t, secret, p.clock.Now())}), http.StatusForbidden, "not_your_request")
	wantCode(t, "a recovery code", approve(phone, map[string]string{"totp": "abcd-efgh"}), http.StatusBadRequest, "bad_code")
	wantCode(t, "a wrong TOTP code", approve(phone, map[string]string{"totp": "000000"}), http.StatusUnauthorized, "bad_code")
	wantStatus(t, "the requesting session with a fresh code", approve(phone, map[string]string{"totp": codeAt(t, secret, p.clock.Now())}), http.StatusOK)
	r := phone.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/issue", map[string]string{"format": "p12"})
	wantStatus(t, "issue", r, http.StatusCreated)
}

func TestEnrollment_ApprovalWithTOTPIsOffByDefault(t *testing.T) {
	p := newPortal(t)
	p.addAccount("alice", alicePassword, "employee")
	phone := p.browser()
	secret, _ := enroll(t, p, phone, "alice", alicePassword)
	id, _ := requestFor(t, phone, "phone")
	wantCode(t, "approve with a TOTP code", phone.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/approve",
		map[string]string{"totp": codeAt(t, secret, p.clock.Now())}), http.StatusForbidden, "totp_approval_off")
}

func TestEnrollment_CertificatesPerAccountAreLimited(t *testing.T) {
	p := newPortalWith(t, func(c *server.Config) { c.MaxDeviceCertificates = 1 })
	laptop := p.browser(tlsCertificate(addAlice(t, p, 0)))
	laptop.login("alice", alicePassword)
	phone := p.browser()
	phone.login("alice", alicePassword)
	id, code := requestFor(t, phone, "phone")
	wantStatus(t, "approve", laptop.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/approve", map[string]string{"code": code}), http.StatusOK)
	r := phone.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/issue", map[string]string{"format": "p12"})
	wantCode(t, "issue beyond the limit", r, http.StatusConflict, "too_many_certificates")
	if !strings.Contains(r.Body, "revoke one") {
		t.Errorf("the refusal does not say what to do: %s", r.Body)
	}
}

func TestRenewal_FromTheDeviceWithinThirtyDays(t *testing.T) {
	p := newPortal(t)
	due := addAlice(t, p, 40*24*time.Hour)
	other, err := p.ca.IssueClient(ca.ClientRequest{Name: "alice"}, p.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.store.PutCertificate(t.Context(), store.CertificateOf(other.Cert, "alice", p.clock.Now())); err != nil {
		t.Fatal(err)
	}
	serial := auth.SerialText(due.Cert)
	renew := func(b *browser, serial string) response {
		return b.jsonDo(http.MethodPost, "/api/account/certificates/"+serial+"/renew", map[string]string{"format": "p12"})
	}

	laptop := p.browser(tlsCertificate(due))
	laptop.login("alice", alicePassword)
	wantCode(t, "renew 40 days before the end", renew(laptop, serial), http.StatusConflict, "not_due")

	p.clock.Advance(11 * 24 * time.Hour)
	laptop = p.browser(tlsCertificate(due))
	laptop.login("alice", alicePassword)
	if r := laptop.get("/"); !strings.Contains(r.Body, "Renew it now") {
		t.Errorf("the home page of a certificate ending in 29 days has no renewal notice")
	}
	wantCode(t, "renew another certificate", renew(laptop, auth.SerialText(other.Cert)), http.StatusForbidden, "not_this_certificate")
	noCert := p.browser()
	noCert.login("alice", alicePassword)
	wantCode(t, "renew without a certificate", renew(noCert, serial), http.StatusForbidden, "certificate_required")

	r := renew(laptop, serial)
	wantStatus(t, "renew 29 days before the end", r, http.StatusCreated)
	var d struct {
		Serial   string    `json:"serial"`
		NotAfter time.Time `json:"not_after"`
	}
	if err := json.Unmarshal([]byte(r.Body), &d); err != nil || d.Serial == serial || !d.NotAfter.After(due.Cert.NotAfter) {
		t.Errorf("renewal = %s (%v), want a new certificate that ends later", r.Body, err)
	}
	certs, err := p.store.Certificates(t.Context(), "alice")
	if err != nil || len(certs) != 3 {
		t.Fatalf("alice's certificates after renewal: %d, %v; want 3", len(certs), err)
	}
}

func TestRenewal_OnceAndRevokedWithTheCertificateItRenewed(t *testing.T) {
	p := newPortal(t)
	due := addAlice(t, p, 20*24*time.Hour)
	serial := auth.SerialText(due.Cert)
	laptop := p.browser(tlsCertificate(due))
	laptop.login("alice", alicePassword)
	renew := func() response {
		return laptop.jsonDo(http.MethodPost, "/api/account/certificates/"+serial+"/renew", map[string]string{"format": "p12"})
	}
	r := renew()
	wantStatus(t, "first renewal", r, http.StatusCreated)
	var d struct{ Serial string }
	if err := json.Unmarshal([]byte(r.Body), &d); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "second renewal of the same certificate", renew(), http.StatusConflict, "already_renewed")

	// Revoking the old certificate (lost with the laptop) revokes its
	// renewal too: a renewal made by a thief must not outlive it.
	phone := p.browser()
	phone.login("alice", alicePassword)
	r = phone.jsonDo(http.MethodPost, "/api/account/certificates/"+serial+"/revoke", map[string]string{"password": alicePassword, "reason": "laptop stolen"})
	wantStatus(t, "revoke the stolen certificate", r, http.StatusOK)
	for _, s := range []string{serial, d.Serial} {
		c, ok := findCert(t, p, "alice", s)
		if !ok || c.RevokedAt.IsZero() {
			t.Errorf("certificate %s after revoking %s: %+v, want revoked", s, serial, c)
		}
	}
}

func findCert(t *testing.T, p *portal, user, serial string) (store.Certificate, bool) {
	t.Helper()
	certs, err := p.store.Certificates(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	return store.FindCertificate(certs, serial)
}

func TestEnrollment_RequestsPerAccountAreThrottled(t *testing.T) {
	p := newPortal(t)
	p.addAccount("alice", alicePassword, "employee")
	phone := p.browser()
	phone.login("alice", alicePassword)
	for i := range 10 {
		id, _ := requestFor(t, phone, "phone "+string(rune('a'+i)))
		wantStatus(t, "cancel", phone.jsonDo(http.MethodDelete, "/api/account/enrollments/"+id, nil), http.StatusOK)
	}
	r := phone.jsonDo(http.MethodPost, "/api/account/enrollments", map[string]string{"name": "one more"})
	wantCode(t, "the eleventh request in a row", r, http.StatusTooManyRequests, "throttled")
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("a throttled request has no Retry-After")
	}
}

func TestEnrollment_HelpdeskSeesNoRequestsOfPrivilegedAccounts(t *testing.T) {
	p := newPortal(t)
	p.addAccount("hana", alicePassword, "helpdesk", "employee")
	issued, err := p.ca.IssueClient(ca.ClientRequest{Name: "hana"}, p.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	hana := p.browser(tlsCertificate(issued))
	hana.login("hana", alicePassword)
	adminPhone := p.browser()
	adminPhone.login("admin", adminPassword)
	requestFor(t, adminPhone, "admin's phone")
	wantCode(t, "help desk lists an admin's requests", hana.get("/api/helpdesk/users/admin/enrollments"), http.StatusForbidden, "privileged_target")
}

func TestRenewal_ConcurrentRenewalsGiveOneCertificate(t *testing.T) {
	p := newPortal(t)
	due := addAlice(t, p, 20*24*time.Hour)
	serial := auth.SerialText(due.Cert)
	laptop := p.browser(tlsCertificate(due))
	laptop.login("alice", alicePassword)
	const n = 20
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- laptop.jsonDo(http.MethodPost, "/api/account/certificates/"+serial+"/renew", map[string]string{"format": "p12"}).Status
		}()
	}
	wg.Wait()
	close(statuses)
	created := 0
	for s := range statuses {
		if s == http.StatusCreated {
			created++
		} else if s != http.StatusConflict && s != http.StatusServiceUnavailable {
			t.Errorf("a concurrent renewal answered %d", s)
		}
	}
	if created != 1 {
		t.Errorf("%d of %d concurrent renewals made a certificate, want 1", created, n)
	}
	certs, err := p.store.Certificates(t.Context(), "alice")
	if err != nil || len(certs) != 2 {
		t.Errorf("alice holds %d certificates after concurrent renewals (%v), want 2", len(certs), err)
	}
}

// Approval comes from another device: a signed-in session with a
// certificate (a laptop left behind, say) cannot approve its own request
// and take a new key that would be no renewal of its certificate, and
// so would outlive that certificate's revocation.
func TestEnrollment_RequestingDeviceCannotApproveItsOwnRequest(t *testing.T) {
	p := newPortal(t)
	issued := addAlice(t, p, 0)
	laptop := p.browser(tlsCertificate(issued))
	laptop.login("alice", alicePassword)
	id, code := requestFor(t, laptop, "a second key")
	wantCode(t, "the requesting session approves its own request", laptop.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/approve",
		map[string]string{"code": code}), http.StatusForbidden, "own_request")
	wantCode(t, "issue after the refused approval", laptop.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/issue",
		map[string]string{"format": "p12"}), http.StatusConflict, "not_approved")

	// Another session of the account with the certificate may.
	other := p.browser(tlsCertificate(issued))
	other.login("alice", alicePassword)
	wantStatus(t, "approval from another session with the certificate", other.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/approve",
		map[string]string{"code": code}), http.StatusOK)
}

// A renewal the portal refuses (a certificate request it cannot use)
// issues nothing, so it does not spend the certificate's one renewal.
func TestRenewal_RefusedCSRDoesNotSpendTheRenewal(t *testing.T) {
	p := newPortal(t)
	due := addAlice(t, p, 20*24*time.Hour)
	laptop := p.browser(tlsCertificate(due))
	laptop.login("alice", alicePassword)
	path := "/api/account/certificates/" + auth.SerialText(due.Cert) + "/renew"
	bad := laptop.jsonDo(http.MethodPost, path, map[string]string{"format": "pem",
		"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"})
	wantCode(t, "renewal with a broken CSR", bad, http.StatusBadRequest, "bad_csr")
	wantStatus(t, "renewal after the refused one", laptop.jsonDo(http.MethodPost, path, map[string]string{"format": "p12"}), http.StatusCreated)
}

// revokeOnRenewal is the portal's store, where the certificate a renewal
// renews is revoked at the moment the renewal is recorded: as if its
// owner revoked it from another device while the renewal was made.
type revokeOnRenewal struct {
	store.Store
}

func (s revokeOnRenewal) PutCertificate(ctx context.Context, c store.Certificate) error {
	if c.RenewedFrom != "" {
		if _, err := store.RevokeWithRenewals(ctx, s.Store, c.RenewedFrom, time.Now(), "laptop stolen"); err != nil {
			return err
		}
	}
	return s.Store.PutCertificate(ctx, c)
}

// A renewal recorded just after the certificate it renews was revoked
// (before the revocation could see it) is revoked too, and handed to
// nobody.
func TestRenewal_OfACertificateRevokedMeanwhileIsRevokedAndNotIssued(t *testing.T) {
	p := newPortalWith(t, func(c *server.Config) { c.Store = revokeOnRenewal{c.Store} })
	due := addAlice(t, p, 20*24*time.Hour)
	laptop := p.browser(tlsCertificate(due))
	laptop.login("alice", alicePassword)
	r := laptop.jsonDo(http.MethodPost, "/api/account/certificates/"+auth.SerialText(due.Cert)+"/renew", map[string]string{"format": "p12"})
	wantCode(t, "renewal of a certificate revoked meanwhile", r, http.StatusConflict, "certificate_revoked")
	certs, err := p.store.Certificates(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		if c.RevokedAt.IsZero() {
			t.Errorf("certificate %s (renewed from %q) is valid after its original was revoked", c.Serial, c.RenewedFrom)
		}
	}
}

// Every request, refusal and revocation of a device's certificate is in
// the audit trail with the device's name.
func TestEnrollment_RefusalsAndRevocationsAreAuditedWithTheDevice(t *testing.T) {
	p := newPortal(t)
	laptop := p.browser(tlsCertificate(addAlice(t, p, 0)))
	laptop.login("alice", alicePassword)
	phone := p.browser()
	phone.login("alice", alicePassword)
	events := func(action string) []store.AuditEvent {
		t.Helper()
		page, err := p.store.Audit(t.Context(), store.AuditQuery{User: "alice", Action: action})
		if err != nil {
			t.Fatal(err)
		}
		return page.Items
	}
	wantEvent := func(what, action, outcome, in string) {
		t.Helper()
		for _, ev := range events(action) {
			if ev.Outcome == outcome && strings.Contains(ev.Reason, in) {
				return
			}
		}
		t.Errorf("%s: no %s event with outcome %s naming %q; have %+v", what, action, outcome, in, events(action))
	}

	t.Run("revocation by its owner names the device", func(t *testing.T) {
		id, code := requestFor(t, phone, "Alice's Pixel")
		wantStatus(t, "approve", laptop.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/approve", map[string]string{"code": code}), http.StatusOK)
		r := phone.jsonDo(http.MethodPost, "/api/account/enrollments/"+id+"/issue", map[string]string{"format": "p12"})
		wantStatus(t, "issue", r, http.StatusCreated)
		var d struct{ Serial string }
		if err := json.Unmarshal([]byte(r.Body), &d); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, "revoke", laptop.jsonDo(http.MethodPost, "/api/account/certificates/"+d.Serial+"/revoke",
			map[string]string{"password": alicePassword, "reason": "phone lost"}), http.StatusOK)
		wantEvent("owner's revocation", "account.certificate.revoke", "success", `phone lost; device "Alice's Pixel", serial `+d.Serial)
	})
	t.Run("a refused request", func(t *testing.T) {
		for i := range 3 {
			requestFor(t, phone, "tablet "+string(rune('a'+i)))
		}
		r := phone.jsonDo(http.MethodPost, "/api/account/enrollments", map[string]string{"name": "one too many"})
		wantCode(t, "fourth open request", r, http.StatusConflict, "too_many_requests")
		wantEvent("refused request", "enrollment.request", "failure", `device "one too many", refused: too_many_requests`)
	})
	t.Run("a refused issue", func(t *testing.T) {
		var mine struct {
			Enrollments []struct{ ID, Name, Status string }
		}
		if err := json.Unmarshal([]byte(phone.get("/api/account/enrollments").Body), &mine); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(mine.Enrollments, func(e struct{ ID, Name, Status string }) bool { return e.Name == "tablet a" })
		if i < 0 {
			t.Fatalf("no request named tablet a in %+v", mine)
		}
		r := phone.jsonDo(http.MethodPost, "/api/account/enrollments/"+mine.Enrollments[i].ID+"/issue", map[string]string{"format": "p12"})
		wantCode(t, "issue before approval", r, http.StatusConflict, "not_approved")
		wantEvent("refused issue", "enrollment.issue", "failure", `device "tablet a", request `+mine.Enrollments[i].ID+", refused: not_approved")
	})
	t.Run("a refused renewal", func(t *testing.T) {
		certs, err := p.store.Certificates(t.Context(), "alice")
		if err != nil || len(certs) == 0 {
			t.Fatal(err)
		}
		r := phone.jsonDo(http.MethodPost, "/api/account/certificates/"+certs[0].Serial+"/renew", map[string]string{"format": "p12"})
		wantCode(t, "renew without a certificate", r, http.StatusForbidden, "certificate_required")
		wantEvent("refused renewal", "certificate.renew", "failure", "serial "+certs[0].Serial+", refused: certificate_required")
	})
}
