package tests

import (
	"context"
	"encoding/hex"
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

	"github.com/google/go-cmp/cmp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

var (
	manualKeyRE    = regexp.MustCompile(`class="mono key">([A-Z2-7 ]+)<`)
	recoveryCodeRE = regexp.MustCompile(`<li>([a-z2-9]{5}-[a-z2-9]{5})</li>`)
)

// totpCode is what an authenticator app shows for secret at t.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTOTP_PasswordCertificateAndCodeThroughTheRealServer enrolls the
// admin's phone through the HTML pages, then signs in with all three
// factors over real TLS.
func TestTOTP_PasswordCertificateAndCodeThroughTheRealServer(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	cert := p.adminCert(t)
	c := p.client(t, &cert)
	wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")

	// Enroll: the page shows a QR code served by the portal and the key.
	wantRedirect(t, c.post(t, "/account/totp", url.Values{}), "/account/totp")
	page := c.get(t, "/account/totp")
	wantStatus(t, page, http.StatusOK)
	m := manualKeyRE.FindStringSubmatch(page.Body)
	if m == nil || !strings.Contains(page.Body, `src="/account/totp/qr.png"`) {
		t.Fatalf("enrollment page lacks the key or the QR code:\n%s", page.Body)
	}
	secret := strings.ReplaceAll(m[1], " ", "")
	qr := c.get(t, "/account/totp/qr.png")
	if qr.Status != http.StatusOK || qr.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(qr.Body, "\x89PNG") {
		t.Fatalf("QR code: %d %q", qr.Status, qr.Header.Get("Content-Type"))
	}
	// The secret is not stored in clear.
	if dump := redisDump(t, p); strings.Contains(dump, secret) {
		t.Fatal("the TOTP secret is in the store in clear")
	}

	// The enrollment counts as a verified code; wait for the next step so
	// the first sign-in does not reuse it.
	enrolledAt := time.Now()
	done := c.post(t, "/account/totp/confirm", url.Values{"code": {totpCode(t, secret, enrolledAt)}, "password": {p.AdminPassword}})
	wantStatus(t, done, http.StatusOK)
	codes := recoveryCodeRE.FindAllStringSubmatch(done.Body, -1)
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown, want 10:\n%s", len(codes), done.Body)
	}
	if s := c.session(t); !slices.Contains(s.Factors, "totp") {
		t.Errorf("after enrollment the session lacks the totp factor: %+v", s)
	}

	// A new sign-in: password + certificate, then the code step.
	c2 := p.client(t, &cert)
	first := c2.login(t, "admin", p.AdminPassword)
	if !strings.HasPrefix(first.location(), "/login/totp") {
		t.Fatalf("after the password: Location %q, want /login/totp", first.location())
	}
	if r := c2.get(t, "/api/session"); r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, `"code":"incomplete"`) {
		t.Errorf("session before the code: %d %s, want 401 incomplete", r.Status, r.Body)
	}
	code := totpCode(t, secret, enrolledAt.Add(30*time.Second))
	wantRedirect(t, c2.post(t, "/login/totp", url.Values{"code": {code}}), "/")
	s := c2.session(t)
	if diff := cmp.Diff([]string{"password", "certificate", "totp"}, s.Factors); diff != "" {
		t.Errorf("factors (-want +got):\n%s", diff)
	}
	if !slices.Contains(s.EffectiveRoles, "admin") {
		t.Errorf("effective roles %v lack admin", s.EffectiveRoles)
	}

	// The same code is refused in another sign-in (replay guard).
	c3 := p.client(t, &cert)
	c3.login(t, "admin", p.AdminPassword)
	replay := c3.post(t, "/login/totp", url.Values{"code": {code}})
	wantStatus(t, replay, http.StatusUnauthorized)
	if !strings.Contains(replay.Body, "already used") {
		t.Errorf("replayed code answer lacks the reason:\n%s", replay.Body)
	}
	// A recovery code works instead, once.
	wantRedirect(t, c3.post(t, "/login/totp", url.Values{"code": {codes[0][1]}}), "/")
	if page := c3.get(t, "/account/totp"); !strings.Contains(page.Body, "<strong>9</strong> unused recovery codes") {
		t.Errorf("account page does not show 9 recovery codes left")
	}
	if out := p.cli(t, "", "user", "list"); !strings.Contains(out, "yes (9 recovery codes)") {
		t.Errorf("user list does not show the enrollment:\n%s", out)
	}
}

// redisDump returns every string value in the portal's Redis.
func redisDump(t *testing.T, p *portal) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "redis-cli", "-u", p.Redis.URL, "--scan").Output()
	if err != nil {
		t.Skipf("redis-cli not available to inspect the store: %v", err)
	}
	var all strings.Builder
	for _, key := range strings.Fields(string(out)) {
		v, _ := exec.CommandContext(t.Context(), "redis-cli", "-u", p.Redis.URL, "--no-raw", "GET", key).Output()
		all.Write(v)
	}
	return all.String()
}

// TestTOTP_WrongKeyIsAClearStartupError checks that starting with a TOTP
// key other than the one the store's secrets were sealed with fails with
// a message, instead of running and producing wrong codes.
func TestTOTP_WrongKeyIsAClearStartupError(t *testing.T) {
	t.Parallel()
	p := startPortal(t) // the first start records the key check in the store
	p.server.stop(t)

	other := hex.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	if err := os.WriteFile(filepath.Join(p.Data, "totp.key"), []byte(other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := p.command(ctx, "serve", "--addr", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("serve started with the wrong TOTP key:\n%s", out)
	}
	if !strings.Contains(string(out), "TOTP key") || !strings.Contains(string(out), "not the one") {
		t.Errorf("startup error does not explain the key:\n%s", out)
	}
}
