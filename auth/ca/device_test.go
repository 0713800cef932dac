package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// Test keys, certificates and requests are made here, at run time.

func newTestCA(t *testing.T) *CA {
	t.Helper()
	authority, err := New("Gatehouse test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return authority
}

func newKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var key crypto.Signer
	var err error
	switch kind {
	case "P-224":
		key, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "P-256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "P-384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "P-521":
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "RSA-1024":
		key, err = rsa.GenerateKey(rand.Reader, 1024)
	case "RSA-2048":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "Ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no test key of kind %q", kind)
	}
	if err != nil {
		t.Fatalf("generate %s key: %v", kind, err)
	}
	return key
}

// newCSR returns a PEM certificate request for key; tmpl may be nil.
func newCSR(t *testing.T, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("create certificate request: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// greedyCSR asks for everything a request can ask for: other names, an
// admin's common name, CA powers, server authentication.
func greedyCSR(t *testing.T) *x509.CertificateRequest {
	t.Helper()
	basicCA, err := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	if err != nil {
		t.Fatal(err)
	}
	serverAuth, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 1}})
	if err != nil {
		t.Fatal(err)
	}
	return &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "admin", Organization: []string{"Evil"}},
		EmailAddresses: []string{"admin@example.com", "root@example.com"},
		DNSNames:       []string{"gatehouse.example.com"},
		IPAddresses:    []net.IP{net.ParseIP("10.0.0.1")},
		URIs:           []*url.URL{{Scheme: "spiffe", Host: "example.com", Path: "/admin"}},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: basicCA},
			{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: serverAuth},
		},
	}
}

// unsignedCSR returns a PEM certificate request for the public key in
// spki (DER SubjectPublicKeyInfo) with a signature of random bytes: a
// request for a key the test cannot sign with, or will not wait for.
func unsignedCSR(t *testing.T, spki []byte) []byte {
	t.Helper()
	info, err := asn1.Marshal(struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Attributes []asn1.RawValue `asn1:"tag:0"`
	}{
		Subject:   asn1.RawValue{FullBytes: mustMarshal(t, pkix.Name{CommonName: "device"}.ToRDNSequence())},
		PublicKey: asn1.RawValue{FullBytes: spki},
	})
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 256)
	rand.Read(sig)
	der, err := asn1.Marshal(struct {
		Info      asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}{
		Info:      asn1.RawValue{FullBytes: info},
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, Parameters: asn1.NullRawValue}, // sha256WithRSAEncryption
		Signature: asn1.BitString{Bytes: sig, BitLength: len(sig) * 8},
	})
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hugeRSAKey is a DER SubjectPublicKeyInfo for an RSA modulus of bits
// bits; it is not a real key, which is enough to be refused.
func hugeRSAKey(t *testing.T, bits int) []byte {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bits)))
	if err != nil {
		t.Fatal(err)
	}
	n.SetBit(n, bits-1, 1).SetBit(n, 0, 1)
	spki, err := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: n, E: 65537})
	if err != nil {
		t.Fatal(err)
	}
	return spki
}

func sameKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func TestParseCSR_AcceptedKeysGetACertificateWithOnlyTheAccountNames(t *testing.T) {
	t.Parallel()
	authority := newTestCA(t)
	roots := x509.NewCertPool()
	roots.AddCert(authority.Cert)
	for _, kind := range []string{"P-256", "P-384", "RSA-2048"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			key := newKey(t, kind)
			pub, err := ParseCSR(newCSR(t, key, greedyCSR(t)))
			if err != nil {
				t.Fatalf("ParseCSR refused a %s request: %v", kind, err)
			}
			if !sameKey(pub, key.Public()) {
				t.Fatalf("ParseCSR returned %T, not the request's key", pub)
			}
			now := time.Now()
			cert, err := authority.IssueClientForKey(ClientRequest{Name: "alice", Email: "alice@example.com"}, pub, now)
			if err != nil {
				t.Fatal(err)
			}
			if !sameKey(cert.PublicKey, key.Public()) {
				t.Error("certificate does not carry the request's public key")
			}
			want := pkix.Name{CommonName: "alice", Organization: []string{"Gatehouse"}}.String()
			if got := cert.Subject.String(); got != want {
				t.Errorf("subject %q, want %q", got, want)
			}
			if !slices.Equal(cert.EmailAddresses, []string{"alice@example.com"}) {
				t.Errorf("email addresses %q, want only the account's", cert.EmailAddresses)
			}
			if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.URIs) > 0 {
				t.Errorf("names from the request leaked: DNS %q IP %v URI %v", cert.DNSNames, cert.IPAddresses, cert.URIs)
			}
			if cert.IsCA || !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || cert.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("usages from the request leaked: CA %v, EKU %v, KU %v", cert.IsCA, cert.ExtKeyUsage, cert.KeyUsage)
			}
			for _, ext := range cert.Extensions {
				for _, asked := range greedyCSR(t).ExtraExtensions {
					if ext.Id.Equal(asked.Id) && bytes.Equal(ext.Value, asked.Value) {
						t.Errorf("extension %v from the request leaked", ext.Id)
					}
				}
			}
			if got, want := cert.NotAfter, now.Add(ClientValidity).Truncate(time.Second); !got.Equal(want) {
				t.Errorf("not after %v, want %v", got, want)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("certificate does not verify for client authentication: %v", err)
			}
		})
	}
}

