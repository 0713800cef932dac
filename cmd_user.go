package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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

// The user commands: accounts and what is bound to them.

var userAddCmd = &command{
	name:    "user add",
	args:    "NAME --role R [--role R]… [--email E] [--password-stdin]",
	short:   "create an account (with a temporary password, shown once, unless --password-stdin)",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		s := addSettings(fs)
		var roles stringList
		fs.Var(&roles, "role", "`role` to grant (repeatable)")
		email := fs.String("email", "", "email `address` (binds certificates carrying it; no two accounts share one, whatever its case)")
		passwordStdin := fs.Bool("password-stdin", false, "read the password from standard input instead of generating a temporary one")
		return s.onStore(func(e *env, st store.Store, args []string) error {
			return userAdd(e, st, args[0], roles, *email, *passwordStdin, time.Now())
		})
	},
}

var userListCmd = &command{
	name:  "user list",
	short: "list the accounts: roles, email, TOTP, status and locks",
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, _ []string) error { return userList(e, st) })
	},
}

var userPasswdCmd = &command{
	name:    "user passwd",
	args:    "NAME --password-stdin",
	short:   "set an account's password from standard input (ends its sessions)",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		s := addSettings(fs)
		passwordStdin := fs.Bool("password-stdin", false, "read the new password from standard input (required)")
		return s.onStore(func(e *env, st store.Store, args []string) error {
			return userPasswd(e, st, args[0], *passwordStdin, time.Now())
		})
	},
}

var userRolesCmd = &command{
	name:    "user roles",
	args:    "NAME --role R [--role R]…",
	short:   "set the roles an account holds (its sessions go on, with the new roles from their next request)",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		s := addSettings(fs)
		var roles stringList
		fs.Var(&roles, "role", "`role` the account should hold (repeatable; replaces the current roles)")
		return s.onStore(func(e *env, st store.Store, args []string) error {
			if len(roles) == 0 {
				return errors.New("give at least one --role")
			}
			if err := checkRolesExist(e, st, roles); err != nil {
				return err
			}
			name, now := args[0], time.Now()
			var old []string
			err := updateAccount(e, st, name, "roles set to "+strings.Join(dedupe(roles), ", "), func(a *store.Account) error {
				old = a.Roles // the store may run this again on a conflicting write
				a.Roles, a.UpdatedAt = dedupe(roles), now
				return nil
			})
			if err != nil {
				return err
			}
			reason := fmt.Sprintf("roles %s -> %s", strings.Join(old, ","), strings.Join(dedupe(roles), ","))
			return recordChange(e, st, now, store.AuditEvent{Action: "account.roles.set", Target: name, Reason: reason})
		})
	},
}

var userDisableCmd = &command{
	name:    "user disable",
	args:    "NAME",
	short:   "disable an account (ends its sessions at once)",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, args []string) error {
			now := time.Now()
			err := updateAccount(e, st, args[0], "disabled", func(a *store.Account) error {
				a.Disabled, a.UpdatedAt = true, now
				return nil
			})
			if err != nil {
				return err
			}
			return endSessions(e, st, args[0], "account.disable", now)
		})
	},
}

var userEnableCmd = &command{
	name:    "user enable",
	args:    "NAME",
	short:   "enable a disabled account",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, args []string) error {
			now := time.Now()
			err := updateAccount(e, st, args[0], "enabled", func(a *store.Account) error {
				a.Disabled, a.UpdatedAt = false, now
				return nil
			})
			if err != nil {
				return err
			}
			return recordChange(e, st, now, store.AuditEvent{Action: "account.enable", Target: args[0]})
		})
	},
}

var userUnlockCmd = &command{
	name:    "user unlock",
	args:    "NAME",
	short:   "clear an account's failed password and TOTP counters and locks",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, args []string) error {
			return userUnlock(e, st, args[0], time.Now())
		})
	},
}

var userPinCmd = &command{
	name:    "user pin",
	args:    "NAME (--cert FILE | --fingerprint sha256:HEX | --key-pin sha256:HEX)",
	short:   "bind a certificate to an account by its public key or fingerprint",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		s := addSettings(fs)
		certFile := fs.String("cert", "", "pin the public key of this certificate `file` (PEM): renewals with the same key keep working")
		fp := fs.String("fingerprint", "", "pin one certificate by `sha256:HEX` fingerprint")
		keyPin := fs.String("key-pin", "", "pin a public key by `sha256:HEX` of its SubjectPublicKeyInfo")
		return s.onStore(func(e *env, st store.Store, args []string) error {
			return userPin(e, st, args[0], *certFile, *fp, *keyPin, time.Now())
		})
	},
}

var userUnpinCmd = &command{
	name:    "user unpin",
	args:    "NAME PIN",
	short:   "remove a pinned fingerprint or public key from an account",
	minArgs: 2, maxArgs: 2,
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, args []string) error {
			name, pin, now := args[0], args[1], time.Now()
			err := updateAccount(e, st, name, "unpinned "+pin, func(a *store.Account) error {
				n := len(a.PinnedFingerprints) + len(a.PinnedKeys)
				a.PinnedFingerprints = slices.DeleteFunc(a.PinnedFingerprints, func(p string) bool { return p == pin })
				a.PinnedKeys = slices.DeleteFunc(a.PinnedKeys, func(p string) bool { return p == pin })
				if n == len(a.PinnedFingerprints)+len(a.PinnedKeys) {
					return fmt.Errorf("%s has no pin %s", a.Name, pin)
				}
				a.UpdatedAt = now
				return nil
			})
			if err != nil {
				return err
			}
			return recordChange(e, st, now, store.AuditEvent{Action: "account.unpin", Target: name, Reason: "unpinned " + pin})
		})
	},
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
		if err := auth.CheckNewPassword(password, name, email); err != nil {
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
		Name: name, ID: store.NewAccountID(), Email: email, PasswordHash: hash, Roles: dedupe(roles),
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
	// Recorded after the temporary password is shown: should the record
	// fail, the account is there all the same and must be usable.
	reason := "roles " + strings.Join(dedupe(roles), ",")
	if email != "" {
		reason += "; email " + email
	}
	if temporary {
		reason += "; must change password"
	}
	return recordChange(e, st, now, store.AuditEvent{Action: "account.create", Target: name, Reason: reason})
}

