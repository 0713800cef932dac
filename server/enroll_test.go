package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
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
	phone := p.browser()
	secret, _ := enroll(t, p, phone, "alice", alicePassword)
	// enroll left phone signed in; sign in afresh with the code step.
	phone = p.browser()
	phone.login("alice", alicePassword)
	wantStatus(t, "TOTP step", phone.post("/login/totp", url.Values{"code": {codeAt(t, secret, p.clock.Now())}}), http.StatusSeeOther)
	p.clock.Advance(auth.TOTPPeriod)

	id, _ := requestFor(t, phone, "phone")
	other := p.browser()
	other.login("alice", alicePassword)
	wantStatus(t, "TOTP step of another session", other.post("/login/totp", url.Values{"code": {codeAt(t, secret, p.clock.Now())}}), http.StatusSeeOther)
	p.clock.Advance(auth.TOTPPeriod)

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
