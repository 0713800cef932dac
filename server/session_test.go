package server_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"gatehouse/server"
)

// wantUnauthenticated fails the test unless resp is the 401 JSON of a
// request without a usable session.
func wantUnauthenticated(t *testing.T, what string, resp response) {
	t.Helper()
	wantStatus(t, what, resp, http.StatusUnauthorized)
	var code string
	if err := json.Unmarshal(resp.JSON(t)["code"], &code); err != nil || code != "unauthenticated" {
		t.Errorf("%s: code = %q (%v), want \"unauthenticated\"", what, code, err)
	}
}

func TestSessionStore_UnknownIDIsNotAdopted(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	b := p.browser()

	// A validly signed cookie naming an ID the portal never issued, as an
	// attacker who knows the key format (or a leaked key) would plant it.
	const planted = "attacker-chosen-session-id"
	b.setCookie(p.signCookie(planted))

	wantUnauthenticated(t, "GET /api/session with a planted ID", b.get("/api/session"))
	p.sessionGone(planted)

	b.login("admin", adminPassword)
	got := b.sessionID()
	if got == planted {
		t.Fatalf("login kept the planted session ID %q (session fixation)", planted)
	}
	if rec := p.session(got); rec.User != "admin" {
		t.Errorf("new session record user = %q, want admin", rec.User)
	}
	p.sessionGone(planted)
	wantStatus(t, "GET /api/session after login", b.get("/api/session"), http.StatusOK)
}

func TestSessionStore_TamperedCookieIgnored(t *testing.T) {
	t.Parallel()
	p := newPortal(t)

	// A live session whose ID the tampered cookies try to reach.
	victim := p.browser()
	victim.login("admin", adminPassword)
	liveID := victim.sessionID()
	liveCookie := victim.cookie()

	otherKey := make([]byte, server.MinSessionKeyBytes)
	rand.Read(otherKey)
	flipped := []byte(liveCookie)
	if mid := len(flipped) / 2; flipped[mid] == 'A' {
		flipped[mid] = 'B'
	} else {
		flipped[mid] = 'A'
	}

	for _, tc := range []struct {
		name, value string
	}{
		{"garbage", "not-a-cookie-at-all"},
		{"bare live ID", liveID},
		{"unsigned base64 of the live ID", base64.URLEncoding.EncodeToString([]byte(`"` + liveID + `"`))},
		{"live ID signed with another key", signCookie(t, otherKey, liveID)},
		{"live cookie with one byte changed", string(flipped)},
		{"live cookie truncated", liveCookie[:len(liveCookie)-4]},
		{"live cookie with a suffix", liveCookie + "AAAA"},
		{"empty ID signed with the portal's key", p.signCookie("")},
		{"non-string value", "e30="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := p.browser()
			b.setCookie(tc.value)
			resp := b.get("/api/session")
			if resp.Status >= 500 {
				t.Fatalf("GET /api/session with a tampered cookie: status %d, body %s", resp.Status, resp.Body)
			}
			wantUnauthenticated(t, "GET /api/session with a tampered cookie", resp)
			home := b.get("/")
			if home.Status != http.StatusSeeOther || !strings.HasPrefix(home.Header.Get("Location"), "/login") {
				t.Errorf("GET / with a tampered cookie: status %d Location %q, want 303 to /login", home.Status, home.Header.Get("Location"))
			}
		})
	}
	// None of it harmed the real session.
	wantStatus(t, "GET /api/session on the real session", victim.get("/api/session"), http.StatusOK)
}

func TestSession_IdleTimeout(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	b := p.browser()
	b.login("admin", adminPassword)
	id := b.sessionID()

	// Activity within the idle timeout keeps the session alive...
	p.clock.Advance(server.DefaultSessionIdle - time.Minute)
	wantStatus(t, "GET /api/session just before the idle timeout", b.get("/api/session"), http.StatusOK)
	p.clock.Advance(server.DefaultSessionIdle - time.Minute)
	wantStatus(t, "GET /api/session again just before the idle timeout", b.get("/api/session"), http.StatusOK)

	// ...and a longer silence ends it.
	p.clock.Advance(server.DefaultSessionIdle + time.Second)
	wantUnauthenticated(t, "GET /api/session after the idle timeout", b.get("/api/session"))
	p.sessionGone(id)
}

