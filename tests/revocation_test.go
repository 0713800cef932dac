package tests

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const noticeRevoked = "your certificate has been revoked"

func TestRevoke_TakesEffectOnNextRequestWithoutRestart(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	cert := p.adminCert(t)
	c := p.client(t, &cert)
	wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
	r, before := c.getOnConn(t, "/api/session")
	if s := decodeSession(t, r); !slices.Contains(s.EffectiveRoles, "admin") {
		t.Fatalf("before the revocation the admin's effective_roles = %q, want admin among them", s.EffectiveRoles)
	}

	fp := fingerprintOfFile(t, filepath.Join(p.Data, "initial-admin.crt"))
	if row := p.certRowOf(t, fp); row.User != "admin" || row.Status != "valid" {
		t.Fatalf("cert list shows the admin's certificate as %+v, want user admin, status valid", row)
	}
	p.cli(t, "", "cert", "revoke", fp, "--reason", "laptop lost")

	// The same keep-alive connection: its handshake ran before the
	// revocation, so only a check on this request can catch it.
	r, after := c.getOnConn(t, "/api/session")
	if !after.Reused || after.Conn.LocalAddr().String() != before.Conn.LocalAddr().String() {
		t.Fatalf("the request after the revocation went over a new connection (%v, reused %v; before: %v), so it does not show that checks run on every request",
			after.Conn.LocalAddr(), after.Reused, before.Conn.LocalAddr())
	}
	wantRevoked(t, decodeSession(t, r))

	t.Run("a new login with the certificate", func(t *testing.T) {
		fresh := p.client(t, &cert)
		wantRedirect(t, fresh.login(t, "admin", p.AdminPassword), "/")
		wantRevoked(t, fresh.session(t))
	})

	t.Run("cert list", func(t *testing.T) {
		if row := p.certRowOf(t, fp); !strings.HasPrefix(row.Status, "revoked") {
			t.Errorf("cert list shows the revoked certificate with status %q, want revoked", row.Status)
		}
	})

	t.Run("audit trail", func(t *testing.T) {
		events, raw := p.audit(t, 100)
		i := slices.IndexFunc(events, func(e auditEvent) bool { return e.Action == "certificate.revoke" })
		if i < 0 {
			t.Fatalf("the audit trail has no certificate.revoke event:\n%s", raw)
		}
		e := events[i]
		if !strings.HasPrefix(e.Reason, "laptop lost; serial ") || e.CertFingerprint != fp || e.Target != "admin" || e.Outcome != "success" {
			t.Errorf("certificate.revoke event = %+v, want reason %q and the serial, cert_fingerprint %s, target admin, outcome success", e, "laptop lost", fp)
		}
		// The login that presented the revoked certificate is recorded
		// with the reason it did not count.
		if !slices.ContainsFunc(events, func(e auditEvent) bool {
			return e.Action == "login" && e.Actor == "admin" && e.CertStatus == "revoked" && e.CertFingerprint == fp
		}) {
			t.Errorf("no login event of admin with cert_status revoked:\n%s", raw)
		}
		keyPEM, err := os.ReadFile(filepath.Join(p.Data, "initial-admin.key"))
		if err != nil {
			t.Fatal(err)
		}
		keyBlock, _ := pem.Decode(keyPEM)
		if keyBlock == nil {
			t.Fatal("DATA/initial-admin.key holds no PEM block")
		}
		var sessionID string
		if err := cookieCodec(t, p).Decode(sessionCookie, c.cookieValue(t), &sessionID); err != nil {
			t.Fatalf("decode the session cookie: %v", err)
		}
		for name, secret := range map[string]string{
			"the admin password":       p.AdminPassword,
			"the .p12 import password": p.AdminP12Password,
			"the session cookie":       c.cookieValue(t),
			"the session ID":           sessionID,
			"a PEM private key":        "PRIVATE KEY",
			"the admin's private key":  base64.StdEncoding.EncodeToString(keyBlock.Bytes)[:40],
		} {
			if secret != "" && strings.Contains(raw, secret) {
				t.Errorf("the audit trail contains %s", name)
			}
		}
	})
}

// wantRevoked checks a session of the admin whose certificate was
// revoked: password only, employee only, and the reason.
func wantRevoked(t *testing.T, s sessionInfo) {
	t.Helper()
	if diff := cmp.Diff([]string{"employee"}, s.EffectiveRoles); diff != "" {
		t.Errorf("effective_roles with a revoked certificate (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"password"}, s.Factors); diff != "" {
		t.Errorf("factors with a revoked certificate (-want +got):\n%s", diff)
	}
	if s.Certificate != nil {
		t.Errorf("certificate = %+v, want null for a revoked certificate", s.Certificate)
	}
	wantNotice(t, s, noticeRevoked)
	wantNotice(t, s, "admin access needs your certificate")
}

// getOnConn is c.get that also reports the connection the request went
// over.
func (c *client) getOnConn(t *testing.T, path string) (response, httptrace.GotConnInfo) {
	t.Helper()
	var info httptrace.GotConnInfo
	req := c.newRequest(t, http.MethodGet, path, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { info = i },
	}))
	r := send(t, c.jar, req)
	if info.Conn == nil {
		t.Fatalf("GET %s: the trace saw no connection", path)
	}
	return r, info
}

