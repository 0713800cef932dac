package tests

import (
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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

// Staff never hand over a key: the help desk cannot make a .p12 and its
// password for anyone, not even for a first device. The first device's
// certificate comes from a request on that device, which staff approve
// with the code the person reads out; the page says so.
func TestDevices_HelpDeskNeverHandsOverAKey(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	p.cli(t, danaPassword+"\n", "user", "add", "dana", "--role", "employee", "--email", "dana@example.com", "--password-stdin")
	p.cli(t, "a long passphrase for hank, 2026\n", "user", "add", "hank", "--role", "helpdesk", "--role", "employee", "--password-stdin")
	hank := p.issuedCert(t, "hank")
	wantRedirect(t, hank.login(t, "hank", "a long passphrase for hank, 2026"), "/")

	r := hank.jsonRequest(t, http.MethodPost, "/api/helpdesk/users/dana/certificate", map[string]string{"reason": "T-7 first laptop"})
	wantAPIError(t, r, http.StatusGone, "use_enrollment", "sign in on the new device", "approve")
	if strings.Contains(r.Body, "p12") || strings.Contains(r.Body, "BEGIN") {
		t.Errorf("the refusal carries a key or certificate: %.300s", r.Body)
	}
	r = hank.post(t, "/helpdesk/users/dana/certificate", url.Values{"reason": {"T-7 first laptop"}})
	wantPage(t, r, http.StatusGone, "sign in on the new device")
	if strings.Contains(r.Body, "data:application/x-pkcs12") {
		t.Errorf("the page carries a .p12:\n%.2000s", r.Body)
	}
	if n := len(p.certList(t, "dana")); n != 0 {
		t.Errorf("dana has %d certificates after the help desk asked for one, want 0", n)
	}

	// The help desk's page of dana offers no key, and tells staff how a
	// new device gets its certificate.
	page := hank.get(t, "/helpdesk/users/dana")
	wantPage(t, page, http.StatusOK, "Get a certificate for this device", "the code")
	if strings.Contains(page.Body, "/helpdesk/users/dana/certificate") || strings.Contains(page.Body, ".p12") {
		t.Errorf("the help desk's page still offers to issue a certificate:\n%.3000s", page.Body)
	}
}
