package tests

import (
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"
)

// A user revokes the certificate of a lost device in a few clicks, with
// the password asked again; the other device keeps working, and nobody
// can touch another account's certificates.
func TestDevices_OwnerRevokesALostDevice(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	p.cli(t, "", "role", "set", "finance", "--require-certificate")
	p.cli(t, danaPassword+"\n", "user", "add", "dana", "--role", "employee", "--role", "finance", "--password-stdin")
	dir := t.TempDir()
	p.cli(t, "", "cert", "issue", "dana", "--out", filepath.Join(dir, "laptop"))
	p.cli(t, "", "cert", "issue", "dana", "--out", filepath.Join(dir, "tablet"))
	laptopCert, tabletCert := loadCert(t, filepath.Join(dir, "laptop")), loadCert(t, filepath.Join(dir, "tablet"))
	laptopFP, tabletFP := fingerprintOfFile(t, filepath.Join(dir, "laptop.crt")), fingerprintOfFile(t, filepath.Join(dir, "tablet.crt"))
	laptop, tablet := p.client(t, &laptopCert), p.client(t, &tabletCert)
	wantRedirect(t, laptop.login(t, "dana", danaPassword), "/")
	wantRedirect(t, tablet.login(t, "dana", danaPassword), "/")

	wantPage(t, laptop.get(t, "/"), http.StatusOK, `href="/account/certificates"`)
	r := laptop.get(t, "/account/certificates")
	wantPage(t, r, http.StatusOK, laptopFP, tabletFP, "this device")
	if strings.Count(r.Body, `<span class="tag ok">this device</span>`) != 1 {
		t.Errorf("more than one certificate is marked as this device:\n%s", r.Body)
	}

	// A wrong password revokes nothing.
	r = laptop.post(t, "/account/certificates/"+tabletFP+"/revoke", url.Values{"password": {"not my password at all"}})
	wantPage(t, r, http.StatusUnauthorized, "the certificate was not revoked")
	if s := tablet.session(t); !slices.Contains(s.EffectiveRoles, "finance") {
		t.Fatalf("the tablet lost finance after a refused revocation: %+v", s)
	}

	// The right one does, at once; the laptop keeps its certificate roles.
	r = laptop.post(t, "/account/certificates/"+tabletFP+"/revoke", url.Values{"password": {danaPassword}})
	wantRedirect(t, r, "/account/certificates?done")
	wantPage(t, laptop.follow(t, r), http.StatusOK, "The certificate was revoked", "revoked")
	s := tablet.session(t)
	if slices.Contains(s.EffectiveRoles, "finance") {
		t.Errorf("the tablet still has finance after its certificate was revoked: %+v", s)
	}
	wantNotice(t, s, "revoked")
	if s := laptop.session(t); !slices.Contains(s.EffectiveRoles, "finance") {
		t.Errorf("the laptop lost finance when the tablet's certificate was revoked: %+v", s)
	}

	// Another account's certificate is nobody else's to revoke, or see.
	adminFP := fingerprintOfFile(t, filepath.Join(p.Data, "initial-admin.crt"))
	wantStatus(t, laptop.post(t, "/account/certificates/"+adminFP+"/revoke", url.Values{"password": {danaPassword}}), http.StatusNotFound)
	if r := laptop.get(t, "/account/certificates"); strings.Contains(r.Body, adminFP) {
		t.Error("dana's certificate page lists the admin's certificate")
	}

	// The same for scripts.
	var list struct {
		Certificates []struct {
			Fingerprint string `json:"fingerprint"`
			Status      string `json:"status"`
		} `json:"certificates"`
	}
	resp := laptop.get(t, "/api/account/certificates")
	decodeJSON(t, resp, &list)
	if len(list.Certificates) != 2 {
		t.Fatalf("GET /api/account/certificates = %+v, want dana's two", list)
	}
	resp = laptop.jsonRequest(t, http.MethodPost, "/api/account/certificates/"+laptopFP+"/revoke", map[string]string{"password": danaPassword, "reason": "sold the laptop"})
	wantStatus(t, resp, http.StatusOK)
	if s := laptop.session(t); slices.Contains(s.EffectiveRoles, "finance") {
		t.Errorf("the laptop kept finance after revoking its own certificate: %+v", s)
	}
	events, _ := p.audit(t, 50)
	n := 0
	for _, e := range events {
		if e.Action == "account.certificate.revoke" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d account.certificate.revoke events in the audit trail, want 2", n)
	}
}