// crlPollTimeout bounds how long a test waits for a changed CRL file to
// take effect with --crl-refresh 1s.
const crlPollTimeout = 20 * time.Second

func TestCRL_RevokesAndReloads(t *testing.T) {
	t.Parallel()

	t.Run("a changed file takes effect without a restart", func(t *testing.T) {
		t.Parallel()
		p := initPortal(t)
		builtin := p.builtinCA(t)
		crlFile := filepath.Join(t.TempDir(), "clients.crl")
		writeCRL(t, crlFile, builtin, 1) // revokes nothing yet
		p.start(t, "--crl", crlFile, "--crl-refresh", "1s")

		cert := p.adminCert(t)
		c := p.client(t, &cert)
		wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
		s := c.session(t)
		if diff := cmp.Diff([]string{"admin", "employee"}, s.EffectiveRoles); diff != "" {
			t.Fatalf("effective_roles under a CRL that revokes nothing (-want +got):\n%s", diff)
		}
		if len(s.Notices) != 0 {
			t.Fatalf("notices under a CRL that revokes nothing = %q, want none", s.Notices)
		}

		writeCRL(t, crlFile, builtin, 2, leafOf(t, cert).SerialNumber)
		deadline := time.Now().Add(crlPollTimeout)
		for {
			s = c.session(t)
			if !slices.Contains(s.EffectiveRoles, "admin") && slices.Contains(s.Notices, noticeRevoked) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v after the CRL file listed the admin's certificate, the live session still has effective_roles %q, notices %q",
					crlPollTimeout, s.EffectiveRoles, s.Notices)
			}
			time.Sleep(200 * time.Millisecond)
		}
		wantRevoked(t, s)

		fresh := p.client(t, &cert)
		wantRedirect(t, fresh.login(t, "admin", p.AdminPassword), "/")
		wantRevoked(t, fresh.session(t))

		// The list revokes one serial, not its issuer: another
		// certificate from the same CA still counts.
		prefix := filepath.Join(t.TempDir(), "admin-new")
		p.cli(t, "", "cert", "issue", "admin", "--out", prefix)
		other := loadCert(t, prefix)
		oc := p.client(t, &other)
		wantRedirect(t, oc.login(t, "admin", p.AdminPassword), "/")
		if s := oc.session(t); !slices.Contains(s.EffectiveRoles, "admin") {
			t.Errorf("a certificate the CRL does not list lost admin: effective_roles %q, notices %q", s.EffectiveRoles, s.Notices)
		}
	})

	t.Run("a list not signed by a client CA stops serve", func(t *testing.T) {
		t.Parallel()
		p := initPortal(t)
		builtin := p.builtinCA(t)
		for _, tc := range []struct {
			name   string
			signer *testCA
		}{
			{"another CA", newRootCA(t, "Some other CA", nil)},
			// Same issuer name as the built-in CA, another key: only the
			// signature tells them apart.
			{"an impostor with the built-in CA's name", newRootCA(t, "", builtin.Cert.RawSubject)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				crlFile := filepath.Join(t.TempDir(), "forged.crl")
				writeCRL(t, crlFile, tc.signer, 1)
				out := p.serveFails(t, "--crl", crlFile)
				if !strings.Contains(out, "not signed by a configured client CA") {
					t.Errorf("serve's output does not say the CRL is not signed by a configured client CA:\n%s", out)
				}
			})
		}
	})
}

