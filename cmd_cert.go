package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/store"
)

// The certificate commands: client certificates from the built-in CA.

var certIssueCmd = &command{
	name:    "cert issue",
	args:    "NAME --out PREFIX [--p12-password-stdin] [--days N]",
	short:   "issue a client certificate from the built-in CA: PREFIX.crt, PREFIX.key and PREFIX.p12",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		s := addSettings(fs)
		out := fs.String("out", "", "output `prefix`: writes PREFIX.crt, PREFIX.key and PREFIX.p12")
		p12Stdin := fs.Bool("p12-password-stdin", false, "read the .p12 import password from standard input instead of generating one")
		days := fs.Int("days", int(ca.ClientValidity/(24*time.Hour)), "validity in `days`")
		return s.onStore(func(e *env, st store.Store, args []string) error {
			return certIssue(e, s, st, args[0], *out, *p12Stdin, *days, time.Now())
		})
	},
}

var certRevokeCmd = &command{
	name:    "cert revoke",
	args:    "SERIAL_OR_FINGERPRINT [--reason TEXT]",
	short:   "revoke a certificate issued by the built-in CA (at once, everywhere)",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		s := addSettings(fs)
		reason := fs.String("reason", "", "why the certificate is revoked (kept with the record)")
		return s.onStore(func(e *env, st store.Store, args []string) error {
			return certRevoke(e, st, args[0], *reason, time.Now())
		})
	},
}

var certListCmd = &command{
	name:    "cert list",
	args:    "[NAME]",
	short:   "list the certificates issued by the built-in CA, of everyone or of one account",
	minArgs: 0, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, args []string) error {
			user := ""
			if len(args) == 1 {
				user = args[0]
			}
			return certList(e, st, user, time.Now())
		})
	},
}

func certIssue(e *env, o *settings, st store.Store, name, out string, p12Stdin bool, days int, now time.Time) error {
	if out == "" {
		return errors.New("cert issue needs --out PREFIX")
	}
	if days < 1 || days > 3650 {
		return fmt.Errorf("--days must be between 1 and 3650, got %d", days)
	}
	acct, err := st.Account(e.ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no account named %q", name)
	}
	if err != nil {
		return err
	}
	l := layout{o.data}
	certPEM, err := os.ReadFile(l.caCert())
	if err != nil {
		return fmt.Errorf("read the built-in CA (is %s the data directory?): %w", l.dir, err)
	}
	keyPEM, err := os.ReadFile(l.caKey())
	if err != nil {
		return fmt.Errorf("read the built-in CA key: %w", err)
	}
	authority, err := ca.Load(certPEM, keyPEM)
	if err != nil {
		return err
	}
	password, generated := "", !p12Stdin
	if p12Stdin {
		if password, err = readSecret(e.stdin); err != nil {
			return err
		}
	} else {
		password = auth.RandomPassword()
	}
	issued, err := issueClientCert(e, st, authority, acct, out, password, time.Duration(days)*24*time.Hour, now)
	if err != nil {
		return err
	}
	serial, notAfter := issued.Cert.SerialNumber.Text(16), issued.Cert.NotAfter.UTC().Format(time.DateOnly)
	fmt.Fprintf(e.stdout, "issued certificate for %s (serial %s, valid until %s)\n  %s.crt\n  %s.key\n  %s.p12\n",
		name, serial, notAfter, out, out, out)
	if generated {
		fmt.Fprintf(e.stdout, "import password for %s.p12: %s\n(it is shown only now)\n", out, password)
	}
	// Recorded after the import password is shown: should the record
	// fail, the certificate is valid all the same and its holder needs it.
	return recordChange(e, st, now, store.AuditEvent{Action: "certificate.issue", Target: name,
		Reason:          fmt.Sprintf("serial %s, valid until %s", serial, notAfter),
		CertFingerprint: store.CertificateOf(issued.Cert, name, now).Fingerprint})
}