func userList(e *env, st store.Store) error {
	accts, err := st.Accounts(e.ctx)
	if err != nil {
		return err
	}
	// Per account and factor: the count of failures in a row, and the
	// lock marker. The count expires a day after the last failure; the
	// marker stays until an unlock, and it is what sign-in refuses on.
	factors := []struct{ counter, what string }{{auth.CounterPassword, "password"}, {auth.CounterTOTP, "TOTP"}}
	var keys []string
	for _, a := range accts {
		for _, f := range factors {
			c := auth.FailureCounter(f.counter, a.Name)
			keys = append(keys, c, auth.LockCounter(c))
		}
	}
	counts, err := st.FailuresOf(e.ctx, keys)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLES\tEMAIL\tTOTP\tSTATUS")
	for i, a := range accts {
		status := "active"
		switch {
		case a.Disabled:
			status = "disabled"
		case a.MustChangePassword:
			status = "must change password"
		}
		for j, f := range factors {
			k := 2 * (len(factors)*i + j)
			n, lock := counts[k], counts[k+1]
			switch {
			case lock > 0 || n >= auth.MaxConsecutiveFailures:
				status += ", " + f.what + " locked (gatehouse user unlock " + a.Name + ")"
			case n >= auth.FreeFailures:
				status += fmt.Sprintf(", %d wrong %s attempts in a row", n, f.what)
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

// userPasswd sets an account's password from standard input and ends
// its sessions.
func userPasswd(e *env, st store.Store, name string, passwordStdin bool, now time.Time) error {
	if !passwordStdin {
		return errors.New("user passwd needs --password-stdin (the password is read from standard input)")
	}
	password, err := readSecret(e.stdin)
	if err != nil {
		return err
	}
	// The account's email is one of the words the password must not be
	// built on.
	acct, err := st.Account(e.ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no account named %q", name)
	} else if err != nil {
		return err
	}
	if err := auth.CheckNewPassword(password, acct.Name, acct.Email); err != nil {
		return err
	}
	hash, err := newHasherHash(password)
	if err != nil {
		return err
	}
	err = updateAccount(e, st, name, "password changed", func(a *store.Account) error {
		a.PasswordHash, a.MustChangePassword, a.UpdatedAt = hash, false, now
		return nil
	})
	if err != nil {
		return err
	}
	return endSessions(e, st, name, "account.password.set", now)
}

// userUnlock clears an account's failed-attempt counters.
func userUnlock(e *env, st store.Store, name string, now time.Time) error {
	if err := accountExists(e, st, name); err != nil {
		return err
	}
	for _, key := range auth.AccountCounters(name) {
		if err := st.ResetFailures(e.ctx, key); err != nil {
			return err
		}
	}
	// The known devices' counts cannot be listed: they are left behind
	// under the old epoch.
	if _, err := st.AddFailure(e.ctx, auth.DeviceEpochCounter(name), auth.LockForever); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: unlocked (failed-attempt counters cleared)\n", name)
	return recordChange(e, st, now, store.AuditEvent{Action: "account.unlock", Target: name})
}

// endSessions ends every session of user after an account change that
// must not leave anyone signed in on the old terms, and records it.
func endSessions(e *env, st store.Store, user, action string, now time.Time) error {
	n, err := st.DeleteUserSessions(e.ctx, user)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %d session(s) ended\n", user, n)
	return recordChange(e, st, now, store.AuditEvent{Action: action, Target: user, Reason: fmt.Sprintf("%d session(s) ended", n)})
}

// fingerprintPattern is what a pin or fingerprint looks like.
var fingerprintPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

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
	err := updateAccount(e, st, name, "pinned "+fp+keyPin, func(a *store.Account) error {
		if fp != "" && !slices.Contains(a.PinnedFingerprints, fp) {
			a.PinnedFingerprints = append(a.PinnedFingerprints, fp)
		}
		if keyPin != "" && !slices.Contains(a.PinnedKeys, keyPin) {
			a.PinnedKeys = append(a.PinnedKeys, keyPin)
		}
		a.UpdatedAt = now
		return nil
	})
	if err != nil {
		return err
	}
	reason := "pinned certificate " + fp
	if keyPin != "" {
		reason = "pinned public key " + keyPin
	}
	return recordChange(e, st, now, store.AuditEvent{Action: "account.pin", Target: name, Reason: reason})
}

// accountExists refuses a name that is no account's.
func accountExists(e *env, st store.Store, name string) error {
	if _, err := st.Account(e.ctx, name); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no account named %q", name)
	} else if err != nil {
		return err
	}
	return nil
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

func newHasherHash(password string) (string, error) {
	h, err := auth.NewHasher(auth.BcryptCost)
	if err != nil {
		return "", err
	}
	defer h.Close()
	return h.Hash(context.Background(), password)
}
