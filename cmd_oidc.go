package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"gatehouse/server"
	"gatehouse/store"
)

// The OpenID Connect commands: the apps that sign people in through the
// portal's OpenID Provider, by the rules of /api/admin/oidc-clients, and
// the provider's token signing keys.

var oidcClientSetCmd = &command{
	name:    "oidc-client set",
	args:    "ID --redirect-uri URI [--redirect-uri URI]… --role R [--role R]… [--public] [--new-secret]",
	short:   "register an OpenID Connect app, or change it; a new client secret is printed once",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		s := addSettings(fs)
		var uris, roles stringList
		fs.Var(&uris, "redirect-uri", "a `URI` the app receives codes at, matched exactly (repeatable; replaces the current ones)")
		fs.Var(&roles, "role", "a `role` that may use the app (repeatable; replaces the current roles)")
		public := fs.Bool("public", false, "a public client (no secret, PKCE required): an app on the person's own device")
		newSecret := fs.Bool("new-secret", false, "make a new client secret; the old one stops working")
		return s.onStore(func(e *env, st store.Store, args []string) error {
			return oidcClientSet(e, st, args[0], uris, roles, *public, *newSecret, time.Now())
		})
	},
}

var oidcClientListCmd = &command{
	name:  "oidc-client list",
	short: "list the OpenID Connect apps: ID, kind, redirect URIs and roles",
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, _ []string) error { return oidcClientList(e, st) })
	},
}

var oidcClientDeleteCmd = &command{
	name:    "oidc-client delete",
	args:    "ID",
	short:   "delete an OpenID Connect app (it gets no more sign-ins)",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, args []string) error {
			return oidcClientDelete(e, st, args[0], time.Now())
		})
	},
}

var oidcKeysRotateCmd = &command{
	name:  "oidc-keys rotate",
	short: "make a new token signing key; the old one stays published until its tokens expire",
	setup: func(fs *flag.FlagSet) runFunc {
		s := addSettings(fs)
		return s.onStore(func(e *env, st store.Store, _ []string) error {
			l := layout{s.data}
			key, err := loadTOTPKey(e, l)
			if err != nil {
				return err
			}
			sealer, err := checkTOTPKey(e, st, key, l)
			if err != nil {
				return err
			}
			now := time.Now()
			id, err := server.RotateOIDCKey(e.ctx, st, sealer, now)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "new signing key %s signs from now on; the previous key stays published until the tokens it signed have expired\n", id)
			return recordChange(e, st, now, store.AuditEvent{Action: "oidc.keys.rotate", Target: id})
		})
	},
}

// oidcClientSet creates or changes a client, checked as the admin API
// checks it (server.NewOIDCClient) and with roles that exist.
func oidcClientSet(e *env, st store.Store, id string, uris, roles []string, public, newSecret bool, now time.Time) error {
	var old *store.OIDCClient
	switch c, err := st.OIDCClient(e.ctx, id); {
	case err == nil:
		old = &c
		if len(uris) == 0 {
			uris = c.RedirectURIs
		}
		if len(roles) == 0 {
			roles = c.Roles
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if len(uris) == 0 {
		return errors.New("give the app's redirect URI with --redirect-uri (for Grafana: https://GRAFANA/login/generic_oauth)")
	}
	if len(roles) == 0 {
		return errors.New("give the app at least one role that may use it (--role R)")
	}
	if err := checkRolesExist(e, st, roles); err != nil {
		return err
	}
	c, secret, err := server.NewOIDCClient(old, id, uris, roles, public, newSecret, now)
	if err != nil {
		return err
	}
	if err := st.PutOIDCClient(e.ctx, c); err != nil {
		return err
	}
	reason := fmt.Sprintf("redirect_uris %s roles %s public %t", strings.Join(c.RedirectURIs, " "), strings.Join(c.Roles, ","), c.Public)
	if secret != "" {
		reason += " new secret"
	}
	verb := "created"
	if old != nil {
		verb = "changed"
	}
	fmt.Fprintf(e.stdout, "%s OpenID Connect app %s, for roles %s\n", verb, id, strings.Join(c.Roles, ", "))
	if secret != "" {
		fmt.Fprintf(e.stdout, "client secret (shown once): %s\n", secret)
	}
	// Recorded after the secret is shown: should the record fail, the
	// secret works all the same and the app needs it.
	return recordChange(e, st, now, store.AuditEvent{Action: "oidc_client.put", Target: id, Reason: reason})
}

func oidcClientList(e *env, st store.Store) error {
	cs, err := st.OIDCClients(e.ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tKIND\tREDIRECT URIS\tROLES")
	for _, c := range cs {
		kind := "confidential"
		if c.Public {
			kind = "public"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ID, kind, strings.Join(c.RedirectURIs, " "), strings.Join(c.Roles, ","))
	}
	return tw.Flush()
}

func oidcClientDelete(e *env, st store.Store, id string, now time.Time) error {
	if _, err := st.OIDCClient(e.ctx, id); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no OpenID Connect app %q (see gatehouse oidc-client list)", id)
	} else if err != nil {
		return err
	}
	if err := st.DeleteOIDCClient(e.ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted OpenID Connect app %s; it gets no more sign-ins\n", id)
	return recordChange(e, st, now, store.AuditEvent{Action: "oidc_client.delete", Target: id})
}
