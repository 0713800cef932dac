package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/store"
)

// cmdAdmin runs the account, role and certificate commands. They work on
// the store directly, so they work while a server runs on the same store.
func cmdAdmin(e *env, cmd string, args []string) error {
	var (
		o                   options
		roles               stringList
		email               string
		passwordStdin       bool
		p12PasswordStdin    bool
		out                 string
		days                int
		requireCert, reqOTP optionalBool
		reason              string
		pinCert, pinFP      string
		pinKey              string
		limit               int
	)
	fs := flag.NewFlagSet("gatehouse "+cmd, flag.ContinueOnError)
	o.register(fs)
	switch cmd {
	case "user add":
		fs.Var(&roles, "role", "role to grant (repeatable)")
		fs.StringVar(&email, "email", "", "email `address` (binds certificates carrying it; no two accounts share one, whatever its case)")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input instead of generating a temporary one")
	case "user passwd":
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the new password from standard input (required)")
	case "user roles":
		fs.Var(&roles, "role", "role the account should hold (repeatable; replaces the current roles)")
	case "role set":
		fs.Var(&requireCert, "require-certificate", "the role needs a verified client certificate")
		fs.Var(&reqOTP, "require-totp", "the role needs a TOTP code")
	case "cert issue":
		fs.StringVar(&out, "out", "", "output `prefix`: writes PREFIX.crt, PREFIX.key and PREFIX.p12")
		fs.BoolVar(&p12PasswordStdin, "p12-password-stdin", false, "read the .p12 import password from standard input instead of generating one")
		fs.IntVar(&days, "days", int(ca.ClientValidity/(24*time.Hour)), "validity in days")
	case "cert revoke":
		fs.StringVar(&reason, "reason", "", "why the certificate is revoked (kept with the record)")
	case "user pin":
		fs.StringVar(&pinCert, "cert", "", "pin the public key of this certificate `file` (PEM): renewals with the same key keep working")
		fs.StringVar(&pinFP, "fingerprint", "", "pin one certificate by `sha256:HEX` fingerprint")
		fs.StringVar(&pinKey, "key-pin", "", "pin a public key by `sha256:HEX` of its SubjectPublicKeyInfo")
	case "audit":
		fs.IntVar(&limit, "limit", 50, "how many events, newest first")
	case "user list", "user disable", "user enable", "user unlock", "role list", "role delete", "cert list", "user unpin":
	default:
		return fmt.Errorf("unknown command %q (see gatehouse help)", cmd)
	}
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	want := map[string]int{"user list": 0, "role list": 0, "audit": 0, "user unpin": 2}
	n, fixed := want[cmd]
	if !fixed {
		n = 1
	}
	if cmd == "cert list" {
		if len(pos) > 1 {
			return fmt.Errorf("%s takes at most one account name", cmd)
		}
	} else if len(pos) != n {
		return fmt.Errorf("%s takes %d argument(s), got %d (see gatehouse help)", cmd, n, len(pos))
	}
	st, err := openStore(e, &o)
	if err != nil {
		return err
	}
	defer st.Close()
	// On a store that lost its data, "no such account" would be a lie,
	// and a new account would hide the loss.
	if err := st.CheckMarker(e.ctx, ""); errors.Is(err, store.ErrDataLost) {
		return fmt.Errorf("%w: the store is not set up (run gatehouse init), or it has lost its data: restore it from a backup, or start afresh with gatehouse init --store-only", err)
	} else if err != nil {
		return err
	}
	now := time.Now()
	ctx := e.ctx

	switch cmd {
	case "user add":
		return userAdd(e, st, pos[0], roles, email, passwordStdin, now)
	case "user list":
		return userList(e, st)
	case "user passwd":
		if !passwordStdin {
			return errors.New("user passwd needs --password-stdin (the password is read from standard input)")
		}
		password, err := readSecret(e.stdin)
		if err != nil {
			return err
		}
		if err := auth.CheckNewPassword(password, pos[0]); err != nil {
			return err
		}
		hash, err := newHasherHash(password)
		if err != nil {
			return err
		}
		err = updateAccount(e, st, pos[0], "password changed", func(a *store.Account) error {
			a.PasswordHash, a.MustChangePassword, a.UpdatedAt = hash, false, now
			return nil
		})
		if err != nil {
			return err
		}
		return endSessions(e, st, pos[0], "account.password.set", now)
	case "user roles":
		if len(roles) == 0 {
			return errors.New("give at least one --role")
		}
		if err := checkRolesExist(e, st, roles); err != nil {
			return err
		}
		return updateAccount(e, st, pos[0], "roles set to "+strings.Join(roles, ", "), func(a *store.Account) error {
			a.Roles, a.UpdatedAt = dedupe(roles), now
			return nil
		})
	case "user disable", "user enable":
		disable := cmd == "user disable"
		err := updateAccount(e, st, pos[0], strings.TrimPrefix(cmd, "user ")+"d", func(a *store.Account) error {
			a.Disabled, a.UpdatedAt = disable, now
			return nil
		})
		if err != nil || !disable {
			return err
		}
		return endSessions(e, st, pos[0], "account.disable", now)
	case "role set":
		return roleSet(e, st, pos[0], requireCert, reqOTP)
	case "user unlock":
		if _, err := st.Account(ctx, pos[0]); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no account named %q", pos[0])
		} else if err != nil {
			return err
		}
		for _, key := range auth.AccountCounters(pos[0]) {
			if err := st.ResetFailures(ctx, key); err != nil {
				return err
			}
		}
		if err := st.AppendAudit(ctx, store.AuditEvent{Time: now.UTC(), Action: "account.unlock", Outcome: "success", Actor: "cli", Target: pos[0]}); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: unlocked (failed-attempt counters cleared)\n", pos[0])
		return nil
	case "role delete":
		if _, err := st.Role(ctx, pos[0]); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no role named %q", pos[0])
		} else if err != nil {
			return err
		}
		// Take the role off every account first, so that a role created
		// later under the same name is not silently held by them.
		err := store.EachAccount(ctx, st, func(a store.Account) error {
			if !slices.Contains(a.Roles, pos[0]) {
				return nil
			}
			err := st.UpdateAccount(ctx, a.Name, func(a *store.Account) error {
				a.Roles = slices.DeleteFunc(a.Roles, func(r string) bool { return r == pos[0] })
				a.UpdatedAt = now
				return nil
			})
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		if err := st.DeleteRole(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "deleted role %s; accounts that held it lose it on their next request\n", pos[0])
		return nil
	case "user pin":
		return userPin(e, st, pos[0], pinCert, pinFP, pinKey, now)
	case "user unpin":
		pin := pos[1]
		return updateAccount(e, st, pos[0], "unpinned "+pin, func(a *store.Account) error {
			n := len(a.PinnedFingerprints) + len(a.PinnedKeys)
			a.PinnedFingerprints = slices.DeleteFunc(a.PinnedFingerprints, func(p string) bool { return p == pin })
			a.PinnedKeys = slices.DeleteFunc(a.PinnedKeys, func(p string) bool { return p == pin })
			if n == len(a.PinnedFingerprints)+len(a.PinnedKeys) {
				return fmt.Errorf("%s has no pin %s", a.Name, pin)
			}
			a.UpdatedAt = now
			return nil
		})
	case "cert revoke":
		return certRevoke(e, st, pos[0], reason, now)
	case "audit":
		events, err := st.Audit(ctx, store.AuditQuery{Limit: limit})
		if err != nil {
			return err
		}
		enc := json.NewEncoder(e.stdout)
		for _, ev := range events.Items {
			if err := enc.Encode(ev); err != nil {
				return err
			}
		}
		return nil
	case "role list":
		rs, err := st.Roles(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLE\tREQUIRES CERTIFICATE\tREQUIRES TOTP")
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, yesNo(r.RequireCertificate), yesNo(r.RequireTOTP))
		}
		return tw.Flush()
	case "cert issue":
		return certIssue(e, &o, st, pos[0], out, p12PasswordStdin, days, now)
	case "cert list":
		user := ""
		if len(pos) == 1 {
			user = pos[0]
		}
		certs, err := st.Certificates(ctx, user)
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
	return nil
}

