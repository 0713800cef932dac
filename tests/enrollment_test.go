package tests

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// A certificate for a new device, with nobody handling keys: requested
// on the new device, approved by number matching on a device that has
// the account's certificate (or by the help desk), issued once to the
// device that asked.

// enrollment is a request as the API shows it.
type enrollment struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Status        string    `json:"status"`
	Code          string    `json:"code"`
	ExpiresAt     time.Time `json:"expires_at"`
	CreatedAt     time.Time `json:"created_at"`
	RequestedFrom string    `json:"requested_from"`
	UserAgent     string    `json:"user_agent"`
	ApprovedBy    string    `json:"approved_by"`
	Serial        string    `json:"serial"`
}

// delivered is the answer of an issue or a renewal.
type delivered struct {
	Format         string    `json:"format"`
	Certificate    string    `json:"certificate"`
	File           string    `json:"file"`
	Filename       string    `json:"filename"`
	ImportPassword string    `json:"import_password"`
	Fingerprint    string    `json:"fingerprint"`
	Serial         string    `json:"serial"`
	NotAfter       time.Time `json:"not_after"`
}

const alicePassword = "alice's long passphrase for the portal, 2026"

// enrollmentPortal starts a portal with alice (employee, and ops, which
// needs a certificate) and her laptop, which holds a certificate from the
// CLI: the device already trusted.
func enrollmentPortal(t *testing.T, serveFlags ...string) (p *portal, laptop *client) {
	t.Helper()
	p = initPortal(t)
	p.start(t, serveFlags...)
	p.cli(t, "", "role", "set", "ops", "--require-certificate")
	p.cli(t, alicePassword+"\n", "user", "add", "alice", "--email", "alice@example.com", "--role", "employee", "--role", "ops", "--password-stdin")
	cert, _, _ := p.issueCert(t, "alice")
	laptop = p.signIn(t, &cert, "alice", alicePassword)
	wantEffective(t, "alice on her laptop", laptop.session(t), "employee", "ops")
	return p, laptop
}

// request asks for a certificate for c's device and checks the answer.
func (c *client) request(t *testing.T, name, csr string) enrollment {
	t.Helper()
	body := map[string]string{"name": name}
	if csr != "" {
		body["csr"] = csr
	}
	r := c.jsonRequest(t, "POST", "/api/account/enrollments", body)
	wantStatus(t, r, http.StatusCreated)
	var e enrollment
	decodeJSON(t, r, &e)
	if e.ID == "" || e.Name != name || e.Status != "pending" || !regexp.MustCompile(`^[0-9]{6}$`).MatchString(e.Code) {
		t.Fatalf("request = %+v, want an id, name %q, status pending and a 6-digit code", e, name)
	}
	if d := time.Until(e.ExpiresAt); d < 14*time.Minute || d > 16*time.Minute {
		t.Errorf("request expires in %v, want 15 minutes", d)
	}
	return e
}

// enrollments lists c's account's requests by ID.
func (c *client) enrollments(t *testing.T) map[string]enrollment {
	t.Helper()
	r := c.jsonRequest(t, "GET", "/api/account/enrollments", nil)
	wantStatus(t, r, http.StatusOK)
	var out struct {
		Enrollments []enrollment `json:"enrollments"`
	}
	decodeJSON(t, r, &out)
	m := map[string]enrollment{}
	for _, e := range out.Enrollments {
		m[e.ID] = e
	}
	return m
}

func (c *client) approve(t *testing.T, id string, body map[string]string) response {
	t.Helper()
	return c.jsonRequest(t, "POST", "/api/account/enrollments/"+id+"/approve", body)
}

func (c *client) issue(t *testing.T, id, format string) response {
	t.Helper()
	return c.jsonRequest(t, "POST", "/api/account/enrollments/"+id+"/issue", map[string]string{"format": format})
}

// delivery decodes a 201 with a certificate.
func delivery(t *testing.T, r response) delivered {
	t.Helper()
	wantStatus(t, r, http.StatusCreated)
	var d delivered
	decodeJSON(t, r, &d)
	if d.Serial == "" || !strings.HasPrefix(d.Fingerprint, "sha256:") || d.NotAfter.IsZero() {
		t.Fatalf("delivery = %+v, want serial, fingerprint and not_after", d)
	}
	return d
}

