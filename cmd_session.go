package main

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"gatehouse/server"
	"gatehouse/store"
)

// The session commands: live sessions, as the admin console and
// /api/admin/sessions show them. A session is named by its handle (a hash
// of its ID, server.SessionHandle), never by its ID: whoever could read
// session IDs could take sessions over.

var sessionListCmd = &command{
	name:    "session list",
	args:    "[USER]",
	short:   "list live sessions, of everyone or of one account: handle, factors, client address, times",
	minArgs: 0, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, args []string) error {
			user := ""
			if len(args) == 1 {
				user = args[0]
			}
			return sessionList(e, st, user)
		})
	},
}

var sessionEndCmd = &command{
	name:    "session end",
	args:    "USER [HANDLE]",
	short:   "end all of an account's sessions, or the one with that handle",
	minArgs: 1, maxArgs: 2,
	setup: func(fs *flag.FlagSet) runFunc {
		return addSettings(fs).onStore(func(e *env, st store.Store, args []string) error {
			handle := ""
			if len(args) == 2 {
				handle = args[1]
			}
			return sessionEnd(e, st, args[0], handle, time.Now())
		})
	},
}

// sessionTime is how session times are shown: UTC, to the second.
const sessionTime = time.RFC3339

func sessionList(e *env, st store.Store, user string) error {
	users := []string{user}
	if user == "" {
		accts, err := st.Accounts(e.ctx)
		if err != nil {
			return err
		}
		users = users[:0]
		for _, a := range accts {
			users = append(users, a.Name)
		}
	} else if err := accountExists(e, st, user); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tHANDLE\tFACTORS\tCLIENT\tCREATED\tLAST SEEN\tEXPIRES")
	for _, u := range users {
		list, err := st.Sessions(e.ctx, u)
		if err != nil {
			return err
		}
		for _, x := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.User, server.SessionHandle(x.ID),
				orDash(strings.Join(x.Factors, ",")), orDash(x.ClientAddr),
				x.CreatedAt.UTC().Format(sessionTime), x.LastSeen.UTC().Format(sessionTime), x.ExpiresAt.UTC().Format(sessionTime))
		}
	}
	return tw.Flush()
}

// sessionEnd ends one session of user, by handle, or all of them when
// handle is empty, and records it.
func sessionEnd(e *env, st store.Store, user, handle string, now time.Time) error {
	if err := accountExists(e, st, user); err != nil {
		return err
	}
	n := 0
	if handle == "" {
		var err error
		if n, err = st.DeleteUserSessions(e.ctx, user); err != nil {
			return err
		}
	} else {
		list, err := st.Sessions(e.ctx, user)
		if err != nil {
			return err
		}
		for _, x := range list {
			if server.SessionHandle(x.ID) == strings.ToLower(handle) {
				if err := st.DeleteSession(e.ctx, x.ID); err != nil {
					return err
				}
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("%s has no session %s: it has ended already, or it is another account's (see gatehouse session list %s)", user, handle, user)
		}
	}
	fmt.Fprintf(e.stdout, "%s: %d session(s) ended\n", user, n)
	return recordChange(e, st, now, store.AuditEvent{Action: "sessions.revoke", Target: user, Reason: fmt.Sprintf("%d session(s)", n)})
}
