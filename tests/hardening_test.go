package tests

import (
	"net/http"
	"strings"
	"testing"
)

// A request whose Host header names another host than the TLS
// connection's server name (SNI) is refused with 421.
func TestHostMustMatchServerName(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	c := p.client(t, nil)
	port := p.URL[strings.LastIndex(p.URL, ":"):]

	for _, tc := range []struct {
		name, url, host string
		want            int
	}{
		{"same name", p.URL, "localhost" + port, http.StatusOK},
		{"same name, other case and a trailing dot", p.URL, "LocalHost." + port, http.StatusOK},
		{"another name over a connection to localhost", p.URL, "intranet.example" + port, http.StatusMisdirectedRequest},
		{"an IP address over a connection to localhost", p.URL, "127.0.0.1" + port, http.StatusMisdirectedRequest},
		{"by IP address (no SNI)", "https://127.0.0.1" + port, "127.0.0.1" + port, http.StatusOK},
		{"a name over a connection by IP address", "https://127.0.0.1" + port, "localhost" + port, http.StatusMisdirectedRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, tc.url+"/login", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tc.host
			r := send(t, c.bare, req)
			wantStatus(t, r, tc.want)
			if tc.want == http.StatusMisdirectedRequest && !strings.Contains(r.Body, "different host") {
				t.Errorf("421 page does not say why:\n%s", r.Body)
			}
		})
	}
}