func TestParseCSR_BrokenSignatureIsRefused(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"P-256", "RSA-2048"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			block, _ := pem.Decode(newCSR(t, newKey(t, kind), nil))
			der := block.Bytes
			der[len(der)-1] ^= 0x01 // the last byte of the signature
			if _, err := x509.ParseCertificateRequest(der); err != nil {
				t.Fatalf("the broken request must still parse, to test the signature alone: %v", err)
			}
			_, err := ParseCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
			if !errors.Is(err, ErrBadCSR) {
				t.Fatalf("ParseCSR = %v, want ErrBadCSR", err)
			}
			if !strings.Contains(err.Error(), "signature does not verify") {
				t.Errorf("error %q does not say the signature is wrong", err)
			}
		})
	}
}

func TestParseCSR_KeysOtherThanP256P384OrRSA2048To8192AreRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		csr  func(t *testing.T) []byte
		want string // in the error message
	}{
		{"RSA-1024", func(t *testing.T) []byte { return newCSR(t, newKey(t, "RSA-1024"), nil) }, "key is RSA 1024 bits; use P-256, P-384 or RSA of 2048 bits or more"},
		{"P-224", func(t *testing.T) []byte { return newCSR(t, newKey(t, "P-224"), nil) }, "key is ECDSA P-224; use"},
		{"P-521", func(t *testing.T) []byte { return newCSR(t, newKey(t, "P-521"), nil) }, "key is ECDSA P-521; use"},
		{"Ed25519", func(t *testing.T) []byte { return newCSR(t, newKey(t, "Ed25519"), nil) }, "key is Ed25519; use"},
		{"RSA-8200 (cost)", func(t *testing.T) []byte { return unsignedCSR(t, hugeRSAKey(t, 8200)) }, "RSA 8200 bits, more than the 8192 accepted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pub, err := ParseCSR(tc.csr(t))
			if !errors.Is(err, ErrWeakKey) {
				t.Fatalf("ParseCSR = %T, %v; want ErrWeakKey", pub, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestParseCSR_AnythingButOnePEMRequestIsRefused(t *testing.T) {
	t.Parallel()
	valid := newCSR(t, newKey(t, "P-256"), nil)
	block, _ := pem.Decode(valid)
	tests := []struct {
		name  string
		input []byte
	}{
		{"empty", nil},
		{"not PEM", []byte("hello, I would like a certificate")},
		{"DER without PEM", block.Bytes},
		{"certificate instead of request", CertPEM(newTestCA(t).Cert)},
		{"private key instead of request", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: block.Bytes})},
		{"old Netscape type name", pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: block.Bytes})},
		{"two requests", append(slices.Clip(valid), valid...)},
		{"text before", append([]byte("my request:\n"), valid...)},
		{"broken block before a request", append([]byte("-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n"), valid...)},
		{"text after", append(slices.Clip(valid), "thanks\n"...)},
		{"request then certificate", append(slices.Clip(valid), CertPEM(newTestCA(t).Cert)...)},
		{"PEM of garbage", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("garbage")})},
		{"truncated", valid[:len(valid)/2]},
		{"oversize", append(slices.Clip(valid), bytes.Repeat([]byte("\n"), MaxCSRSize)...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := ParseCSR(tc.input); !errors.Is(err, ErrBadCSR) {
				t.Errorf("ParseCSR = %v, want ErrBadCSR", err)
			}
		})
	}
	// White space around the one block is fine: it is how PEM is pasted.
	if _, err := ParseCSR(append(append([]byte("\n  "), valid...), "\r\n\n"...)); err != nil {
		t.Errorf("ParseCSR refused a request with white space around it: %v", err)
	}
}

