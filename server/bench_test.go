package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/server"
	"gatehouse/store"
	"gatehouse/store/cached"
)

// BenchmarkVerify is /auth/verify with a valid session through the real
// handler, TLS and Redis: the hot path of every internal app. Run with
// -cpu to vary the parallelism and -cpuprofile to see where time goes.
func BenchmarkVerify(b *testing.B) {
	benchmarkVerify(b, newPortal(b))
}

// BenchmarkVerify_Cached is BenchmarkVerify with the store cache the
// portal runs with (store/cached, fed by Redis client tracking).
func BenchmarkVerify_Cached(b *testing.B) {
	benchmarkVerify(b, newPortalWith(b, withStoreCache(b)))
}

// withStoreCache configures a portal with the store cache the portal
// runs with (store/cached, fed by Redis client tracking).
func withStoreCache(b *testing.B) func(*server.Config) {
	return func(c *server.Config) {
		st, err := cached.New(c.Store, c.Store.(cached.Source), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		c.Store = st
	}
}

// BenchmarkVerifyHandler is BenchmarkVerify_Cached without the network:
// the portal's handler called directly, so that ns/op and allocs/op are
// the handler's own (TLS, HTTP parsing and the client are what
// BenchmarkVerify adds).
func BenchmarkVerifyHandler(b *testing.B) {
	p := newPortalWith(b, withStoreCache(b))
	withApps(b, p)
	p.addAccount("bob", bobPassword, "employee")
	bob := p.browser()
	bob.login("bob", bobPassword)
	cookie := bob.cookie()
	h := p.srv.Config.Handler
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, p.srv.URL+"/auth/verify", nil)
		req.TLS.ServerName = p.url.Hostname()
		req.Header.Set("X-Original-URL", "https://wiki.example.com/page")
		req.AddCookie(&http.Cookie{Name: "__Host-gatehouse", Value: cookie})
		for pb.Next() {
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, req.Clone(req.Context()))
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
	})
}

// discardWriter is an http.ResponseWriter that keeps only the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}
func (w *discardWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func benchmarkVerify(b *testing.B, p *portal) {
	withApps(b, p)
	p.addAccount("bob", bobPassword, "employee")
	bob := p.browser()
	bob.login("bob", bobPassword)
	cookie := bob.cookie()
	tr := bob.client.Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost = 256
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, p.srv.URL+"/auth/verify", nil)
			req.Header.Set("X-Original-URL", "https://wiki.example.com/page")
			req.AddCookie(&http.Cookie{Name: "__Host-gatehouse", Value: cookie})
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// BenchmarkAdminLists reads one page (limit 100) of each admin list
// through the real handler, TLS and Redis, in stores of 10^3 and 10^5
// accounts, each account with a session and a certificate, and as many
// audit events: the first page and one in the middle of the list. Time
// and memory per page (ns/op, B/op) must be about the same at both sizes.
// Filling 10^5 records takes a minute or so:
//
//	go test ./server -run '^$' -bench AdminLists -benchtime 200x
func BenchmarkAdminLists(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		p := newPortal(b)
		fillStore(b, p, n)
		admin := p.browser(p.AdminCert)
		admin.login("admin", adminPassword)
		for _, list := range []struct{ name, path, key string }{
			{"users", "/api/admin/users", "users"},
			{"sessions", "/api/admin/sessions", "sessions"},
			{"certificates", "/api/admin/certificates", "certificates"},
			{"audit", "/api/admin/audit", "events"},
		} {
			middle := cursorAt(b, admin, list.path, n/2)
			for _, at := range []struct{ name, cursor string }{{"first", ""}, {"middle", middle}} {
				path := list.path + "?limit=100"
				if at.cursor != "" {
					path += "&cursor=" + url.QueryEscape(at.cursor)
				}
				b.Run(fmt.Sprintf("%s/%s/records=%d", list.name, at.name, n), func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						r := admin.get(path)
						if r.Status != http.StatusOK || len(r.Body) < 1000 {
							b.Fatalf("GET %s: %d %.200s", path, r.Status, r.Body)
						}
					}
				})
			}
		}
	}
}

// BenchmarkSignInWithCertificate is a sign-in presenting a client
// certificate, over a new TLS connection, in stores of 10^3 and 10^5
// accounts (fillStore), without and with the store cache: the portal
// looks for every account the certificate names among all of them.
//
//	go test ./server -run '^$' -bench SignInWithCertificate -benchtime 10x -benchmem
func BenchmarkSignInWithCertificate(b *testing.B) {
	for _, cache := range []bool{false, true} {
		for _, n := range []int{1_000, 100_000} {
			configure, name := func(*server.Config) {}, "uncached"
			if cache {
				configure, name = withStoreCache(b), "cached"
			}
			p := newPortalWith(b, configure)
			fillStore(b, p, n)
			p.browser(p.AdminCert).login("admin", adminPassword) // the cache's first read of every account
			b.Run(fmt.Sprintf("%s/accounts=%d", name, n), func(b *testing.B) {
				for b.Loop() {
					p.browser(p.AdminCert).login("admin", adminPassword)
				}
			})
		}
	}
}

// cursorAt pages through the list at path, 1000 at a time, and returns
// the cursor that continues it after about skip items.
func cursorAt(b *testing.B, admin *browser, path string, skip int) string {
	b.Helper()
	cursor, step := "", min(skip, store.MaxPage)
	for seen := 0; seen < skip; seen += step {
		u := fmt.Sprintf("%s?limit=%d", path, step)
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		var body struct{ Next string }
		if err := json.Unmarshal([]byte(admin.get(u).Body), &body); err != nil || body.Next == "" {
			b.Fatalf("GET %s: no next (%v)", u, err)
		}
		cursor = body.Next
	}
	return cursor
}

// fillStore writes n accounts, each with a session and a certificate, and
// n audit events, as the portal writes them, from several goroutines.
func fillStore(b *testing.B, p *portal, n int) {
	b.Helper()
	ctx := b.Context()
	now := p.clock.Now()
	const writers = 16
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				name := fmt.Sprintf("user%06d", i)
				acct := store.Account{Name: name, PasswordHash: "$2a$04$" + strings.Repeat("x", 53), Roles: []string{"employee"}, CreatedAt: now, UpdatedAt: now}
				sess := store.Session{ID: fmt.Sprintf("session-%06d", i), User: name, Factors: []string{"password", "certificate"}, CertFingerprint: fmt.Sprintf("sha256:%064x", i), ClientAddr: "192.0.2.7", CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(12 * time.Hour)}
				cert := store.Certificate{Serial: fmt.Sprintf("%x", 1<<40+i), Issuer: "sha256:issuer", ID: fmt.Sprintf("sha256:%064x", i), Fingerprint: fmt.Sprintf("sha256:%064x", i), User: name, Subject: "CN=" + name, NotBefore: now, NotAfter: now.Add(365 * 24 * time.Hour), IssuedAt: now.Add(time.Duration(i) * time.Millisecond)}
				ev := store.AuditEvent{Time: now, Action: "login", Outcome: "success", Actor: name, ActorFactors: []string{"password", "certificate"}, Reason: "ok", ClientAddr: "192.0.2.7"}
				for _, err := range []error{
					p.store.CreateAccount(ctx, acct),
					p.store.PutSession(ctx, sess, 12*time.Hour),
					p.store.PutCertificate(ctx, cert),
					p.store.AppendAudit(ctx, ev),
				} {
					if err != nil {
						b.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
