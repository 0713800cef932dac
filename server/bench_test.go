package server_test

import (
	"io"
	"net/http"
	"testing"

	"gatehouse/server"
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
	benchmarkVerify(b, newPortalWith(b, func(c *server.Config) {
		st, err := cached.New(c.Store, c.Store.(cached.Source), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		c.Store = st
	}))
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
