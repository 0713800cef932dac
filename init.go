package main

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/store"
)

// initialAdmin is the name of the first admin account.
const initialAdmin = "admin"

// builtinRoles exist after init: admin and helpdesk need a certificate,
// employee needs nothing.
var builtinRoles = []store.Role{
	{Name: "admin", Description: "manage users, roles, certificates and sessions", RequireCertificate: true},
	{Name: "employee", Description: "open internal apps"},
	{Name: "helpdesk", Description: "reset passwords and TOTP, unlock accounts", RequireCertificate: true},
}

var initCmd = &command{
	name:  "init",
	short: "create the data directory: a development CA, a server certificate, the built-in roles and the first admin",
	setup: func(fs *flag.FlagSet) runFunc {
		s := addSettings(fs)
		storeOnly := fs.Bool("store-only", false, "set up an empty store for a data directory that is already set up (a store that lost its data, with no backup to restore): built-in roles and a new first admin")
		return func(e *env, _ []string) error {
			st, err := openStore(e, s, nil)
			if err != nil {
				return err
			}
			defer st.Close()
			if *storeOnly {
				return initStoreOnly(e, s, st, time.Now())
			}
			return initDataDir(e, s, st, time.Now())
		}
	},
}

// initialised reports whether the data directory already holds a CA.
func initialised(l layout) bool {
	_, err := os.Stat(l.caKey())
	return err == nil
}

// initDataDir creates the data directory: the development CA, the server
// certificate for localhost, the cookie signing key, the built-in roles,
// and the first admin with a random password and a client certificate.
// It refuses to touch a directory or store that is already set up.
func initDataDir(e *env, o *settings, st store.Store, now time.Time) error {
	l := layout{o.data}
	if initialised(l) {
		return fmt.Errorf("%s is already initialised (found %s)", l.dir, l.caKey())
	}
	// A store that is set up is never set up again, even when its first
	// admin is gone (operators delete it once they have their own): a
	// new data directory, or an empty volume under serve, would give it a
	// new CA and a new admin account. Its marker says it is set up; a
	// store that lost its marker but still holds accounts is refused too.
	const useIt = "it was initialised with another data directory: use that one, or an empty store"
	switch err := st.CheckMarker(e.ctx, ""); {
	case err == nil:
		return errors.New("the store is set up already (its marker is there); " + useIt)
	case errors.Is(err, store.ErrPartlyLost):
		return fmt.Errorf("the store is set up already, and some of its servers lost their data: %w; restore them from a backup", err)
	case !errors.Is(err, store.ErrDataLost):
		return err
	}
	// On a Cluster the listing of account names lives on one master,
	// which may be the one that lost its data: certificates are looked
	// at too, and a listing with a next page counts even if its first
	// page came back empty.
	if page, err := st.ListAccounts(e.ctx, store.ListQuery{Limit: 1}); err != nil {
		return err
	} else if len(page.Items) > 0 || page.Next != "" {
		return errors.New("the store is set up already: it holds accounts; " + useIt)
	}
	if page, err := st.ListCertificates(e.ctx, store.ListQuery{Limit: 1}); err != nil {
		return err
	} else if len(page.Items) > 0 || page.Next != "" {
		return errors.New("the store is set up already: it holds certificate records; " + useIt)
	}
	if err := os.MkdirAll(filepath.Join(l.dir, "pki"), 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}

	authority, err := ca.New("Gatehouse development CA", now)
	if err != nil {
		return err
	}
	if err := writePair(l.caCert(), l.caKey(), authority.Cert, authority.Key); err != nil {
		return err
	}
	srv, err := authority.IssueServer([]string{"localhost", "127.0.0.1", "::1"}, now)
	if err != nil {
		return err
	}
	if err := writePair(l.serverCert(), l.serverKey(), srv.Cert, srv.Key); err != nil {
		return err
	}
	if err := writeNew(l.sessionKey(), []byte(hex.EncodeToString(randomBytes(32))+"\n"), 0o600); err != nil {
		return err
	}
	if err := writeNew(l.totpKey(), []byte(hex.EncodeToString(randomBytes(auth.SecretKeyBytes))+"\n"), 0o600); err != nil {
		return err
	}
	if err := initStore(e, st, authority, l, now); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, `Initialised %s
  certificate authority:   %s
  server certificate:      %s (localhost, 127.0.0.1, ::1)
  first admin credentials: %s (a temporary password: the first sign-in asks for your own)
  admin's certificate:     %s.p12 (its import password is in the credentials file)
`, l.dir, l.caCert(), l.serverCert(), l.initialAdmin(), l.adminPrefix())
	return nil
}