// issueClientCert issues a client certificate for acct, records it in
// the store, and writes PREFIX.crt, PREFIX.key and PREFIX.p12. It is
// recorded before any file is written, and revoked again if the files
// cannot all be written: a certificate and its key on disk with no
// record would count for a year, out of reach of every revocation.
func issueClientCert(e *env, st store.Store, authority *ca.CA, acct store.Account, prefix, p12Password string, validity time.Duration, now time.Time) (*ca.Issued, error) {
	for _, ext := range []string{".crt", ".key", ".p12"} {
		if _, err := os.Lstat(prefix + ext); err == nil {
			return nil, fmt.Errorf("%s already exists: choose another --out, or move it away first", prefix+ext)
		}
	}
	issued, err := authority.IssueClient(ca.ClientRequest{Name: acct.Name, Email: acct.Email, Validity: validity}, now)
	if err != nil {
		return nil, err
	}
	p12, err := ca.PKCS12(issued, authority.Cert, p12Password)
	if err != nil {
		return nil, err
	}
	rec := store.CertificateOf(issued.Cert, acct.Name, now)
	rec.TwinFingerprint = auth.TwinFingerprint(issued.Cert, authority.Cert)
	if err := st.PutCertificate(e.ctx, rec); err != nil {
		return nil, fmt.Errorf("record certificate: %w", err)
	}
	if err := writeIssued(prefix, issued, p12); err != nil {
		if _, rerr := st.RevokeCertificate(e.ctx, rec.Serial, now, "its files could not be written"); rerr != nil {
			return nil, fmt.Errorf("%w; the certificate (serial %s) is recorded but could not be revoked: revoke it with gatehouse cert revoke %s (%v)", err, rec.Serial, rec.Serial, rerr)
		}
		if aerr := recordChange(e, st, now, store.AuditEvent{Action: "certificate.revoke", Target: acct.Name, CertFingerprint: rec.Fingerprint,
			Reason: fmt.Sprintf("serial %s, made by cert issue, whose files could not be written", rec.Serial)}); aerr != nil {
			return nil, fmt.Errorf("%w; %w", err, aerr)
		}
		return nil, fmt.Errorf("%w (the certificate made for it, serial %s, is revoked, and no file of it is left)", err, rec.Serial)
	}
	return issued, nil
}

// writeIssued writes PREFIX.key, PREFIX.crt and PREFIX.p12, none of
// which may exist, and removes the ones it wrote if it cannot write all.
func writeIssued(prefix string, issued *ca.Issued, p12 []byte) error {
	keyPEM, err := ca.KeyPEM(issued.Key)
	if err != nil {
		return err
	}
	files := []struct {
		path string
		data []byte
		perm fs.FileMode
	}{
		{prefix + ".key", keyPEM, 0o600},
		{prefix + ".crt", ca.CertPEM(issued.Cert), 0o644},
		{prefix + ".p12", p12, 0o600},
	}
	for i, f := range files {
		if err := writeNew(f.path, f.data, f.perm); err != nil {
			for _, done := range files[:i] {
				os.Remove(done.path)
			}
			return err
		}
	}
	return nil
}

// certRevoke revokes a certificate issued by the built-in CA, named by
// its serial (hex) or its fingerprint. It takes effect on the next
// request of every session that uses the certificate.
func certRevoke(e *env, st store.Store, id, reason string, now time.Time) error {
	c, ok, err := store.LookupCertificate(e.ctx, st, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no certificate issued by this portal has serial or fingerprint %q (see gatehouse cert list)", strings.TrimSpace(id))
	}
	revoked, err := store.RevokeWithRenewals(e.ctx, st, c.Serial, now, reason)
	if err != nil {
		return err
	}
	c = revoked[0]
	for _, x := range revoked[1:] {
		fmt.Fprintf(e.stdout, "revoked certificate %s of %s, a renewal of it\n", x.Serial, x.User)
	}
	fmt.Fprintf(e.stdout, "revoked certificate %s of %s (%s)\n", c.Serial, c.User, c.Fingerprint)
	return recordChange(e, st, now, store.AuditEvent{Action: "certificate.revoke", Target: c.User,
		Reason: store.RevocationReason(reason, revoked), CertFingerprint: c.Fingerprint})
}

func certList(e *env, st store.Store, user string, now time.Time) error {
	certs, err := st.Certificates(e.ctx, user)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tSERIAL\tNOT AFTER\tSTATUS\tFINGERPRINT")
	for _, c := range certs {
		status := "valid"
		switch {
		case !c.RevokedAt.IsZero():
			status = "revoked " + c.RevokedAt.UTC().Format(time.DateOnly)
		case now.After(c.NotAfter):
			status = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.User, c.Serial, c.NotAfter.UTC().Format(time.DateOnly), status, c.Fingerprint)
	}
	return tw.Flush()
}