// p12Identity opens a delivered PKCS#12 file with its import password
// and checks what it holds.
func p12Identity(t *testing.T, d delivered) tls.Certificate {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(d.File)
	if err != nil || len(raw) == 0 || d.ImportPassword == "" {
		t.Fatalf("delivered file does not decode (%v) or has no import password: %+v", err, d)
	}
	key, leaf, cas, err := pkcs12.DecodeChain(raw, d.ImportPassword)
	if err != nil {
		t.Fatalf("the %s file does not open with its import password: %v", d.Format, err)
	}
	if len(cas) != 1 || !cas[0].IsCA {
		t.Errorf("the %s file holds %d CA certificates, want the portal's CA", d.Format, len(cas))
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

// wantAliceCertificate checks that a delivered certificate is made for
// alice by the portal, whatever the request asked for.
func wantAliceCertificate(t *testing.T, leaf *x509.Certificate, d delivered) {
	t.Helper()
	if leaf.Subject.CommonName != "alice" || !slices.Equal(leaf.EmailAddresses, []string{"alice@example.com"}) || len(leaf.DNSNames) > 0 {
		t.Errorf("certificate subject %q, emails %q, DNS names %q; want CN alice and alice@example.com only", leaf.Subject, leaf.EmailAddresses, leaf.DNSNames)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || leaf.IsCA {
		t.Errorf("certificate usages %v, CA %v; want client authentication, not a CA", leaf.ExtKeyUsage, leaf.IsCA)
	}
	if leaf.SerialNumber.Text(16) != d.Serial || fingerprint(leaf) != d.Fingerprint {
		t.Errorf("delivered serial %s / fingerprint %s do not name the certificate (%s / %s)", d.Serial, d.Fingerprint, leaf.SerialNumber.Text(16), fingerprint(leaf))
	}
}

func TestEnrollment_NewDeviceJourney(t *testing.T) {
	t.Parallel()
	p, laptop := enrollmentPortal(t)

	// The new phone signs in with the password alone: employee only.
	phone := p.signIn(t, nil, "alice", alicePassword)
	wantEffective(t, "alice on the new phone", phone.session(t), "employee")
	wantPage(t, phone.get(t, "/"), http.StatusOK, `href="/account/enrollments"`, "Get a certificate for this device")

	e := phone.request(t, "Alice's Pixel", "")

	// The code is shown on the phone only.
	if got := phone.enrollments(t)[e.ID]; got.Code != e.Code {
		t.Errorf("the requesting device's list shows code %q, want %q", got.Code, e.Code)
	}
	seen := laptop.enrollments(t)[e.ID]
	if seen.Status != "pending" || seen.Code != "" || seen.Name != "Alice's Pixel" || seen.RequestedFrom == "" || seen.UserAgent == "" {
		t.Errorf("the laptop sees %+v, want the pending request with device, address and browser but no code", seen)
	}
	home := laptop.get(t, "/")
	wantPage(t, home, http.StatusOK, "A new device asks for your certificate", "Alice's Pixel")
	if strings.Contains(home.Body, e.Code) {
		t.Errorf("the laptop's home page shows the code")
	}

	// The phone cannot approve itself: it has no certificate.
	wantAPIError(t, phone.approve(t, e.ID, map[string]string{"code": e.Code}), http.StatusForbidden, "certificate_required", "certificate")
	// Nor with an authenticator code, which the operator did not allow.
	wantAPIError(t, phone.approve(t, e.ID, map[string]string{"totp": "123456"}), http.StatusForbidden, "totp_approval_off")
	// Nothing is issued before approval.
	wantAPIError(t, phone.issue(t, e.ID, "p12"), http.StatusConflict, "not_approved")

	// The laptop approves with the code: a wrong one first.
	wrong := "000000"
	if e.Code == wrong {
		wrong = "111111"
	}
	wantAPIError(t, laptop.approve(t, e.ID, map[string]string{"code": wrong}), http.StatusForbidden, "code_mismatch", "2 tries left")
	r := laptop.approve(t, e.ID, map[string]string{"code": e.Code[:3] + " " + e.Code[3:]})
	wantStatus(t, r, http.StatusOK)
	if got := phone.enrollments(t)[e.ID]; got.Status != "approved" || got.ApprovedBy != "alice" {
		t.Errorf("after approval the phone sees %+v, want approved by alice", got)
	}
	wantAPIError(t, laptop.approve(t, e.ID, map[string]string{"code": e.Code}), http.StatusConflict, "already_approved")

	// Only the phone takes the certificate, once.
	wantAPIError(t, laptop.issue(t, e.ID, "p12"), http.StatusForbidden, "not_your_request")
	wantAPIError(t, phone.issue(t, e.ID, "pem"), http.StatusBadRequest, "bad_format")
	d := delivery(t, phone.issue(t, e.ID, "p12"))
	if d.Format != "p12" || !strings.HasSuffix(d.Filename, ".p12") {
		t.Errorf("delivery format %q, file %q; want p12", d.Format, d.Filename)
	}
	cert := p12Identity(t, d)
	wantAliceCertificate(t, cert.Leaf, d)
	wantAPIError(t, phone.issue(t, e.ID, "p12"), http.StatusConflict, "already_issued")

	// Signed in again with it, the phone has the roles that need it.
	again := p.signIn(t, &cert, "alice", alicePassword)
	s := again.session(t)
	wantEffective(t, "alice on the phone with its new certificate", s, "employee", "ops")
	if !slices.Contains(s.Factors, "certificate") {
		t.Errorf("factors %q, want certificate among them", s.Factors)
	}
	if row := p.certRowOf(t, d.Fingerprint); row.User != "alice" || row.Status != "valid" {
		t.Errorf("cert list shows the new certificate as %+v, want alice's, valid", row)
	}

	// Every step is in the audit trail with the device name; the code
	// never is.
	events, raw := p.audit(t, 200)
	for _, action := range []string{"enrollment.request", "enrollment.approve", "enrollment.issue"} {
		if !slices.ContainsFunc(events, func(ev auditEvent) bool {
			return ev.Action == action && ev.Outcome == "success" && strings.Contains(ev.Reason, "Alice's Pixel")
		}) {
			t.Errorf("no successful %s event naming the device in the audit trail", action)
		}
	}
	for _, refused := range []string{"certificate_required", "code_mismatch", "not_your_request"} {
		if !slices.ContainsFunc(events, func(ev auditEvent) bool { return ev.Outcome == "failure" && strings.Contains(ev.Reason, refused) }) {
			t.Errorf("no refusal %s in the audit trail", refused)
		}
	}
	if strings.Contains(raw, e.Code) {
		t.Errorf("the audit trail contains the confirmation code %s", e.Code)
	}
	if strings.Contains(raw, d.ImportPassword) {
		t.Errorf("the audit trail contains the import password")
	}
	noteSecret(d.ImportPassword)
}

func TestEnrollment_WrongCodesAndLimits(t *testing.T) {
	t.Parallel()
	p, laptop := enrollmentPortal(t)
	phone := p.signIn(t, nil, "alice", alicePassword)

	// Three wrong codes cancel the request; the right one then fails.
	e := phone.request(t, "Pixel", "")
	wrong := []string{"000001", "000002", "000003"}
	for i, code := range wrong {
		if code == e.Code {
			code = "999999"
		}
		r := laptop.approve(t, e.ID, map[string]string{"code": code})
		if i < 2 {
			wantAPIError(t, r, http.StatusForbidden, "code_mismatch", "tries left")
		} else {
			wantAPIError(t, r, http.StatusForbidden, "code_mismatch", "cancelled")
		}
	}
	wantAPIError(t, laptop.approve(t, e.ID, map[string]string{"code": e.Code}), http.StatusConflict, "request_cancelled")
	if got := phone.enrollments(t)[e.ID]; got.Status != "cancelled" || got.Code != "" {
		t.Errorf("after three wrong codes the request is %+v, want cancelled, without a code", got)
	}

	// At most three requests wait at once.
	for i := range 3 {
		phone.request(t, "Tablet "+string(rune('A'+i)), "")
	}
	wantAPIError(t, phone.jsonRequest(t, "POST", "/api/account/enrollments", map[string]string{"name": "one too many"}),
		http.StatusConflict, "too_many_requests", "3")
	// Cancelling one makes room.
	var open string
	for id, x := range phone.enrollments(t) {
		if x.Status == "pending" {
			open = id
		}
	}
	wantStatus(t, phone.jsonRequest(t, "DELETE", "/api/account/enrollments/"+open, nil), http.StatusOK)
	phone.request(t, "one more", "")

	// Bad input says what is wrong.
	for _, tc := range []struct {
		body map[string]string
		code string
	}{
		{map[string]string{"name": "  "}, "name_required"},
		{map[string]string{"name": strings.Repeat("x", 65)}, "bad_name"},
		{map[string]string{"name": "bell\a"}, "bad_name"},
	} {
		wantAPIError(t, phone.jsonRequest(t, "POST", "/api/account/enrollments", tc.body), http.StatusBadRequest, tc.code)
	}
	// A request of someone else's account does not exist for alice.
	wantAPIError(t, laptop.approve(t, "0123456789abcdef01", map[string]string{"code": "123456"}), http.StatusNotFound, "no_such_request")
}

// newCSR makes a certificate request for key that asks for names the
// portal must not give: the admin's name, another email, a host.
func newCSR(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "admin"}, EmailAddresses: []string{"admin@example.com"}, DNSNames: []string{"evil.example"},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestEnrollment_CSRApprovedByHelpdesk(t *testing.T) {
	t.Parallel()
	p, _ := enrollmentPortal(t)
	hana := p.helpdeskSignIn(t)
	device := p.signIn(t, nil, "alice", alicePassword)

	// A request whose key is weak, or whose signature is broken, is
	// refused when it is made.
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, device.jsonRequest(t, "POST", "/api/account/enrollments", map[string]string{"name": "old", "csr": newCSR(t, rsaKey)}),
		http.StatusBadRequest, "weak_key")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr := newCSR(t, key)
	block, _ := pem.Decode([]byte(csr))
	block.Bytes[len(block.Bytes)-3] ^= 0xff // in the signature
	wantAPIError(t, device.jsonRequest(t, "POST", "/api/account/enrollments", map[string]string{"name": "forged", "csr": string(pem.EncodeToMemory(block))}),
		http.StatusBadRequest, "bad_csr")

	e := device.request(t, "build server", csr)

	// The help desk sees the request but not the code, and approves with
	// a reason and the code alice reads out.
	r := hana.jsonRequest(t, "GET", "/api/helpdesk/users/alice/enrollments", nil)
	wantStatus(t, r, http.StatusOK)
	if strings.Contains(r.Body, e.Code) || !strings.Contains(r.Body, e.ID) {
		t.Errorf("the help desk's list shows the code, or not the request: %s", r.Body)
	}
	path := "/api/helpdesk/users/alice/enrollments/" + e.ID + "/approve"
	wantAPIError(t, hana.jsonRequest(t, "POST", path, map[string]string{"code": e.Code}), http.StatusBadRequest, "reason_required")
	wantStatus(t, hana.jsonRequest(t, "POST", path, map[string]string{"code": e.Code, "reason": "ticket 4711"}), http.StatusOK)

	// pem only, for the request's own key; the names are the portal's.
	wantAPIError(t, device.issue(t, e.ID, "p12"), http.StatusBadRequest, "bad_format")
	d := delivery(t, device.issue(t, e.ID, "pem"))
	if d.File != "" || d.ImportPassword != "" {
		t.Errorf("a certificate for the request's own key came with a file or password: %+v", d)
	}
	var chain []*x509.Certificate
	for rest := []byte(d.Certificate); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		chain = append(chain, parseCert(t, b.Bytes))
	}
	if len(chain) != 2 || !chain[1].IsCA {
		t.Fatalf("certificate field holds %d certificates, want the leaf then the CA", len(chain))
	}
	wantAliceCertificate(t, chain[0], d)
	if !key.PublicKey.Equal(chain[0].PublicKey) {
		t.Errorf("the certificate is not for the request's key")
	}
	cert := tls.Certificate{Certificate: [][]byte{chain[0].Raw}, PrivateKey: key}
	wantEffective(t, "alice with the certificate for her own key", p.signIn(t, &cert, "alice", alicePassword).session(t), "employee", "ops")

	events, _ := p.audit(t, 200)
	if !slices.ContainsFunc(events, func(ev auditEvent) bool {
		return ev.Action == "helpdesk.enrollment.approve" && ev.Actor == "hana" && ev.Target == "alice" && strings.Contains(ev.Reason, "ticket 4711")
	}) {
		t.Errorf("no help-desk approval by hana with the reason in the audit trail")
	}

	// The help desk's boundaries: not an admin's request.
	admin := p.adminSignIn(t)
	adminDevice := p.signIn(t, nil, "admin", p.AdminPassword)
	ae := adminDevice.request(t, "admin's phone", "")
	wantAPIError(t, hana.jsonRequest(t, "POST", "/api/helpdesk/users/admin/enrollments/"+ae.ID+"/approve",
		map[string]string{"code": ae.Code, "reason": "ticket 1"}), http.StatusForbidden, "privileged_target")
	// Nor one's own, through the help desk.
	wantAPIError(t, admin.jsonRequest(t, "POST", "/api/helpdesk/users/admin/enrollments/"+ae.ID+"/approve",
		map[string]string{"code": ae.Code, "reason": "ticket 1"}), http.StatusForbidden, "self")
}

func TestEnrollment_FormatsOpenWithRealParsers(t *testing.T) {
	t.Parallel()
	p, laptop := enrollmentPortal(t)
	for _, format := range []string{"p12", "p12-legacy", "mobileconfig"} {
		t.Run(format, func(t *testing.T) {
			device := p.signIn(t, nil, "alice", alicePassword)
			e := device.request(t, "device "+format, "")
			wantStatus(t, laptop.approve(t, e.ID, map[string]string{"code": e.Code}), http.StatusOK)
			d := delivery(t, device.issue(t, e.ID, format))
			noteSecret(d.ImportPassword)
			raw, err := base64.StdEncoding.DecodeString(d.File)
			if err != nil {
				t.Fatal(err)
			}
			p12 := raw
			if format == "mobileconfig" {
				if !strings.HasSuffix(d.Filename, ".mobileconfig") || !strings.Contains(string(raw), "com.apple.security.pkcs12") {
					t.Fatalf("the profile %s has no PKCS#12 payload:\n%s", d.Filename, raw)
				}
				m := regexp.MustCompile(`(?s)<key>PayloadType</key>\s*<string>com.apple.security.pkcs12</string>`).FindIndex(raw)
				data := regexp.MustCompile(`(?s)<data>\s*([A-Za-z0-9+/=\s]+?)\s*</data>`).FindAllSubmatch(raw, -1)
				if m == nil || len(data) == 0 {
					t.Fatalf("cannot find the PKCS#12 data in the profile:\n%s", raw)
				}
				found := false
				for _, x := range data {
					b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(x[1])), ""))
					if err == nil {
						if _, _, _, err := pkcs12.DecodeChain(b, d.ImportPassword); err == nil {
							p12, found = b, true
						}
					}
				}
				if !found {
					t.Fatalf("no data element of the profile opens as PKCS#12 with the import password")
				}
				d.File = base64.StdEncoding.EncodeToString(p12)
			}
			cert := p12Identity(t, d)
			wantAliceCertificate(t, cert.Leaf, d)
			openWithOpenSSL(t, format, p12, d.ImportPassword)
			wantEffective(t, "alice with the "+format+" certificate", p.signIn(t, &cert, "alice", alicePassword).session(t), "employee", "ops")
		})
	}
}

