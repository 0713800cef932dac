package main

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"gatehouse/server"
	"gatehouse/store"
)

// The app commands: the internal apps behind forward auth, as the admin
// console's Apps page and /api/admin/apps keep them, by the same rules.

var appSetCmd = &command{
	name:    "app set",
	args:    "NAME --url URL --role R [--role R]…",
	short:   "register an app behind forward auth, or replace it: its base URL and the roles that may open it",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		s := addSettings(fs)
		rawURL := fs.String("url", "", "the app's base `URL`: https://HOST[:PORT]/PATH/ (requests under it belong to the app)")
		var roles stringList
		fs.Var(&roles, "role", "a `role` that may open the app (repeatable; replaces the current roles)")
		return s.onStore(func(e *env, st store.Store, args []string) error {
			return appSet(e, st, args[0], *rawURL, roles, time.Now())
		})
	},
}

var appListCmd = &command{
	name:  "app list",
	short: "list the apps: name, base URL and the roles that may open each",
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, _ []string) error { return appList(e, st) })
	},
}

var appDeleteCmd = &command{
	name:    "app delete",
	args:    "NAME",
	short:   "delete an app (forward auth then denies its URLs)",
	minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, args []string) error {
			return appDelete(e, st, args[0], time.Now())
		})
	},
}

// appSet creates or replaces an app, checked as PUT /api/admin/apps/{name}
// checks it: the name, the URL (server.AppURL), roles that exist, and no
// other app with the same URL.
func appSet(e *env, st store.Store, name, rawURL string, roles []string, now time.Time) error {
	if err := server.CheckAppName(name); err != nil {
		return err
	}
	if rawURL == "" {
		return errors.New("give the app's base URL with --url (https://HOST[:PORT]/PATH/)")
	}
	u, err := server.AppURL(rawURL)
	if err != nil {
		return err
	}
	if len(roles) == 0 {
		return errors.New("give the app at least one role that may open it (--role R)")
	}
	if err := checkRolesExist(e, st, roles); err != nil {
		return err
	}
	apps, err := st.Apps(e.ctx)
	if err != nil {
		return err
	}
	verb := "created"
	for _, a := range apps {
		if a.Name == name {
			verb = "replaced"
		} else if a.URL == u {
			return fmt.Errorf("the app %s already has the URL %s", a.Name, u)
		}
	}
	app := store.App{Name: name, URL: u, Roles: dedupe(roles)}
	if err := st.PutApp(e.ctx, app); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s app %s: %s, for roles %s\n", verb, name, u, strings.Join(app.Roles, ", "))
	return recordChange(e, st, now, store.AuditEvent{Action: "app.put", Target: name,
		Reason: fmt.Sprintf("url %s roles %s", u, strings.Join(app.Roles, ","))})
}

func appList(e *env, st store.Store) error {
	apps, err := st.Apps(e.ctx)
	if err != nil {
		return err
	}
	slices.SortFunc(apps, func(a, b store.App) int { return strings.Compare(a.Name, b.Name) })
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tURL\tROLES")
	for _, a := range apps {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Name, a.URL, strings.Join(a.Roles, ","))
	}
	return tw.Flush()
}

// appDelete removes an app: forward auth then denies its URLs.
func appDelete(e *env, st store.Store, name string, now time.Time) error {
	if _, err := st.App(e.ctx, name); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no app named %q (see gatehouse app list)", name)
	} else if err != nil {
		return err
	}
	if err := st.DeleteApp(e.ctx, name); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted app %s; forward auth denies its URLs from now on\n", name)
	return recordChange(e, st, now, store.AuditEvent{Action: "app.delete", Target: name})
}
