package server

import (
	"crypto/tls"
	"testing"
	"time"
)

// The http.Server has every timeout set (a slow client cannot hold a
// connection open for ever), none shorter than a person needs to pick a
// certificate mid-handshake, TLS 1.2 at least, and a client certificate
// requested but not required.
func TestHTTPServer_TimeoutsAndTLS(t *testing.T) {
	srv := HTTPServer(":0", nil, tls.Certificate{})
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout,
	} {
		if d < time.Minute || d > 5*time.Minute {
			t.Errorf("%s = %v, want between 1 and 5 minutes", name, d)
		}
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Errorf("MaxHeaderBytes = %d, want a limit of at most 64 KiB", srv.MaxHeaderBytes)
	}
	if c := srv.TLSConfig; c.MinVersion != tls.VersionTLS12 || c.ClientAuth != tls.RequestClientCert {
		t.Errorf("TLS config: min version %x, client auth %v; want TLS 1.2 and RequestClientCert", c.MinVersion, c.ClientAuth)
	}
}
