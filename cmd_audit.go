package main

import (
	"encoding/json"
	"flag"

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
