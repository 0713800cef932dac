package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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
	// CONFIG disabled (as on many managed services) and snapshots on:
	// only the append-only file shows, so the portal says Redis may keep
	// nothing, not that it does.
	unsure := initPortal(t, "--save", "60 1", "--rename-command", "CONFIG", "")
	unsure.start(t)
	r = ready{}
	decodeJSON(t, unsure.client(t, nil).get(t, "/readyz"), &r)
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "may keep nothing on disk") {
		t.Errorf("/readyz with CONFIG disabled = %+v, want one warning that Redis may keep nothing on disk", r)
	}
	if out := unsure.server.output(); !strings.Contains(out, "REDIS MAY HAVE NO PERSISTENCE") || strings.Contains(out, "REDIS HAS NO PERSISTENCE") {
		t.Errorf("the log with CONFIG disabled does not say Redis may have no persistence:\n%s", out)
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

	// An operator turns persistence off and the connections drop (as in
	// a restart): the portal reads the settings again when it
	// reconnects, without a restart of its own.
	rdb := redis.NewClient(&redis.Options{Addr: kept.Redis.Addr})
	defer rdb.Close()
	if err := rdb.ConfigSet(t.Context(), "appendonly", "no").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ClientKillByFilter(t.Context(), "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		r = ready{}
		decodeJSON(t, kept.client(t, nil).get(t, "/readyz"), &r)
		if len(r.Warnings) == 1 && strings.Contains(r.Warnings[0], "keeps nothing on disk") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after persistence was turned off and the portal reconnected = %+v, want the warning", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// When Redis comes back from a restart without its data, the running
// portal notices: /readyz is 503 with the reason, the log says it
// loudly, a sign-in is refused in plain words (never "invalid username
// or password"), the command line refuses to work on the empty store,
// and "gatehouse init --store-only" sets it up afresh, after which the
// portal is ready again without a restart.
func TestServe_NoticesAStoreThatLostItsData(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	if p.Redis.External() {
		t.Skip("GATEHOUSE_TEST_REDIS is a shared Redis that this test cannot restart")
	}
	c := p.client(t, nil)
	wantStatus(t, c.get(t, "/readyz"), http.StatusOK)

	p.Redis.Stop()
	p.Redis.Start() // --save "" --appendonly no: every key is gone

	var ready struct{ Status, Code, Error, Reason string }
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp := c.get(t, "/readyz")
		if resp.Status == http.StatusServiceUnavailable && strings.Contains(resp.Body, "data_lost") {
			decodeJSON(t, resp, &ready)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz after Redis came back empty: %d %s, want 503 data_lost", resp.Status, resp.Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(ready.Error, "lost its data") || ready.Reason == "" {
		t.Errorf("/readyz = %+v, want the loss in plain words and a reason", ready)
	}
	if !strings.Contains(p.server.output(), "STORE HAS LOST ITS DATA") {
		t.Error("the portal's log does not say loudly that the store lost its data")
	}
	login := p.client(t, nil).login(t, "admin", p.AdminPassword)
	wantStatus(t, login, http.StatusServiceUnavailable)
	if strings.Contains(login.Body, "invalid username or password") || !strings.Contains(login.Body, "lost its data") {
		t.Errorf("sign-in on the emptied store does not say that the store lost its data:\n%.600s", login.Body)
	}
	if stderr := p.cliFails(t, "user", "list"); !strings.Contains(stderr, "lost its data") {
		t.Errorf("gatehouse user list on the emptied store: %q, want it to say the store lost its data", stderr)
	}

	out := p.cli(t, "", "init", "--store-only")
	if !strings.Contains(out, "everything it held before is gone") {
		t.Errorf("gatehouse init --store-only printed %q", out)
	}
	p.readAdminCredentials(t) // new credentials
	wantStatus(t, c.get(t, "/readyz"), http.StatusOK)
	cert := p.adminCert(t)
	wantRedirect(t, p.client(t, &cert).login(t, "admin", p.AdminPassword), "/")
	if stderr := p.cliFails(t, "init", "--store-only"); !strings.Contains(stderr, "set up already") {
		t.Errorf("gatehouse init --store-only on a store that has its marker: %q, want a refusal", stderr)
	}
}
