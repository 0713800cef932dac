package server

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"gatehouse/auth/ca"
)

// Client certificates forwarded by a TLS-terminating proxy.
//
// Behind a proxy that terminates TLS, the portal's connection is the
// proxy's; the proxy passes on the certificate the user presented to it
// in a header. Three forms are read, and only from --trusted-proxy
// addresses:
//
//   - X-Client-Cert as URL-escaped PEM: nginx's $ssl_client_escaped_cert;
//   - X-Client-Cert as base64 DER, without PEM armour: Caddy's
//     {http.request.tls.client.certificate_der_base64};
//   - X-Forwarded-Tls-Client-Cert: Traefik's passTLSClientCert, the base64
//     DER of each certificate the client sent, leaf first, joined with
//     commas; older versions URL-escape each one, current ones do not.
//
// Whatever its form, a forwarded certificate is verified like one from
// the handshake, and a header that does not parse counts as no
// certificate. A request from a trusted proxy that carries more than one
// of these headers, or one of them twice, is refused (see
// checkForwardedCertHeaders).

// Header names of the forwarded forms.
const (
	headerClientCert          = "X-Client-Cert"
	headerForwardedClientCert = "X-Forwarded-Tls-Client-Cert"
)

// caddyNoCertificate is what Caddy sends for its certificate placeholder
// when the browser presented no certificate: the placeholder itself,
// left unreplaced. It means no certificate, like an empty header.
const caddyNoCertificate = "{http.request.tls.client.certificate_der_base64}"

// maxForwardedCertBytes bounds a forwarded certificate header.
const maxForwardedCertBytes = 16 << 10

// maxForwardedChain is the most certificates a forwarded chain may hold:
// a leaf and its intermediates, never a bundle of unrelated ones.
const maxForwardedChain = 8

// errConflictingClientCert refuses a request that forwards the client's
// certificate more than once. A proxy sets one header on every request;
// a second one comes from the client, passed on by a proxy that does not
// clear it, and choosing either could let the client pick the
// certificate.
var errConflictingClientCert = &Error{Status: http.StatusBadRequest, Code: "conflicting_client_cert",
	Message: "the proxy forwarded a client certificate more than once (X-Client-Cert and X-Forwarded-Tls-Client-Cert, or one of them twice); it must set one of these headers and clear the other"}

// ClientCertHeaders are the headers a proxy may forward the client's
// certificate in (Config.ClientCertHeader).
var ClientCertHeaders = []string{headerClientCert, headerForwardedClientCert}

// CheckClientCertHeader returns the canonical name of a client
// certificate header a proxy may use (X-Client-Cert when name is empty),
// or an error that names the ones there are.
func CheckClientCertHeader(name string) (string, error) {
	if name == "" {
		return headerClientCert, nil
	}
	name = http.CanonicalHeaderKey(name)
	if !slices.Contains(ClientCertHeaders, name) {
		return "", fmt.Errorf("the client certificate header must be %s, not %q", strings.Join(ClientCertHeaders, " or "), name)
	}
	return name, nil
}

// checkProxyCertHeader refuses a request from a trusted proxy that
// carries the certificate header the proxies are not configured to use.
// A proxy sets and clears only its own header: nginx, given no client
// certificate, sends no X-Client-Cert at all and passes on whatever else
// the client sent, so a header of the other kind is the client's.
func checkProxyCertHeader(h http.Header, want string) error {
	for _, name := range ClientCertHeaders {
		if name != want && len(h.Values(name)) > 0 {
			return &Error{Status: http.StatusBadRequest, Code: "wrong_client_cert_header",
				Message: fmt.Sprintf("this portal reads a forwarded client certificate from %s only (--client-cert-header), and the request carries %s; the proxy must clear it", want, name)}
		}
	}
	return nil
}

// checkForwardedCertHeaders returns errConflictingClientCert when h holds
// more than one forwarded certificate header line, counting empty ones:
// an empty header is a proxy saying "no certificate", and a second
// header beside it is someone else's claim.
func checkForwardedCertHeaders(h http.Header) error {
	if len(h.Values(headerClientCert))+len(h.Values(headerForwardedClientCert)) > 1 {
		return errConflictingClientCert
	}
	return nil
}