func TestCRL_NumbersNeverGoBack(t *testing.T) {
	t.Parallel()
	p := initPortal(t)
	builtin := p.builtinCA(t)
	cert := p.adminCert(t)
	crlFile := filepath.Join(t.TempDir(), "clients.crl")
	writeCRL(t, crlFile, builtin, 2, leafOf(t, cert).SerialNumber)
	p.start(t, "--crl", crlFile, "--crl-refresh", "1s")
	c := p.client(t, &cert)
	wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
	wantRevoked(t, c.session(t))

	// An older list, signed by the same CA, that revokes nothing: were
	// it taken, the admin's certificate would count again.
	writeCRL(t, crlFile, builtin, 1)
	refused := "has CRL number 1, lower than number 2 already seen"
	deadline := time.Now().Add(crlPollTimeout)
	for !strings.Contains(p.server.output(), refused) {
		if time.Now().After(deadline) {
			t.Fatalf("%v after an older list replaced the CRL file, the log does not say it was refused (%q):\n%s", crlPollTimeout, refused, p.server.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	wantRevoked(t, c.session(t))
	fresh := p.client(t, &cert)
	wantRedirect(t, fresh.login(t, "admin", p.AdminPassword), "/")
	wantRevoked(t, fresh.session(t))

	// A restart remembers list 2 through the store, not the file.
	p.server.stop(t)
	out := p.serveFails(t, "--crl", crlFile)
	for _, want := range []string{crlFile, builtin.Cert.Subject.String(), "CRL number 1", "number 2 already seen"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal to start with the older list does not say %q:\n%s", want, out)
		}
	}
}

func TestCRL_TwoTierPKI(t *testing.T) {
	t.Parallel()
	e := newEnterprisePKI(t)
	dir := t.TempDir()
	issuingFile := filepath.Join(dir, "issuing.crt")
	writeCertPEM(t, issuingFile, e.issuing.Cert)
	erinCert := e.issue(t, clientTemplate("Erin Example", "erin@corp.example"))
	bobCert := e.issue(t, clientTemplate("bob"))
	// bob sends only his own certificate: --client-intermediate
	// completes the chain.
	bobLeafOnly := tls.Certificate{Certificate: bobCert.Certificate[:1], PrivateKey: bobCert.PrivateKey}
	issuingCRL := filepath.Join(dir, "issuing.crl")
	writeCRL(t, issuingCRL, e.issuing, 1, leafOf(t, erinCert).SerialNumber)
	rootCRL := filepath.Join(dir, "root.crl")
	writeCRL(t, rootCRL, e.root, 1) // revokes nothing yet
	p := startEnterprisePortal(t, e, "--client-intermediate", issuingFile,
		"--crl", issuingCRL, "--crl", rootCRL, "--crl-refresh", "1s")

	t.Run("the issuing CA's list revokes a leaf", func(t *testing.T) {
		s := loginSession(t, p, &erinCert, "erin", erinPassword)
		wantCertificateIgnored(t, s, noticeRevoked, "employee")
		wantNotice(t, s, "secure access needs your certificate")
	})

	t.Run("a leaf it does not list counts, sent without the intermediate", func(t *testing.T) {
		s := loginSession(t, p, &bobLeafOnly, "bob", bobPassword)
		wantCertificateCounts(t, s, bobLeafOnly, "employee")
	})

	t.Run("the root's list revoking the issuing CA stops its leaves counting", func(t *testing.T) {
		c := p.client(t, &bobLeafOnly)
		wantRedirect(t, c.login(t, "bob", bobPassword), "/")
		writeCRL(t, rootCRL, e.root, 2, e.issuing.Cert.SerialNumber)
		notice := fmt.Sprintf("the certificate authority %q that your certificate depends on has been revoked", e.issuing.Cert.Subject.CommonName)
		deadline := time.Now().Add(crlPollTimeout)
		for {
			s := c.session(t)
			if slices.Contains(s.Factors, "password") && !slices.Contains(s.Factors, "certificate") && slices.ContainsFunc(s.Notices, func(n string) bool { return strings.Contains(n, notice) }) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v after the root's list revoked the issuing CA, bob's session has factors %q, notices %q; want the certificate gone and a notice %q",
					crlPollTimeout, s.Factors, s.Notices, notice)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("an intermediate that does not chain to a client CA stops serve", func(t *testing.T) {
		foreign := newRootCA(t, "Some other CA", nil).newIntermediate(t, "Some other issuing CA")
		foreignFile := filepath.Join(dir, "foreign-issuing.crt")
		writeCertPEM(t, foreignFile, foreign.Cert)
		out := p.serveFails(t, "--client-ca", e.rootFile, "--client-intermediate", foreignFile)
		for _, want := range []string{foreignFile, "Some other issuing CA", "is not signed by a configured client CA"} {
			if !strings.Contains(out, want) {
				t.Errorf("serve's refusal does not say %q:\n%s", want, out)
			}
		}
	})
}

// writeCRL writes a PEM CRL signed by issuer, numbered number, valid for
// an hour and revoking serials. It replaces the file in one rename, so
// the portal never reads half a list.
func writeCRL(t *testing.T, path string, issuer *testCA, number int64, serials ...*big.Int) {
	t.Helper()
	now := time.Now()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(number),
		ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(time.Hour),
	}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: s, RevocationTime: now.Add(-time.Second)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer.Cert, issuer.Key)
	if err != nil {
		t.Fatalf("create CRL: %v", err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// serveFails runs "gatehouse serve" with flags, wants it to exit with a
// non-zero status instead of becoming ready, and returns its output.
func (p *portal) serveFails(t *testing.T, flags ...string) string {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	p.Addr, p.URL = addr, "https://"+net.JoinHostPort("localhost", strconv.Itoa(port(addr)))
	cmd := p.command(context.Background(), append([]string{"serve", "--addr", addr}, flags...)...)
	srv := startProcess(t, cmd, t.TempDir(), "serve")
	if err := p.waitReady(t, srv); err == nil {
		t.Fatalf("gatehouse serve %s started; want it to refuse to", strings.Join(flags, " "))
	}
	select {
	case <-srv.done:
	default:
		t.Fatalf("gatehouse serve %s neither became ready nor exited within %v", strings.Join(flags, " "), readyTimeout)
	}
	var exit *exec.ExitError
	if !errors.As(srv.err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("gatehouse serve %s: %v, want a non-zero exit status:\n%s", strings.Join(flags, " "), srv.err, srv.output())
	}
	return srv.output()
}