func TestIssueClientForKey_RefusesWhatParseCSRRefuses(t *testing.T) {
	t.Parallel()
	authority := newTestCA(t)
	req := ClientRequest{Name: "alice", Email: "alice@example.com"}
	rsa2048 := newKey(t, "RSA-2048").Public().(*rsa.PublicKey)
	tests := []struct {
		name string
		req  ClientRequest
		pub  crypto.PublicKey
		want error // nil: any error
	}{
		{"RSA-1024", req, newKey(t, "RSA-1024").Public(), ErrWeakKey},
		{"P-224", req, newKey(t, "P-224").Public(), ErrWeakKey},
		{"Ed25519", req, newKey(t, "Ed25519").Public(), ErrWeakKey},
		{"no key", req, nil, ErrWeakKey},
		{"nil RSA key", req, (*rsa.PublicKey)(nil), ErrWeakKey},
		{"empty ECDSA key", req, &ecdsa.PublicKey{}, ErrWeakKey},
		{"RSA with exponent 1", req, &rsa.PublicKey{N: rsa2048.N, E: 1}, ErrWeakKey},
		{"empty account name", ClientRequest{}, newKey(t, "P-256").Public(), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cert, err := authority.IssueClientForKey(tc.req, tc.pub, time.Now())
			if err == nil {
				t.Fatalf("issued a certificate with serial %v", cert.SerialNumber)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzParseCSR(f *testing.F) {
	for _, kind := range []string{"P-256", "RSA-2048", "Ed25519"} {
		key := newKey(f, kind)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
		f.Add(der)
	}
	f.Add([]byte{})
	f.Add([]byte("garbage"))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----BEGIN CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := ParseCSR(data)
		if err != nil {
			if !errors.Is(err, ErrBadCSR) && !errors.Is(err, ErrWeakKey) {
				t.Fatalf("error %v is neither ErrBadCSR nor ErrWeakKey", err)
			}
			if pub != nil {
				t.Fatal("a key returned with an error")
			}
			return
		}
		if p := keyProblem(pub); p != "" {
			t.Fatalf("accepted a key that is %s", p)
		}
	})
}

func TestChainPEM_IsTheLeafThenTheCA(t *testing.T) {
	t.Parallel()
	authority := newTestCA(t)
	issued, err := authority.IssueClient(ClientRequest{Name: "alice"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ParseCertsPEM(ChainPEM(issued.Cert, authority.Cert))
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || !certs[0].Equal(issued.Cert) || !certs[1].Equal(authority.Cert) {
		t.Errorf("chain holds %d certificates, want the leaf then the CA", len(certs))
	}
}

// p12Formats are the PKCS#12 files a device can download, with what
// `openssl pkcs12 -info` must name in each.
var p12Formats = []struct {
	name   string
	encode func(*Issued, *x509.Certificate, string) ([]byte, error)
	info   []string
	absent []string
}{
	{
		name:   "p12",
		encode: PKCS12,
		info:   []string{"MAC: sha256", "PBES2, PBKDF2, AES-256-CBC", "PRF hmacWithSHA256"},
		absent: []string{"TripleDES", "sha1"},
	},
	{
		name:   "p12-legacy",
		encode: PKCS12Legacy,
		info:   []string{"MAC: sha1", "pbeWithSHA1And3-KeyTripleDES-CBC"},
		absent: []string{"AES", "PBES2"},
	},
}

func TestPKCS12Formats_GoPKCS12ReadsKeyCertificateAndCA(t *testing.T) {
	t.Parallel()
	authority := newTestCA(t)
	issued, err := authority.IssueClient(ClientRequest{Name: "alice", Email: "alice@example.com"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range p12Formats {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			p12, err := f.encode(issued, authority.Cert, "correct horse")
			if err != nil {
				t.Fatal(err)
			}
			key, cert, cas, err := pkcs12.DecodeChain(p12, "correct horse")
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			signer, ok := key.(crypto.Signer)
			if !ok || !sameKey(signer.Public(), cert.PublicKey) || !cert.Equal(issued.Cert) {
				t.Error("the key does not match the certificate, or the certificate is not the one issued")
			}
			if len(cas) != 1 || !cas[0].Equal(authority.Cert) {
				t.Errorf("CA certificates %d, want the CA's", len(cas))
			}
			if _, _, _, err := pkcs12.DecodeChain(p12, "wrong"); err == nil {
				t.Error("opened with the wrong password")
			}
		})
	}
}

// opensslPath finds the openssl command: a missing one skips the test,
// except in CI, where it must be there.
func opensslPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl is needed in CI: %v", err)
		}
		t.Skipf("openssl not found (%v); install OpenSSL 3 to check that it reads the PKCS#12 files", err)
	}
	return path
}

// runOpenSSL runs openssl with the PKCS#12 password in the environment,
// never on the command line.
func runOpenSSL(t *testing.T, openssl, password string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(openssl, args...)
	cmd.Env = append(os.Environ(), "GATEHOUSE_TEST_P12_PASSWORD="+password)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func TestPKCS12Formats_OpenSSLReadsThemWithTheRightAlgorithms(t *testing.T) {
	t.Parallel()
	openssl := opensslPath(t)
	authority := newTestCA(t)
	issued, err := authority.IssueClient(ClientRequest{Name: "alice", Email: "alice@example.com"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const password = "correct horse"
	for _, f := range p12Formats {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			p12, err := f.encode(issued, authority.Cert, password)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "device.p12")
			if err := os.WriteFile(file, p12, 0o600); err != nil {
				t.Fatal(err)
			}
			pass := "env:GATEHOUSE_TEST_P12_PASSWORD"

			// OpenSSL 3 reads both without -legacy: 3DES is still in its
			// default provider (RC2 and RC4 moved to the legacy one), so
			// import steps for Linux need no -legacy. With -legacy, which
			// needs OpenSSL's legacy provider installed, both read too.
			for _, legacy := range [][]string{nil, {"-legacy"}} {
				args := append([]string{"pkcs12", "-in", file, "-passin", pass, "-nodes"}, legacy...)
				out, errOut, err := runOpenSSL(t, openssl, password, args...)
				if err != nil {
					t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, errOut)
				}
				checkOpenSSLExport(t, out, issued, authority.Cert)
			}

			info, errOut, err := runOpenSSL(t, openssl, password, "pkcs12", "-in", file, "-passin", pass, "-info", "-noout")
			if err != nil {
				t.Fatalf("openssl pkcs12 -info: %v\n%s", err, errOut)
			}
			info += errOut // OpenSSL prints the algorithms on standard error
			for _, s := range f.info {
				if !strings.Contains(info, s) {
					t.Errorf("openssl pkcs12 -info does not name %q:\n%s", s, info)
				}
			}
			for _, s := range f.absent {
				if strings.Contains(info, s) {
					t.Errorf("openssl pkcs12 -info names %q:\n%s", s, info)
				}
			}

			if _, _, err := runOpenSSL(t, openssl, "wrong", "pkcs12", "-in", file, "-passin", pass, "-nodes"); err == nil {
				t.Error("openssl opened the file with the wrong password")
			}
		})
	}
}

