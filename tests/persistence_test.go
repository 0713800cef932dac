package tests

import (
	"net/http"
	"strings"
	"testing"
)

// With a Redis that keeps nothing on disk, the portal says so loudly in
// its log and on /readyz; with persistence on, it says nothing.
func TestServe_WarnsWhenRedisKeepsNothing(t *testing.T) {
	t.Parallel()
	type ready struct {
		Status   string   `json:"status"`
		Warnings []string `json:"warnings"`
	}
	volatile := startPortal(t) // the harness's Redis: --save "" --appendonly no
	var r ready
	resp := volatile.client(t, nil).get(t, "/readyz")
	wantStatus(t, resp, http.StatusOK)
	decodeJSON(t, resp, &r)
	if r.Status != "ready" || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "keeps nothing on disk") {
		t.Errorf("/readyz with a volatile Redis = %+v, want ready with a warning that nothing is kept on disk", r)
	}
	if !strings.Contains(volatile.server.output(), "REDIS HAS NO PERSISTENCE") {
		t.Error("the log of a portal on a volatile Redis does not warn")
	}

	if volatile.Redis.External() {
		return // a shared Redis's settings are not ours to choose
	}
	kept := initPortal(t, "--appendonly", "yes")
	kept.start(t)
	r = ready{}
	resp = kept.client(t, nil).get(t, "/readyz")
	decodeJSON(t, resp, &r)
	if r.Status != "ready" || len(r.Warnings) != 0 {
		t.Errorf("/readyz with an append-only Redis = %+v, want ready without warnings", r)
	}
	if strings.Contains(kept.server.output(), "REDIS HAS NO PERSISTENCE") {
		t.Error("the portal warns although Redis keeps an append-only file")
	}
}
