package tests

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// With no --store, the portal keeps everything in DATA/gatehouse.db: it
// starts with nothing else installed, the CLI works while it runs, and
// the data outlives a restart.
func TestEmbeddedStore_DefaultCLIWhileServingAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := &portal{Data: filepath.Join(dir, "data"), bin: gatehouseBinary(t), logDir: dir}
	p.start(t) // first start initialises the data directory

	info, err := os.Stat(filepath.Join(p.Data, "gatehouse.db"))
	if err != nil {
		t.Fatalf("the embedded store file: %v", err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("gatehouse.db has mode %v, want 0600", mode)
	}
	cert := p.adminCert(t)
	admin := p.client(t, &cert)
	wantRedirect(t, admin.login(t, "admin", p.AdminPassword), "/")

	// The CLI writes to the same file while the server runs.
	p.cli(t, bobPassword+"\n", "user", "add", "bob", "--role", "employee", "--password-stdin")
	bob := p.client(t, nil)
	wantRedirect(t, bob.login(t, "bob", bobPassword), "/")
	p.cli(t, "", "role", "set", "employee", "--require-certificate")
	if s := bob.session(t); slices.Contains(s.EffectiveRoles, "employee") {
		t.Errorf("bob's session after the CLI made employee need a certificate: %+v", s)
	}
	p.cli(t, "", "role", "set", "employee", "--require-certificate=false")

	// A restart keeps accounts and sessions.
	cookie := admin.cookieValue(t)
	p.server.stop(t)
	p.serve(t)
	if s := p.client(t, &cert).sessionWithCookie(t, cookie); !slices.Contains(s.EffectiveRoles, "admin") {
		t.Errorf("the admin's session after a restart: %+v", s)
	}
	wantRedirect(t, p.client(t, nil).login(t, "bob", bobPassword), "/")
}