// openWithOpenSSL opens a PKCS#12 file with the openssl command, as a
// system that imports it would, and checks its encryption: AES for p12,
// 3DES for the legacy file (which OpenSSL 3 reads with -legacy).
func openWithOpenSSL(t *testing.T, format string, p12 []byte, password string) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is not installed; CI needs it to check the PKCS#12 files")
		}
		t.Skip("openssl is not installed: the PKCS#12 files are checked with Go's parser only")
	}
	path := filepath.Join(t.TempDir(), "device.p12")
	if err := os.WriteFile(path, p12, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"pkcs12", "-in", path, "-passin", "env:P12PASS", "-info", "-noout"}
	run := func(extra ...string) (string, error) {
		cmd := exec.Command(bin, append(args, extra...)...)
		cmd.Env = append(os.Environ(), "P12PASS="+password)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run()
	if format == "p12-legacy" {
		if err != nil {
			out, err = run("-legacy")
		}
		if err != nil || !strings.Contains(out, "TripleDES") || !strings.Contains(out, "MAC: sha1") {
			t.Errorf("openssl on the legacy file: %v, want 3DES (TripleDES) encryption and a SHA-1 MAC:\n%s", err, out)
		}
		return
	}
	if err != nil || !strings.Contains(out, "AES-256") || !strings.Contains(out, "PBKDF2") {
		t.Errorf("openssl on the %s file: %v, want AES-256 with PBKDF2:\n%s", format, err, out)
	}
}

