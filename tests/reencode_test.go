package tests

import (
	"crypto/tls"
	"path/filepath"
	"slices"
	"testing"

	"gatehouse/tests/certtest"
)

// TestRevoke_ReencodedCertificateStaysRevoked re-encodes a revoked
// certificate's ECDSA signature (s -> n-s), which gives the same
// certificate another DER and another fingerprint, and signs in with it
// and its key. It must stay revoked, on both stores, whichever way it was
// revoked: by the CLI, by its owner ("revoke a lost device"), or by an
// admin in the console, and whichever of its two fingerprints names it
// (a sign-in with the re-encoded one shows that one in the audit trail).
func TestRevoke_ReencodedCertificateStaysRevoked(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"redis", "embedded"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var p *portal
			if backend == "redis" {
				p = startPortal(t)
			} else {
				dir := t.TempDir()
				p = &portal{Data: filepath.Join(dir, "data"), bin: gatehouseBinary(t), logDir: dir}
				p.start(t)
			}
			adminCert := p.adminCert(t)
			admin := p.client(t, &adminCert)
			wantRedirect(t, admin.login(t, "admin", p.AdminPassword), "/")
			builtin := p.builtinCA(t)

			ways := []struct {
				name   string
				revoke func(t *testing.T, owner *client, fp string)
			}{
				{"gatehouse cert revoke", func(t *testing.T, _ *client, fp string) {
					p.cli(t, "", "cert", "revoke", fp, "--reason", "laptop lost")
				}},
				{"the owner revokes a lost device", func(t *testing.T, owner *client, fp string) {
					wantStatus(t, owner.jsonRequest(t, "POST", "/api/account/certificates/"+fp+"/revoke",
						map[string]string{"password": p.AdminPassword, "reason": "phone lost"}), 200)
				}},
				{"an admin revokes it in the console", func(t *testing.T, _ *client, fp string) {
					wantStatus(t, admin.jsonRequest(t, "POST", "/api/admin/certificates/"+fp+"/revoke",
						map[string]string{"reason": "ticket 7"}), 200)
				}},
			}
			// Each way, by the fingerprint of the certificate as issued and
			// by that of its re-encoded twin.
			type revoker struct {
				name string
				// byTwin: named by the re-encoded certificate's fingerprint.
				byTwin bool
				revoke func(t *testing.T, owner *client, fp string)
			}
			var revokers []revoker
			for _, w := range ways {
				revokers = append(revokers, revoker{w.name, false, w.revoke}, revoker{w.name + ", by the other fingerprint", true, w.revoke})
			}
			for _, rv := range revokers {
				t.Run(rv.name, func(t *testing.T) {
					prefix := filepath.Join(t.TempDir(), "device")
					p.cli(t, "", "cert", "issue", "admin", "--out", prefix)
					original := loadCert(t, prefix)
					leaf := leafOf(t, original)
					der, err := certtest.ReencodeSignature(leaf, builtin.Cert)
					if err != nil {
						t.Fatal(err)
					}
					twin := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: original.PrivateKey}
					if fingerprint(parseCert(t, der)) == fingerprint(leaf) {
						t.Fatal("re-encoding kept the fingerprint; the test proves nothing")
					}

					// Before the revocation the re-encoded certificate is
					// the same certificate: a session that signed in with
					// the original keeps its admin role when a request
					// presents the other encoding.
					owner := p.client(t, &original)
					wantRedirect(t, owner.login(t, "admin", p.AdminPassword), "/")
					if s := p.client(t, &twin).sessionWithCookie(t, owner.cookieValue(t)); !slices.Contains(s.EffectiveRoles, "admin") {
						t.Errorf("a session bound to the original, re-encoded certificate presented: effective_roles %q, want admin", s.EffectiveRoles)
					}

					fp := fingerprint(leaf)
					if rv.byTwin {
						fp = fingerprint(parseCert(t, der))
					}
					rv.revoke(t, owner, fp)
					for name, cert := range map[string]*tls.Certificate{"original": &original, "re-encoded": &twin} {
						t.Run(name, func(t *testing.T) {
							c := p.client(t, cert)
							wantRedirect(t, c.login(t, "admin", p.AdminPassword), "/")
							wantRevoked(t, c.session(t))
						})
					}
				})
			}
			// The first admin's own certificate was never revoked.
			if s := admin.session(t); !slices.Contains(s.EffectiveRoles, "admin") {
				t.Errorf("the first admin's session lost the admin role: %+v", s)
			}
		})
	}
}
