package main

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"gatehouse/auth"
	"gatehouse/store"
)

// The role commands: what a role requires.

var roleSetCmd = &command{
	name:    "role set",
	args:    "NAME [--require-certificate[=false]] [--require-totp[=false]]",
	short:   "create or change a role (changes only what the command line names)",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		s := addSettings(fs)
		var requireCert, requireTOTP optionalBool
		fs.Var(&requireCert, "require-certificate", "the role needs a verified client certificate")
		fs.Var(&requireTOTP, "require-totp", "the role needs a TOTP code")
		return s.onStore(func(e *env, st store.Store, args []string) error {
			return roleSet(e, st, args[0], requireCert, requireTOTP, time.Now())
		})
	},
}

var roleListCmd = &command{
	name:  "role list",
	short: "list the roles and what each requires",
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, _ []string) error { return roleList(e, st) })
	},
}

var roleDeleteCmd = &command{
	name:    "role delete",
	args:    "NAME",
	short:   "delete a role (accounts that held it lose it)",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, args []string) error {
			return roleDelete(e, st, args[0], time.Now())
		})
	},
}

func roleSet(e *env, st store.Store, name string, requireCert, requireTOTP optionalBool, now time.Time) error {
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
	reason := fmt.Sprintf("require_certificate=%t require_totp=%t", r.RequireCertificate, r.RequireTOTP)
	if created {
		reason = "created; " + reason
	}
	return recordChange(e, st, now, store.AuditEvent{Action: "role.put", Target: name, Reason: reason})
}

func roleList(e *env, st store.Store) error {
	rs, err := st.Roles(e.ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tREQUIRES CERTIFICATE\tREQUIRES TOTP")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, yesNo(r.RequireCertificate), yesNo(r.RequireTOTP))
	}
	return tw.Flush()
}

// roleDelete deletes a role. It takes the role off every account first,
// so that a role created later under the same name is not silently held
// by them.
func roleDelete(e *env, st store.Store, name string, now time.Time) error {
	if name == "admin" {
		// As the admin API: nobody could administer the portal after.
		return errors.New("the admin role cannot be deleted: nobody could administer the portal without it")
	}
	if _, err := st.Role(e.ctx, name); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no role named %q", name)
	} else if err != nil {
		return err
	}
	held := 0
	err := store.EachAccount(e.ctx, st, func(a store.Account) error {
		if !slices.Contains(a.Roles, name) {
			return nil
		}
		err := st.UpdateAccount(e.ctx, a.Name, func(a *store.Account) error {
			a.Roles = slices.DeleteFunc(a.Roles, func(r string) bool { return r == name })
			a.UpdatedAt = now
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err == nil {
			held++
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := st.DeleteRole(e.ctx, name); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted role %s; accounts that held it lose it on their next request\n", name)
	return recordChange(e, st, now, store.AuditEvent{Action: "role.delete", Target: name, Reason: fmt.Sprintf("taken off %d account(s)", held)})
}

// checkRolesExist refuses roles the store does not have.
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