// checkOpenSSLExport checks that openssl's PEM output holds the issued
// certificate, its private key and the CA certificate.
func checkOpenSSLExport(t *testing.T, out string, issued *Issued, caCert *x509.Certificate) {
	t.Helper()
	var certs []*x509.Certificate
	var key crypto.Signer
	rest := []byte(out)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			certs = append(certs, c)
		case "PRIVATE KEY":
			k, err := ParseKeyPEM(pem.EncodeToMemory(block))
			if err != nil {
				t.Fatal(err)
			}
			key = k
		}
	}
	if key == nil || !sameKey(key.Public(), issued.Cert.PublicKey) {
		t.Error("openssl did not export the certificate's private key")
	}
	if !slices.ContainsFunc(certs, issued.Cert.Equal) || !slices.ContainsFunc(certs, caCert.Equal) {
		t.Errorf("openssl exported %d certificates, want the issued one and the CA", len(certs))
	}
}

// plistNode is an XML element of a property list, decoded generically.
type plistNode struct {
	XMLName  xml.Name
	Text     string      `xml:",chardata"`
	Children []plistNode `xml:",any"`
}

// plistValue turns a property list element into Go values: map[string]any,
// []any, string, int, []byte and bool.
func plistValue(t *testing.T, n plistNode) any {
	t.Helper()
	switch n.XMLName.Local {
	case "dict":
		m := map[string]any{}
		if len(n.Children)%2 != 0 {
			t.Fatalf("dict with %d elements, want key and value pairs", len(n.Children))
		}
		for i := 0; i < len(n.Children); i += 2 {
			k := n.Children[i]
			if k.XMLName.Local != "key" {
				t.Fatalf("dict element %d is <%s>, want <key>", i, k.XMLName.Local)
			}
			if _, dup := m[k.Text]; dup {
				t.Fatalf("key %q twice in one dict", k.Text)
			}
			m[k.Text] = plistValue(t, n.Children[i+1])
		}
		return m
	case "array":
		var a []any
		for _, c := range n.Children {
			a = append(a, plistValue(t, c))
		}
		return a
	case "string":
		return n.Text
	case "integer":
		i, err := strconv.Atoi(n.Text)
		if err != nil {
			t.Fatalf("integer %q: %v", n.Text, err)
		}
		return i
	case "data":
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Text), ""))
		if err != nil {
			t.Fatalf("data: %v", err)
		}
		return b
	case "true", "false":
		return n.XMLName.Local == "true"
	}
	t.Fatalf("unexpected plist element <%s>", n.XMLName.Local)
	return nil
}