func userAdd(e *env, st store.Store, name string, roles []string, email string, passwordStdin bool, now time.Time) error {
	if err := auth.CheckAccountName(name); err != nil {
		return err
	}
	if len(roles) == 0 {
		return errors.New("give at least one --role (for example --role employee)")
	}
	if err := checkRolesExist(e, st, roles); err != nil {
		return err
	}
	if email != "" {
		if err := auth.CheckEmail(email); err != nil {
			return err
		}
	}
	password, temporary := "", !passwordStdin
	if passwordStdin {
		var err error
		if password, err = readSecret(e.stdin); err != nil {
			return err
		}
		if err := auth.CheckNewPassword(password, name); err != nil {
			return err
		}
	} else {
		password = auth.RandomPassword()
	}
	hash, err := newHasherHash(password)
	if err != nil {
		return err
	}
	err = st.CreateAccount(e.ctx, store.Account{
		Name: name, Email: email, PasswordHash: hash, Roles: dedupe(roles),
		MustChangePassword: temporary, CreatedAt: now, UpdatedAt: now,
	})
	if errors.Is(err, store.ErrExists) {
		return fmt.Errorf("an account named %q already exists", name)
	}
	if errors.Is(err, store.ErrEmailTaken) {
		return fmt.Errorf("another account already uses the email %s (emails are compared ignoring case); give each account its own", email)
	}
	if err != nil {
		return err
	}
	// Failures counted against this name before it existed must not lock
	// the new account.
	for _, key := range auth.AccountCounters(name) {
		if err := st.ResetFailures(e.ctx, key); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "created account %s with roles %s\n", name, strings.Join(dedupe(roles), ", "))
	if temporary {
		fmt.Fprintf(e.stdout, "temporary password: %s\n(it must be changed at first sign-in; it is shown only now)\n", password)
	}
	return nil
}

