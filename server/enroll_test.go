package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
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
