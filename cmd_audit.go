package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"gatehouse/store"
)

var auditCmd = &command{
	name:  "audit",
	args:  "[--limit N]",
	short: "print the newest audit events, as JSON lines",
	setup: func(fs *flag.FlagSet) runFunc {
		s := addSettings(fs)
		limit := fs.Int("limit", 50, "how many events, newest first")
		return s.onStore(func(e *env, st store.Store, _ []string) error {
			events, err := st.Audit(e.ctx, store.AuditQuery{Limit: *limit})
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
		})
	},
}

// cliActor is the actor of every change made with the command line. The
// command line works on the store from the portal's own machine, with no
// session: it has no account, factors or client address to record.
const cliActor = "cli"

// errNotRecorded reports a change the command line made whose audit
// event could not be written: the change stands, but the audit trail
// does not show it, and whoever ran the command must know that.
var errNotRecorded = errors.New("the change was made, but it could not be recorded in the audit trail")

// recordChange appends to the audit trail a change the command line has
// just made. ev says what was done (Action, named as the admin API's
// action without "admin.", or account.* for the account commands), to
// whom or what (Target) and how (Reason, CertFingerprint); the actor,
// the outcome and the time (UTC) are set here. Call it after the change
// succeeded, and never with a password, key or import password in ev.
func recordChange(e *env, st store.Store, now time.Time, ev store.AuditEvent) error {
	ev.Time, ev.Outcome, ev.Actor = now.UTC(), "success", cliActor
	if err := st.AppendAudit(e.ctx, ev); err != nil {
		return fmt.Errorf("%w (%s %s): %w", errNotRecorded, ev.Action, ev.Target, err)
	}
	return nil
}
