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
	if strings.Count(r.Body, "this device") != 1 {
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