// The help desk issues a certificate for a user's new device from the
// portal: a .p12 and its password, once; the certificate signs in at once.
func TestDevices_HelpDeskIssuesANewDeviceCertificate(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	p.cli(t, "", "role", "set", "finance", "--require-certificate")
	p.cli(t, danaPassword+"\n", "user", "add", "dana", "--role", "employee", "--role", "finance", "--email", "dana@example.com", "--password-stdin")
	p.cli(t, "a long passphrase for hank, 2026\n", "user", "add", "hank", "--role", "helpdesk", "--role", "employee", "--password-stdin")
	hank := p.issuedCert(t, "hank")
	wantRedirect(t, hank.login(t, "hank", "a long passphrase for hank, 2026"), "/")

	// Boundaries: a reason, not oneself, not an admin.
	wantStatus(t, hank.jsonRequest(t, http.MethodPost, "/api/helpdesk/users/dana/certificate", map[string]string{"reason": ""}), http.StatusBadRequest)
	wantStatus(t, hank.jsonRequest(t, http.MethodPost, "/api/helpdesk/users/hank/certificate", map[string]string{"reason": "T-1"}), http.StatusForbidden)
	wantStatus(t, hank.jsonRequest(t, http.MethodPost, "/api/helpdesk/users/admin/certificate", map[string]string{"reason": "T-1"}), http.StatusForbidden)

	// The API: the .p12 and its password, once.
	var out struct {
		P12         string `json:"p12"`
		P12Password string `json:"p12_password"`
		Certificate struct {
			Fingerprint string `json:"fingerprint"`
			User        string `json:"user"`
		} `json:"certificate"`
	}
	r := hank.jsonRequest(t, http.MethodPost, "/api/helpdesk/users/dana/certificate", map[string]string{"reason": "T-7 new phone"})
	wantStatus(t, r, http.StatusCreated)
	decodeJSON(t, r, &out)
	noteSecret(out.P12Password)
	der, err := base64.StdEncoding.DecodeString(out.P12)
	if err != nil {
		t.Fatal(err)
	}
	key, leaf, _, err := pkcs12.DecodeChain(der, out.P12Password)
	if err != nil {
		t.Fatalf("the .p12 does not open with its password: %v", err)
	}
	if leaf.Subject.CommonName != "dana" || fingerprint(leaf) != out.Certificate.Fingerprint {
		t.Errorf("issued certificate %s (%s), answer says %s", leaf.Subject, fingerprint(leaf), out.Certificate.Fingerprint)
	}
	phone := p.client(t, &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf})
	wantRedirect(t, phone.login(t, "dana", danaPassword), "/")
	if s := phone.session(t); !slices.Contains(s.EffectiveRoles, "finance") {
		t.Errorf("the new phone's session lacks finance: %+v", s)
	}
	wantPage(t, phone.get(t, "/account/certificates"), http.StatusOK, out.Certificate.Fingerprint, "this device")

	// Staff hand over a person's first certificate only: with one, the
	// next comes from a request on the new device that staff approve.
	wantAPIError(t, hank.jsonRequest(t, http.MethodPost, "/api/helpdesk/users/dana/certificate", map[string]string{"reason": "T-8 new laptop"}),
		http.StatusConflict, "has_certificate", "Get a certificate for this device")

	// The page, for a first device: a download link that carries the
	// file, and the password.
	p.cli(t, "a long passphrase for erin, 2026\n", "user", "add", "erin", "--role", "employee", "--password-stdin")
	r = hank.post(t, "/helpdesk/users/erin/certificate", url.Values{"reason": {"T-9 first laptop"}})
	wantPage(t, r, http.StatusCreated, "New certificate for erin", "Download erin.p12", "shown only now")
	if !strings.Contains(r.Body, `href="data:application/x-pkcs12;base64,`) {
		t.Errorf("the page has no download link carrying the file:\n%.2000s", r.Body)
	}
	events, _ := p.audit(t, 50)
	n := 0
	for _, e := range events {
		if e.Action == "helpdesk.certificate.issue" && e.Outcome == "success" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d successful helpdesk.certificate.issue events, want 2", n)
	}
}