// parseForwardedCert returns the certificate chain a proxy forwarded in
// h, leaf first, or nil when it forwarded none. An error means the
// header does not parse (the caller counts that as no certificate), or
// errConflictingClientCert.
func parseForwardedCert(h http.Header) ([]*x509.Certificate, error) {
	if err := checkForwardedCertHeaders(h); err != nil {
		return nil, err
	}
	if v := h.Get(headerClientCert); v != "" {
		return parseClientCertHeader(v)
	}
	if v := h.Get(headerForwardedClientCert); v != "" {
		return parseForwardedClientCertHeader(v)
	}
	return nil, nil
}

// parseClientCertHeader reads X-Client-Cert: URL-escaped PEM (nginx),
// which starts with the PEM armour, or else base64 DER (Caddy, which
// sends caddyNoCertificate when there is none). The form
// is decided before anything is unescaped: base64 holds '+', which
// URL-unescaping would turn into a space.
func parseClientCertHeader(v string) ([]*x509.Certificate, error) {
	if len(v) > maxForwardedCertBytes {
		return nil, fmt.Errorf("%s is %d bytes long, more than %d", headerClientCert, len(v), maxForwardedCertBytes)
	}
	v = strings.TrimSpace(v)
	if v == caddyNoCertificate {
		return nil, nil
	}
	if strings.HasPrefix(v, "-----BEGIN") {
		text, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("%s is not URL-escaped PEM: %w", headerClientCert, err)
		}
		chain, err := ca.ParseCertsPEM([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("%s (PEM): %w", headerClientCert, err)
		}
		if len(chain) > maxForwardedChain {
			return nil, fmt.Errorf("%s holds %d certificates, more than %d", headerClientCert, len(chain), maxForwardedChain)
		}
		return chain, nil
	}
	c, err := parseBase64DER(v)
	if err != nil {
		return nil, fmt.Errorf("%s is neither URL-escaped PEM nor base64 DER: %w", headerClientCert, err)
	}
	return []*x509.Certificate{c}, nil
}

// parseForwardedClientCertHeader reads Traefik's
// X-Forwarded-Tls-Client-Cert: base64 DER certificates joined with
// commas, each URL-escaped or not. Path unescaping decodes %2B, %2F and
// %3D and leaves a bare '+' as it is.
func parseForwardedClientCertHeader(v string) ([]*x509.Certificate, error) {
	if len(v) > maxForwardedCertBytes {
		return nil, fmt.Errorf("%s is %d bytes long, more than %d", headerForwardedClientCert, len(v), maxForwardedCertBytes)
	}
	parts := strings.Split(v, ",")
	if len(parts) > maxForwardedChain {
		return nil, fmt.Errorf("%s holds %d certificates, more than %d", headerForwardedClientCert, len(parts), maxForwardedChain)
	}
	chain := make([]*x509.Certificate, 0, len(parts))
	for i, part := range parts {
		text, err := url.PathUnescape(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("%s, certificate %d: %w", headerForwardedClientCert, i+1, err)
		}
		c, err := parseBase64DER(text)
		if err != nil {
			return nil, fmt.Errorf("%s, certificate %d: %w", headerForwardedClientCert, i+1, err)
		}
		chain = append(chain, c)
	}
	return chain, nil
}

// parseBase64DER parses one certificate in standard base64 (padded).
func parseBase64DER(v string) (*x509.Certificate, error) {
	if v == "" {
		return nil, errors.New("empty certificate")
	}
	der, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("not a DER certificate: %w", err)
	}
	return c, nil
}

// forwardedCertificate is the chain a trusted proxy forwarded with r, or
// nil. A header that does not parse is logged and counts as no
// certificate; conflicting headers never get here (s.secure refuses
// them), and count as none too.
func (s *Server) forwardedCertificate(r *http.Request) []*x509.Certificate {
	chain, err := parseForwardedCert(r.Header)
	if err != nil {
		s.log.Info("client certificate forwarded by a trusted proxy does not count", "err", err.Error())
		return nil
	}
	return chain
}