// decodeProfile checks that a configuration profile is well-formed XML
// and a property list, and returns its top-level dictionary.
func decodeProfile(t *testing.T, profile []byte) map[string]any {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(profile))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("profile is not well-formed XML: %v\n%s", err, profile)
		}
	}
	var root plistNode
	if err := xml.Unmarshal(profile, &root); err != nil {
		t.Fatal(err)
	}
	if root.XMLName.Local != "plist" || len(root.Children) != 1 {
		t.Fatalf("root <%s> with %d children, want <plist> with one dict", root.XMLName.Local, len(root.Children))
	}
	top, ok := plistValue(t, root.Children[0]).(map[string]any)
	if !ok {
		t.Fatal("plist does not hold a dict")
	}
	return top
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestMobileConfig_HoldsTheIdentityAndTheCAWithoutThePassword(t *testing.T) {
	t.Parallel()
	authority := newTestCA(t)
	issued, err := authority.IssueClient(ClientRequest{Name: "alice", Email: "alice@example.com"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const password = "import-password-4c7b"
	p12, err := PKCS12Legacy(issued, authority.Cert, password)
	if err != nil {
		t.Fatal(err)
	}
	const name = `Gatehouse certificate for Alice's <Pixel> & "Co"`
	profile, err := MobileConfig(p12, authority.Cert, name, "com.gatehouse.device.42")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(profile, []byte(password)) {
		t.Error("the import password is in the profile")
	}
	if bytes.Contains(profile, []byte("<Pixel>")) {
		t.Error("the display name is not escaped")
	}
	top := decodeProfile(t, profile)

	for key, want := range map[string]any{
		"PayloadType":         "Configuration",
		"PayloadVersion":      1,
		"PayloadIdentifier":   "com.gatehouse.device.42",
		"PayloadDisplayName":  name,
		"PayloadOrganization": "Gatehouse",
	} {
		if top[key] != want {
			t.Errorf("profile %s = %#v, want %#v", key, top[key], want)
		}
	}
	content, ok := top["PayloadContent"].([]any)
	if !ok || len(content) != 2 {
		t.Fatalf("PayloadContent %#v, want an array of two payloads", top["PayloadContent"])
	}
	byType := map[string]map[string]any{}
	uuids := []any{top["PayloadUUID"]}
	identifiers := []any{top["PayloadIdentifier"]}
	for _, c := range content {
		p := c.(map[string]any)
		byType[p["PayloadType"].(string)] = p
		uuids = append(uuids, p["PayloadUUID"])
		identifiers = append(identifiers, p["PayloadIdentifier"])
		if p["PayloadVersion"] != 1 || p["PayloadDisplayName"] == "" {
			t.Errorf("payload %v: version %v, display name %q", p["PayloadType"], p["PayloadVersion"], p["PayloadDisplayName"])
		}
		if _, has := p["Password"]; has {
			t.Error("a payload holds a password")
		}
	}
	identity, root := byType["com.apple.security.pkcs12"], byType["com.apple.security.root"]
	if identity == nil || root == nil {
		t.Fatalf("payload types %v, want com.apple.security.pkcs12 and com.apple.security.root", slices.Sorted(maps.Keys(byType)))
	}
	if got, _ := identity["PayloadContent"].([]byte); !bytes.Equal(got, p12) {
		t.Error("the pkcs12 payload's data is not the PKCS#12 file")
	}
	if got, _ := root["PayloadContent"].([]byte); !bytes.Equal(got, authority.Cert.Raw) {
		t.Error("the root payload's data is not the CA certificate's DER")
	}
	for _, u := range uuids {
		if s, _ := u.(string); !uuidV4.MatchString(s) {
			t.Errorf("PayloadUUID %q is not a random RFC 4122 UUID", u)
		}
	}
	if len(uniq(uuids)) != 3 {
		t.Errorf("PayloadUUIDs %v are not unique", uuids)
	}
	if len(uniq(identifiers)) != 3 {
		t.Errorf("PayloadIdentifiers %v are not unique", identifiers)
	}

	profile2, err := MobileConfig(p12, authority.Cert, name, "com.gatehouse.device.42")
	if err != nil {
		t.Fatal(err)
	}
	if again := decodeProfile(t, profile2); again["PayloadUUID"] == top["PayloadUUID"] {
		t.Error("two profiles share a PayloadUUID")
	}
}

func uniq(values []any) map[any]bool {
	m := map[any]bool{}
	for _, v := range values {
		m[v] = true
	}
	return m
}

func TestMobileConfig_EscapesEveryText(t *testing.T) {
	t.Parallel()
	authority, err := New(`CA <"&'>`, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, displayName, identifier string
		wantName                      string // after decoding
	}{
		{"markup", `Alice's <Pixel> & "Co"`, "com.gatehouse.device.1", `Alice's <Pixel> & "Co"`},
		{"closing tags", `</string></dict><dict><key>Password</key><string>x`, "com.gatehouse.device.2", `</string></dict><dict><key>Password</key><string>x`},
		{"identifier with markup", "Pixel", `com.gatehouse.<device>&"'`, "Pixel"},
		{"characters XML cannot carry", "Pixel\x00\x1b", "com.gatehouse.device.3", "Pixel\uFFFD\uFFFD"},
		{"non-ASCII", "Élodie’s iPhone 🍎", "com.gatehouse.device.4", "Élodie’s iPhone 🍎"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			profile, err := MobileConfig([]byte("p12"), authority.Cert, tc.displayName, tc.identifier)
			if err != nil {
				t.Fatal(err)
			}
			top := decodeProfile(t, profile)
			if top["PayloadDisplayName"] != tc.wantName || top["PayloadIdentifier"] != tc.identifier {
				t.Errorf("decoded name %q identifier %q, want %q %q", top["PayloadDisplayName"], top["PayloadIdentifier"], tc.wantName, tc.identifier)
			}
			if len(top["PayloadContent"].([]any)) != 2 {
				t.Error("a name added or removed payloads")
			}
		})
	}
}

func TestMobileConfig_RefusesMissingParts(t *testing.T) {
	t.Parallel()
	authority := newTestCA(t)
	tests := []struct {
		name                  string
		p12                   []byte
		caCert                *x509.Certificate
		displayName, identity string
	}{
		{"no PKCS#12", nil, authority.Cert, "Pixel", "com.gatehouse.device.1"},
		{"no CA", []byte("p12"), nil, "Pixel", "com.gatehouse.device.1"},
		{"no display name", []byte("p12"), authority.Cert, "", "com.gatehouse.device.1"},
		{"no identifier", []byte("p12"), authority.Cert, "Pixel", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := MobileConfig(tc.p12, tc.caCert, tc.displayName, tc.identity); err == nil {
				t.Error("MobileConfig made a profile")
			}
		})
	}
}