// TestEnrollment_PagesWithoutJavaScript walks the journey as a person
// does, with forms: request on the new device, approve on the laptop's
// home page, take the file from the page that shows the import password
// and the install steps.
func TestEnrollment_PagesWithoutJavaScript(t *testing.T) {
	t.Parallel()
	p, laptop := enrollmentPortal(t)
	phone := p.signIn(t, nil, "alice", alicePassword)

	r := phone.get(t, "/account/enrollments")
	wantPage(t, r, http.StatusOK, "Ask for a certificate for this device", `name="name"`)
	r = phone.post(t, "/account/enrollments", url.Values{"name": {"Alice's iPhone"}})
	wantRedirect(t, r, "/account/enrollments?done=requested")
	r = phone.follow(t, r)
	wantPage(t, r, http.StatusOK, "“Alice's iPhone” is waiting for approval", "Your confirmation code")
	code := regexp.MustCompile(`aria-label="Confirmation code">([0-9]{6})<`).FindStringSubmatch(r.Body)
	if code == nil {
		t.Fatalf("the page shows no code:\n%s", r.Body)
	}
	if !strings.Contains(r.Body, `http-equiv="refresh"`) {
		t.Errorf("the waiting page does not refresh itself")
	}

	home := laptop.get(t, "/")
	wantPage(t, home, http.StatusOK, "Alice's iPhone", "Code shown on Alice's iPhone")
	id := regexp.MustCompile(`/account/enrollments/([0-9a-f]+)/approve`).FindStringSubmatch(home.Body)
	if id == nil {
		t.Fatalf("the home page has no approve form:\n%s", home.Body)
	}
	r = laptop.post(t, "/account/enrollments/"+id[1]+"/approve", url.Values{"code": {"12345x"}})
	wantPage(t, r, http.StatusForbidden, "does not match")
	r = laptop.post(t, "/account/enrollments/"+id[1]+"/approve", url.Values{"code": {code[1]}})
	wantRedirect(t, r, "/account/enrollments?done=approved")

	r = phone.get(t, "/account/enrollments")
	wantPage(t, r, http.StatusOK, "is approved", "Get the certificate", `value="p12"`)
	r = phone.post(t, "/account/enrollments/"+id[1]+"/issue", url.Values{"format": {"mobileconfig"}})
	wantPage(t, r, http.StatusCreated, "Import password", "iPhone and iPad", "Install it", "data:application/x-apple-aspen-config;base64,")
	if !strings.Contains(r.Header.Get("Cache-Control"), "no-store") {
		t.Errorf("the page with the certificate may be cached: Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	pw := regexp.MustCompile(`aria-label="Import password">([^<]+)<`).FindStringSubmatch(r.Body)
	if pw == nil {
		t.Fatalf("the page shows no import password")
	}
	noteSecret(pw[1])
	r = phone.post(t, "/account/enrollments/"+id[1]+"/issue", url.Values{"format": {"p12"}})
	wantPage(t, r, http.StatusConflict, "already issued")
}
