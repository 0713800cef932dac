package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"gatehouse/auth"
	"gatehouse/server"
	"gatehouse/store"
)

// unknownNameRE is how a name that matches no account appears in logs and
// the audit trail: a keyed hash, never the text typed.
var unknownNameRE = regexp.MustCompile(`unknown:[0-9a-f]{16}`)

// A name typed at sign-in that matches no account is often a password
// typed into the wrong field: the log, the audit trail and the store's
// keys never hold it as typed, only a keyed hash of it, the same hash at
// every attempt so that repeated guesses stay visible.
func TestLogin_UnknownNameIsLoggedAsKeyedHash(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		typed string
	}{
		{"a password typed into the name field", "Winter-Tulip-Harbour-1987!"},
		{"a known name in other letter case", "ADMIN-Secret-Pass"},
		{"an email address", "dana.smith@example.com"},
		{"text with quotes and backslashes", `p"a\ss'w0rd`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPortal(t)
			b := p.browser()
			form := url.Values{"username": {tc.typed}, "password": {"some password or other"}}
			for range 2 {
				wantStatus(t, "POST /login with an unknown name", b.post("/login", form), http.StatusUnauthorized)
			}
			// Attempts go on until the throttle refuses one, so that its
			// refusal is logged and audited too.
			throttled := false
			for range 12 {
				if r := b.post("/login", form); r.Status == http.StatusTooManyRequests {
					throttled = true
					break
				}
			}
			if !throttled {
				t.Fatalf("no attempt was throttled")
			}
			wantNoKeyHolds(t, p, tc.typed)
			// The name is looked up with its ASCII capitals folded (account
			// names are lower-case), and hashed as looked up.
			folded := strings.ToLower(tc.typed) // the test's names are ASCII
			wantNoKeyHolds(t, p, folded)

			page, err := p.store.Audit(t.Context(), store.AuditQuery{Action: "login"})
			events := page.Items
			if err != nil {
				t.Fatalf("read the audit trail: %v", err)
			}
			if len(events) < 3 {
				t.Fatalf("the audit trail has %d login events, want at least 3: %+v", len(events), events)
			}
			tag := events[0].Actor
			if want := keyedHash(p.nameKey, folded); tag != want {
				t.Fatalf("audit actor = %q, want the keyed hash %q", tag, want)
			}
			reasons := map[string]bool{}
			for _, e := range events {
				if e.Actor != tag {
					t.Errorf("audit actors %q and %q for the same name, want one hash for every attempt", tag, e.Actor)
				}
				reasons[e.Reason] = true
			}
			if !reasons["unknown_user"] || !reasons["throttled"] {
				t.Errorf("audit reasons %v, want unknown_user and throttled", reasons)
			}

			logs := p.logs.String()
			if strings.Contains(logs, tc.typed) || strings.Contains(logs, strings.Trim(strconv.Quote(tc.typed), `"`)) {
				t.Errorf("the log holds the name as typed:\n%s", logs)
			}
			if got := strings.Count(logs, tag); got < len(events) {
				t.Errorf("the log names %s %d times, want at least %d (one per audited attempt):\n%s", tag, got, len(events), logs)
			}
		})
	}
}

// The hash of an unknown name depends only on the name and the key: a
// portal started again with the same key gives the same hash, so repeated
// attempts stay visible across restarts; another key gives another.
func TestLogin_UnknownNameHashSurvivesRestart(t *testing.T) {
	t.Parallel()
	const typed = "Winter-Tulip-Harbour-1987!"
	first := newPortal(t)
	again := newPortalWith(t, func(cfg *server.Config) { cfg.UnknownNameKey = first.nameKey })
	other := newPortal(t)
	actor := func(p *portal) string {
		t.Helper()
		form := url.Values{"username": {typed}, "password": {"some password or other"}}
		wantStatus(t, "POST /login with an unknown name", p.browser().post("/login", form), http.StatusUnauthorized)
		page, err := p.store.Audit(t.Context(), store.AuditQuery{Action: "login"})
		events := page.Items
		if err != nil || len(events) != 1 {
			t.Fatalf("audit trail: %+v, %v; want one login event", events, err)
		}
		return events[0].Actor
	}
	a, b, c := actor(first), actor(again), actor(other)
	if !unknownNameRE.MatchString(a) || a != b {
		t.Errorf("the same name under the same key: %q, then %q; want one unknown:<16 hex digits>", a, b)
	}
	if c == a {
		t.Errorf("the same name under another key gave the same hash %q: the hash is not keyed", c)
	}
}

// keyedHash is what a portal with key logs for an unknown name.
func keyedHash(key []byte, name string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(name))
	return "unknown:" + hex.EncodeToString(m.Sum(nil))[:16]
}

// unknownCounter is the throttle counter of factor for a name that
// matches no account: it is kept under the name's keyed hash.
func (p *portal) unknownCounter(factor, name string) string {
	return auth.FailureCounter(factor, keyedHash(p.nameKey, name))
}

// A known account's name is logged and audited as it is.
func TestLogin_KnownNameIsLoggedAsIs(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	form := url.Values{"username": {"admin"}, "password": {"not the password"}}
	wantStatus(t, "POST /login with a wrong password", p.browser().post("/login", form), http.StatusUnauthorized)
	page, err := p.store.Audit(t.Context(), store.AuditQuery{Action: "login"})
	events := page.Items
	if err != nil {
		t.Fatalf("read the audit trail: %v", err)
	}
	if len(events) != 1 || events[0].Actor != "admin" || events[0].Reason != "bad_password" {
		t.Errorf("audit events %+v, want one bad_password event with actor admin", events)
	}
	if logs := p.logs.String(); !strings.Contains(logs, "actor=admin") {
		t.Errorf("the log does not name admin:\n%s", logs)
	}
}

// wantNoKeyHolds fails the test if any key in the portal's Redis holds
// text, as typed.
func wantNoKeyHolds(t *testing.T, p *portal, text string) {
	t.Helper()
	opt, err := redis.ParseURL(p.redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	keys, err := rdb.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatalf("list Redis keys: %v", err)
	}
	for _, k := range keys {
		if strings.Contains(k, text) {
			t.Errorf("store key %q holds the name as typed", k)
		}
	}
}
