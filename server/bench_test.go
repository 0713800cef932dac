package server_test

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkVerify is /auth/verify with a valid session through the real
// handler, TLS and Redis: the hot path of every internal app. Run with
// -cpu to vary the parallelism and -cpuprofile to see where time goes.
func BenchmarkVerify(b *testing.B) {
	p := newPortal(b)
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