// initStoreOnly sets up the store of a data directory that is already
// set up, when the store has lost its data and there is no backup: the
// built-in roles, a new first admin (new credentials and certificate
// files in the data directory, replacing the old ones) and the marker.
// It refuses a store that still has its marker or holds any account.
func initStoreOnly(e *env, o *settings, st store.Store, now time.Time) error {
	l := layout{o.data}
	if !initialised(l) {
		return fmt.Errorf("%s is not set up yet (no %s): run gatehouse init without --store-only", l.dir, l.caKey())
	}
	if err := st.CheckMarker(e.ctx, ""); !errors.Is(err, store.ErrDataLost) {
		if err != nil {
			return err
		}
		return errors.New("the store is set up already (its marker is there): --store-only is only for a store that lost its data")
	}
	if page, err := st.ListAccounts(e.ctx, store.ListQuery{Limit: 1}); err != nil {
		return err
	} else if len(page.Items) > 0 {
		return fmt.Errorf("the store holds accounts (%q…) but no marker: it may still be partly there; restore it from a backup, or empty it first", page.Items[0].Name)
	}
	certPEM, err := os.ReadFile(l.caCert())
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(l.caKey())
	if err != nil {
		return fmt.Errorf("the first admin's certificate needs the built-in CA's key: %w", err)
	}
	authority, err := ca.Load(certPEM, keyPEM)
	if err != nil {
		return err
	}
	for _, f := range []string{l.initialAdmin(), l.adminPrefix() + ".crt", l.adminPrefix() + ".key", l.adminPrefix() + ".p12"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := initStore(e, st, authority, l, now); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, `Set up the store for %s again (everything it held before is gone)
  first admin credentials: %s (a temporary password: the first sign-in asks for your own)
  admin's certificate:     %s.p12 (its import password is in the credentials file)
`, l.dir, l.initialAdmin(), l.adminPrefix())
	return nil
}

// initStore fills a new store: the built-in roles, the first admin with
// a random password and a client certificate from authority (files in
// the data directory), and, last, the marker that says the store holds
// Gatehouse's data.
func initStore(e *env, st store.Store, authority *ca.CA, l layout, now time.Time) error {
	for _, r := range builtinRoles {
		if _, err := st.Role(e.ctx, r.Name); errors.Is(err, store.ErrNotFound) {
			if err := st.PutRole(e.ctx, r); err != nil {
				return fmt.Errorf("create role %s: %w", r.Name, err)
			}
		} else if err != nil {
			return err
		}
	}

	password := auth.RandomPassword()
	hasher, err := auth.NewHasher(auth.BcryptCost)
	if err != nil {
		return err
	}
	defer hasher.Close()
	hash, err := hasher.Hash(e.ctx, password)
	if err != nil {
		return err
	}
	admin := store.Account{
		Name: initialAdmin, ID: store.NewAccountID(), PasswordHash: hash, Roles: []string{"admin", "employee"},
		// The password in initial-admin.txt is a temporary one, as
		// user add's: the first sign-in chooses the admin's own, so the
		// file left in the data directory opens nothing afterwards.
		MustChangePassword: true,
		CreatedAt:          now, UpdatedAt: now,
	}
	if err := st.CreateAccount(e.ctx, admin); err != nil {
		return fmt.Errorf("create the first admin: %w", err)
	}
	p12Password := auth.RandomPassword()
	issued, err := issueClientCert(e, st, authority, admin, l.adminPrefix(), p12Password, ca.ClientValidity, now)
	if err != nil {
		return err
	}
	creds := fmt.Sprintf("username: %s\npassword: %s\np12-password: %s\n", initialAdmin, password, p12Password)
	if err := writeNew(l.initialAdmin(), []byte(creds), 0o600); err != nil {
		return err
	}
	if err := st.Mark(e.ctx); err != nil {
		return fmt.Errorf("mark the store as set up: %w", err)
	}
	// The audit trail starts with the first admin and its certificate.
	if err := recordChange(e, st, now, store.AuditEvent{Action: "account.create", Target: initialAdmin,
		Reason: "the first admin, made by gatehouse init; roles admin,employee"}); err != nil {
		return err
	}
	return recordChange(e, st, now, store.AuditEvent{Action: "certificate.issue", Target: initialAdmin,
		Reason:          fmt.Sprintf("the first admin's certificate, serial %s, valid until %s", auth.SerialText(issued.Cert), issued.Cert.NotAfter.UTC().Format(time.DateOnly)),
		CertFingerprint: store.CertificateOf(issued.Cert, initialAdmin, now).Fingerprint})
}

// writePair writes a certificate (readable by all) and its private key
// (owner only).
func writePair(certPath, keyPath string, cert *x509.Certificate, key crypto.Signer) error {
	keyPEM, err := ca.KeyPEM(key)
	if err != nil {
		return err
	}
	if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return writeNew(certPath, ca.CertPEM(cert), 0o644)
}

// writeNew creates a file that must not exist yet, with mode perm.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// A file that could not be written whole is removed: a truncated
	// key or certificate is worse than none.
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