// The idle clock's own resolution never signs out someone who uses the
// session: at the shortest accepted idle time, a session used every few
// seconds, or at gaps of up to three quarters of the idle time, stays
// alive over several idle periods; left alone for the idle time, it ends.
func TestSession_ActiveUserOutlivesShortIdleTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		idle time.Duration
		gap  time.Duration
	}{
		{"shortest idle time, a request every 5 seconds", server.MinSessionIdle, 5 * time.Second},
		{"shortest idle time, a request every 20 seconds", server.MinSessionIdle, 20 * time.Second},
		{"shortest idle time, a request every 45 seconds", server.MinSessionIdle, 45 * time.Second},
		{"5 minutes idle, a request every 50 seconds", 5 * time.Minute, 50 * time.Second},
		{"default idle time, a request every 20 minutes", server.DefaultSessionIdle, 20 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPortalWith(t, func(cfg *server.Config) { cfg.SessionIdle = tc.idle })
			b := p.browser()
			b.login("admin", adminPassword)
			id := b.sessionID()
			start := p.clock.Now()
			for p.clock.Now().Sub(start) < 4*tc.idle {
				now := p.clock.Advance(tc.gap)
				wantStatus(t, "GET /api/session "+now.Sub(start).String()+" after login", b.get("/api/session"), http.StatusOK)
			}
			p.clock.Advance(tc.idle)
			wantUnauthenticated(t, "GET /api/session after the idle time without a request", b.get("/api/session"))
			p.sessionGone(id)
		})
	}
}

// An idle time too short to be of use is refused with plain words that
// give the least accepted value and why; so is a lifetime shorter than
// the idle time.
func TestNew_SessionTimesRefusedInPlainWords(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	tests := []struct {
		name      string
		idle, max time.Duration
		words     []string
	}{
		{"30 seconds idle", 30 * time.Second, 0, []string{"30s", "too short", "at least 1 minute", "signed out while they read"}},
		{"a negative idle time", -time.Minute, 0, []string{"too short", "at least 1 minute"}},
		{"lifetime shorter than the idle time", time.Hour, 30 * time.Minute, []string{"30m", "shorter than the idle time", "1h"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := p.cfg
			cfg.SessionIdle, cfg.SessionMax = tc.idle, tc.max
			_, err := server.New(cfg)
			if err == nil {
				t.Fatalf("server.New accepted idle %v, max %v", tc.idle, tc.max)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("server.New with idle %v, max %v: %q, want it to say %q", tc.idle, tc.max, err, w)
				}
			}
		})
	}
	t.Run("the shortest accepted idle time", func(t *testing.T) {
		cfg := p.cfg
		cfg.SessionIdle = server.MinSessionIdle
		if _, err := server.New(cfg); err != nil {
			t.Errorf("server.New with idle %v: %v", server.MinSessionIdle, err)
		}
	})
}

func TestSession_AbsoluteLifetime(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	b := p.browser()
	b.login("admin", adminPassword)
	id := b.sessionID()
	loginAt := p.clock.Now()

	const step = 20 * time.Minute // well within the idle timeout
	for {
		now := p.clock.Advance(step)
		resp := b.get("/api/session")
		if now.Sub(loginAt) >= server.DefaultSessionMax {
			wantUnauthenticated(t, "GET /api/session at the absolute lifetime", resp)
			break
		}
		wantStatus(t, "GET /api/session "+now.Sub(loginAt).String()+" after login", resp, http.StatusOK)
	}
	p.sessionGone(id)
}

func TestSession_LastSeenWrittenAtMostOncePerMinute(t *testing.T) {
	t.Parallel()
	p := newPortal(t)
	b := p.browser()
	b.login("admin", adminPassword)
	id := b.sessionID()
	loginAt := p.clock.Now()
	if got := p.session(id).LastSeen; !got.Equal(loginAt) {
		t.Fatalf("LastSeen after login = %v, want %v", got, loginAt)
	}

	for _, d := range []time.Duration{10 * time.Second, 40 * time.Second} {
		p.clock.Advance(d - (p.clock.Now().Sub(loginAt)))
		resp := b.get("/api/session")
		wantStatus(t, "GET /api/session", resp, http.StatusOK)
		if got := p.session(id).LastSeen; !got.Equal(loginAt) {
			t.Errorf("%v after login: LastSeen = %v, want it unchanged (%v): written more than once a minute", d, got, loginAt)
		}
		if c := resp.Header.Values("Set-Cookie"); len(c) != 0 {
			t.Errorf("%v after login: response sets cookies %q, want no write at all", d, c)
		}
	}

	later := p.clock.Advance(2 * time.Minute)
	wantStatus(t, "GET /api/session two minutes later", b.get("/api/session"), http.StatusOK)
	if got := p.session(id).LastSeen; !got.Equal(later) {
		t.Errorf("LastSeen after a request two minutes later = %v, want %v", got, later)
	}
	if got := b.sessionID(); got != id {
		t.Errorf("refreshing LastSeen changed the session ID")
	}
}