func userList(e *env, st store.Store) error {
	accts, err := st.Accounts(e.ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLES\tEMAIL\tTOTP\tSTATUS")
	for _, a := range accts {
		status := "active"
		switch {
		case a.Disabled:
			status = "disabled"
		case a.MustChangePassword:
			status = "must change password"
		}
		for _, c := range []struct{ factor, what string }{{auth.CounterPassword, "password"}, {auth.CounterTOTP, "TOTP"}} {
			n, err := st.Failures(e.ctx, auth.FailureCounter(c.factor, a.Name))
			if err != nil {
				return err
			}
			switch {
			case n >= auth.MaxConsecutiveFailures:
				status += ", " + c.what + " locked (gatehouse user unlock " + a.Name + ")"
			case n >= auth.FreeFailures:
				status += fmt.Sprintf(", %d wrong %s attempts in a row", n, c.what)
			}
		}
		totp := "no"
		if a.TOTPSecret != "" {
			totp = fmt.Sprintf("yes (%d recovery codes)", len(a.RecoveryCodes))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, strings.Join(a.Roles, ","), orDash(a.Email), totp, status)
	}
	return tw.Flush()
}

func roleSet(e *env, st store.Store, name string, requireCert, requireTOTP optionalBool) error {
	if err := auth.CheckRoleName(name); err != nil {
		return err
	}
	r, err := st.Role(e.ctx, name)
	created := errors.Is(err, store.ErrNotFound)
	if err != nil && !created {
		return err
	}
	r.Name = name
	if requireCert.set {
		r.RequireCertificate = requireCert.value
	}
	if requireTOTP.set {
		r.RequireTOTP = requireTOTP.value
	}
	if err := st.PutRole(e.ctx, r); err != nil {
		return err
	}
	verb := "updated"
	if created {
		verb = "created"
	}
	fmt.Fprintf(e.stdout, "%s role %s: requires certificate: %s, requires TOTP: %s\n", verb, name, yesNo(r.RequireCertificate), yesNo(r.RequireTOTP))
	return nil
}

func certIssue(e *env, o *options, st store.Store, name, out string, p12Stdin bool, days int, now time.Time) error {
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
	fmt.Fprintf(e.stdout, "issued certificate for %s (serial %s, valid until %s)\n  %s.crt\n  %s.key\n  %s.p12\n",
		name, issued.Cert.SerialNumber.Text(16), issued.Cert.NotAfter.UTC().Format(time.DateOnly), out, out, out)
	if generated {
		fmt.Fprintf(e.stdout, "import password for %s.p12: %s\n(it is shown only now)\n", out, password)
	}
	return nil
}

// issueClientCert issues a client certificate for acct, writes
// PREFIX.crt, PREFIX.key and PREFIX.p12, and records it in the store.
func issueClientCert(e *env, st store.Store, authority *ca.CA, acct store.Account, prefix, p12Password string, validity time.Duration, now time.Time) (*ca.Issued, error) {
	issued, err := authority.IssueClient(ca.ClientRequest{Name: acct.Name, Email: acct.Email, Validity: validity}, now)
	if err != nil {
		return nil, err
	}
	p12, err := ca.PKCS12(issued, authority.Cert, p12Password)
	if err != nil {
		return nil, err
	}
	if err := writePair(prefix+".crt", prefix+".key", issued.Cert, issued.Key); err != nil {
		return nil, err
	}
	if err := writeNew(prefix+".p12", p12, 0o600); err != nil {
		return nil, err
	}
	err = st.PutCertificate(e.ctx, store.CertificateOf(issued.Cert, acct.Name, now))
	if err != nil {
		return nil, fmt.Errorf("record certificate: %w", err)
	}
	return issued, nil
}

// endSessions ends every session of user after an account change that
// must not leave anyone signed in on the old terms, and records it.
func endSessions(e *env, st store.Store, user, action string, now time.Time) error {
	n, err := st.DeleteUserSessions(e.ctx, user)
	if err != nil {
		return err
	}
	if err := st.AppendAudit(e.ctx, store.AuditEvent{Time: now.UTC(), Action: action, Outcome: "success", Actor: "cli", Target: user}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %d session(s) ended\n", user, n)
	return nil
}

// fingerprintPattern is what a pin or fingerprint looks like.
var fingerprintPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

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
	c, err = st.RevokeCertificate(e.ctx, c.Serial, now, reason)
	if err != nil {
		return err
	}
	err = st.AppendAudit(e.ctx, store.AuditEvent{Time: now.UTC(), Action: "certificate.revoke", Outcome: "success",
		Actor: "cli", Target: c.User, Reason: reason, CertFingerprint: c.Fingerprint})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked certificate %s of %s (%s)\n", c.Serial, c.User, c.Fingerprint)
	return nil
}

// userPin binds a certificate to an account by fingerprint or public key,
// for certificates whose names do not match the account (an enterprise
// PKI's device certificates, say).
func userPin(e *env, st store.Store, name, certFile, fp, keyPin string, now time.Time) error {
	given := 0
	for _, v := range []string{certFile, fp, keyPin} {
		if v != "" {
			given++
		}
	}
	if given != 1 {
		return errors.New("give exactly one of --cert FILE, --fingerprint sha256:HEX or --key-pin sha256:HEX")
	}
	if certFile != "" {
		data, err := os.ReadFile(certFile)
		if err != nil {
			return err
		}
		cert, err := ca.ParseCertPEM(data)
		if err != nil {
			return fmt.Errorf("%s: %w", certFile, err)
		}
		keyPin = auth.Fingerprint(cert.RawSubjectPublicKeyInfo)
	}
	fp, keyPin = strings.ToLower(fp), strings.ToLower(keyPin)
	for _, v := range []string{fp, keyPin} {
		if v != "" && !fingerprintPattern.MatchString(v) {
			return fmt.Errorf("%q is not of the form sha256:<64 hex digits>", v)
		}
	}
	return updateAccount(e, st, name, "pinned "+fp+keyPin, func(a *store.Account) error {
		if fp != "" && !slices.Contains(a.PinnedFingerprints, fp) {
			a.PinnedFingerprints = append(a.PinnedFingerprints, fp)
		}
		if keyPin != "" && !slices.Contains(a.PinnedKeys, keyPin) {
			a.PinnedKeys = append(a.PinnedKeys, keyPin)
		}
		a.UpdatedAt = now
		return nil
	})
}

func updateAccount(e *env, st store.Store, name, what string, fn func(*store.Account) error) error {
	err := st.UpdateAccount(e.ctx, name, fn)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no account named %q", name)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", name, what)
	return nil
}

func checkRolesExist(e *env, st store.Store, roles []string) error {
	for _, r := range roles {
		if _, err := st.Role(e.ctx, r); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no role named %q (create it with: gatehouse role set %s)", r, r)
		} else if err != nil {
			return err
		}
	}
	return nil
}

func newHasherHash(password string) (string, error) {
	h, err := auth.NewHasher(auth.BcryptCost)
	if err != nil {
		return "", err
	}
	defer h.Close()
	return h.Hash(context.Background(), password)
}

// readSecret reads one line from r, without its line ending.
func readSecret(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("nothing was read from standard input")
	}
	return line, nil
}

func dedupe(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// optionalBool is a boolean flag that remembers whether it was given, so
// "role set" changes only what the command line names.
type optionalBool struct{ set, value bool }

func (b *optionalBool) String() string { return fmt.Sprint(b.value) }
func (b *optionalBool) Set(v string) error {
	switch strings.ToLower(v) {
	case "true", "1", "yes":
		b.value = true
	case "false", "0", "no":
		b.value = false
	default:
		return fmt.Errorf("want true or false, got %q", v)
	}
	b.set = true
	return nil
}
func (b *optionalBool) IsBoolFlag() bool { return true }
