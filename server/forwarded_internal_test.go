package server

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gatehouse/auth/ca"
)

// forwardedTestChain is a client certificate whose base64 holds a '+'
// (so that mistaking base64 for URL-escaped text shows), and its CA.
func forwardedTestChain(t testing.TB) (leaf, root *x509.Certificate) {
	t.Helper()
	now := time.Now()
	authority, err := ca.New("Forwarded test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		issued, err := authority.IssueClient(ca.ClientRequest{Name: "alice"}, now)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(base64.StdEncoding.EncodeToString(issued.Cert.Raw), "+") {
			return issued.Cert, authority.Cert
		}
	}
	t.Fatal("no certificate with a '+' in its base64 after 50 tries")
	return nil, nil
}

// The three forms proxies forward a certificate in, and the ways a
// header can be wrong.
func TestParseForwardedCert_Forms(t *testing.T) {
	t.Parallel()
	leaf, root := forwardedTestChain(t)
	b64 := base64.StdEncoding.EncodeToString
	nginx := url.QueryEscape(string(ca.CertPEM(leaf)))
	caddy := b64(leaf.Raw)
	traefik := b64(leaf.Raw) + "," + b64(root.Raw)
	traefikEscaped := url.QueryEscape(b64(leaf.Raw)) + "," + url.QueryEscape(b64(root.Raw))

	tests := []struct {
		name   string
		header http.Header
		// want is the chain's length; 0 for none.
		want int
		// err: "" none, "parse" a header that does not parse,
		// "conflict" errConflictingClientCert.
		err string
	}{
		{"no header", http.Header{}, 0, ""},
		{"nginx: URL-escaped PEM", http.Header{headerClientCert: {nginx}}, 1, ""},
		{"nginx: PEM escaped with %20 for spaces", http.Header{headerClientCert: {strings.ReplaceAll(nginx, "+", "%20")}}, 1, ""},
		{"Caddy: base64 DER", http.Header{headerClientCert: {caddy}}, 1, ""},
		{"Traefik: base64 DER, comma-joined", http.Header{headerForwardedClientCert: {traefik}}, 2, ""},
		{"Traefik: each URL-escaped", http.Header{headerForwardedClientCert: {traefikEscaped}}, 2, ""},
		{"Traefik: the leaf alone", http.Header{headerForwardedClientCert: {b64(leaf.Raw)}}, 1, ""},
		{"empty X-Client-Cert", http.Header{headerClientCert: {""}}, 0, ""},
		{"Caddy without a certificate: its placeholder", http.Header{headerClientCert: {"{http.request.tls.client.certificate_der_base64}"}}, 0, ""},
		{"Caddy: another placeholder", http.Header{headerClientCert: {"{http.request.tls.client.certificate_pem}"}}, 0, "parse"},
		{"Caddy's placeholder beside Traefik's", http.Header{headerClientCert: {"{http.request.tls.client.certificate_der_base64}"}, headerForwardedClientCert: {traefik}}, 0, "conflict"},

		{"Caddy's base64 with '+' read as a space", http.Header{headerClientCert: {strings.ReplaceAll(caddy, "+", " ")}}, 0, "parse"},
		{"Traefik's base64 with '+' read as a space", http.Header{headerForwardedClientCert: {strings.ReplaceAll(b64(leaf.Raw), "+", " ")}}, 0, "parse"},
		{"not PEM, not base64", http.Header{headerClientCert: {"%%%not-pem"}}, 0, "parse"},
		{"base64 of something else", http.Header{headerClientCert: {b64([]byte("hello, world"))}}, 0, "parse"},
		{"PEM armour around garbage", http.Header{headerClientCert: {url.QueryEscape("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}}, 0, "parse"},
		{"base64 with a character too many", http.Header{headerClientCert: {strings.TrimRight(caddy, "=") + "A"}}, 0, "parse"},
		{"Traefik: one good, one bad", http.Header{headerForwardedClientCert: {b64(leaf.Raw) + ",bad"}}, 0, "parse"},
		{"Traefik: empty item", http.Header{headerForwardedClientCert: {b64(leaf.Raw) + ","}}, 0, "parse"},
		{"Traefik: PEM armour", http.Header{headerForwardedClientCert: {nginx}}, 0, "parse"},
		{"Traefik: too many certificates", http.Header{headerForwardedClientCert: {strings.Repeat(b64(leaf.Raw)+",", maxForwardedChain) + b64(leaf.Raw)}}, 0, "parse"},
		{"too long", http.Header{headerClientCert: {strings.Repeat("A", maxForwardedCertBytes+4)}}, 0, "parse"},

		{"both headers", http.Header{headerClientCert: {caddy}, headerForwardedClientCert: {traefik}}, 0, "conflict"},
		{"both headers, naming the same certificate", http.Header{headerClientCert: {caddy}, headerForwardedClientCert: {caddy}}, 0, "conflict"},
		{"an empty X-Client-Cert beside Traefik's", http.Header{headerClientCert: {""}, headerForwardedClientCert: {traefik}}, 0, "conflict"},
		{"X-Client-Cert twice", http.Header{headerClientCert: {caddy, nginx}}, 0, "conflict"},
		{"X-Forwarded-Tls-Client-Cert twice", http.Header{headerForwardedClientCert: {b64(root.Raw), b64(leaf.Raw)}}, 0, "conflict"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			chain, err := parseForwardedCert(tc.header)
			switch {
			case tc.err == "conflict" && !errors.Is(err, errConflictingClientCert):
				t.Fatalf("err = %v, want errConflictingClientCert", err)
			case tc.err == "parse" && (err == nil || errors.Is(err, errConflictingClientCert)):
				t.Fatalf("err = %v, want a parse error", err)
			case tc.err == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			}
			if len(chain) != tc.want {
				t.Fatalf("chain of %d certificates, want %d", len(chain), tc.want)
			}
			if tc.want > 0 && !chain[0].Equal(leaf) {
				t.Errorf("chain[0] is %q, want the leaf first", chain[0].Subject)
			}
			if tc.want > 1 && !chain[1].Equal(root) {
				t.Errorf("chain[1] is %q, want the CA", chain[1].Subject)
			}
			if gotErr := checkForwardedCertHeaders(tc.header) != nil; gotErr != (tc.err == "conflict") {
				t.Errorf("checkForwardedCertHeaders refused = %v, want %v", gotErr, tc.err == "conflict")
			}
		})
	}
}

// FuzzParseForwardedCert checks that no header value makes the parser
// panic, that a chain it returns is within bounds, and that the chain
// reads back the same in every other form.
func FuzzParseForwardedCert(f *testing.F) {
	leaf, root := forwardedTestChain(f)
	b64 := base64.StdEncoding.EncodeToString
	for _, s := range []string{
		url.QueryEscape(string(ca.CertPEM(leaf))), b64(leaf.Raw), b64(leaf.Raw) + "," + b64(root.Raw),
		url.QueryEscape(b64(leaf.Raw)), "%%%", "-----BEGIN", "-----BEGIN%20CERTIFICATE-----%0A%2B%0A", ",", " , ", "",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, v string, traefik bool) {
		name := headerClientCert
		if traefik {
			name = headerForwardedClientCert
		}
		chain, err := parseForwardedCert(http.Header{name: {v}})
		if err != nil {
			if chain != nil {
				t.Fatalf("parseForwardedCert(%q) returned a chain and an error", v)
			}
			return
		}
		if len(chain) > maxForwardedChain {
			t.Fatalf("parseForwardedCert(%q) returned %d certificates", v, len(chain))
		}
		if len(chain) == 0 {
			return
		}
		parts := make([]string, len(chain))
		for i, c := range chain {
			parts[i] = b64(c.Raw)
		}
		again, err := parseForwardedCert(http.Header{headerForwardedClientCert: {strings.Join(parts, ",")}})
		if err != nil || len(again) != len(chain) {
			t.Fatalf("the chain from %q does not read back in Traefik's form: %d certificates, %v", v, len(again), err)
		}
		for i := range chain {
			if !again[i].Equal(chain[i]) {
				t.Fatalf("certificate %d from %q reads back differently", i, v)
			}
		}
	})
}
