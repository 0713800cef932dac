package ca

// Device certificates: the request a device sends (PKCS#10) and the files
// a device receives (PEM chain, PKCS#12, Apple configuration profile).

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// Limits on certificate requests from devices.
const (
	// MaxCSRSize bounds a PEM certificate request. An RSA-8192 request
	// is about 3 KiB; anything much larger is not a request we want.
	MaxCSRSize = 16 << 10
	// MinRSABits is the smallest RSA key a device certificate may have.
	MinRSABits = 2048
	// MaxRSABits is the largest: a bigger key only costs CPU time, for
	// the signature check here and for every handshake after.
	MaxRSABits = 8192
)

// ErrBadCSR reports that a certificate request is not one PEM "CERTIFICATE
// REQUEST" (PKCS#10), does not parse, or is not signed by its own key, so
// it does not prove that the device holds the private key.
var ErrBadCSR = errors.New("bad certificate request")

// ErrWeakKey reports that a key is not one a device certificate may have:
// ECDSA P-256, ECDSA P-384, or RSA of MinRSABits to MaxRSABits bits.
var ErrWeakKey = errors.New("key not accepted")

// refusal says in plain words why a request or key was refused, and
// matches its kind (ErrBadCSR or ErrWeakKey) with errors.Is.
type refusal struct {
	kind error
	msg  string
}

func (e *refusal) Error() string { return e.msg }
func (e *refusal) Unwrap() error { return e.kind }

func badCSR(format string, args ...any) error {
	return &refusal{kind: ErrBadCSR, msg: fmt.Sprintf(format, args...)}
}

// useInstead is the advice that ends every ErrWeakKey message.
const useInstead = "use P-256, P-384 or RSA of 2048 bits or more"

// keyProblem says what is wrong with pub in a few words ("RSA 1024 bits"),
// or returns "" when a device certificate may carry it.
func keyProblem(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return "missing"
		}
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return ""
		}
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return "missing"
		}
		bits := k.N.BitLen()
		if bits < MinRSABits {
			return fmt.Sprintf("RSA %d bits", bits)
		}
		if bits > MaxRSABits {
			return fmt.Sprintf("RSA %d bits, more than the %d accepted", bits, MaxRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			// With e = 1 anyone could sign for the key.
			return fmt.Sprintf("RSA with the unusable public exponent %d", k.E)
		}
		return ""
	case ed25519.PublicKey:
		return "Ed25519"
	case nil:
		return "missing"
	default:
		return fmt.Sprintf("of a type not accepted (%T)", pub)
	}
}

// ParseCSR parses one PEM PKCS#10 certificate request, checks its key
// type and verifies its signature, and returns only its public key.
//
// The signature is the proof that the device holds the private key.
// Nothing else in the request (subject, names, extensions, attributes) is
// used: what a certificate says is decided by the CA, never by the person
// asking. The input comes from outside, so it must be exactly one PEM
// block, with nothing but white space around it, of at most MaxCSRSize
// bytes. Errors wrap ErrBadCSR or ErrWeakKey and say what is wrong.
func ParseCSR(pemData []byte) (crypto.PublicKey, error) {
	if len(pemData) > MaxCSRSize {
		return nil, badCSR("the certificate request is %d bytes; at most %d are accepted", len(pemData), MaxCSRSize)
	}
	pemData = bytes.TrimSpace(pemData)
	if !bytes.HasPrefix(pemData, []byte("-----BEGIN ")) {
		return nil, badCSR("the certificate request is not PEM text starting with -----BEGIN CERTIFICATE REQUEST-----")
	}
	if bytes.Count(pemData, []byte("-----BEGIN ")) != 1 {
		return nil, badCSR("there is more than one PEM block; send exactly one certificate request")
	}
	block, rest := pem.Decode(pemData)
	if block == nil {
		return nil, badCSR("the certificate request is not valid PEM text")
	}
	if block.Type != "CERTIFICATE REQUEST" {
		return nil, badCSR("the PEM block is a %q, not a \"CERTIFICATE REQUEST\"", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, badCSR("there is more after the certificate request; send exactly one")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, badCSR("the certificate request does not parse as PKCS#10: %v", err)
	}
	// The key is checked before the signature so that an oversized RSA
	// key costs nothing, and so that a refused key says why.
	if p := keyProblem(csr.PublicKey); p != "" {
		return nil, &refusal{kind: ErrWeakKey, msg: "the certificate request's key is " + p + "; " + useInstead}
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, badCSR("the certificate request's signature does not verify, so it does not prove the device holds the key: %v", err)
	}
	return csr.PublicKey, nil
}

// IssueClientForKey signs a client-authentication certificate for req with
// the public key pub, made the same way as by IssueClient (subject, email
// address, validity, key usages, serial number). The private key stays on
// the device that made it. A key that ParseCSR would refuse is refused
// here too, with an error that wraps ErrWeakKey.
func (ca *CA) IssueClientForKey(req ClientRequest, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	if p := keyProblem(pub); p != "" {
		return nil, &refusal{kind: ErrWeakKey, msg: "the key is " + p + "; " + useInstead}
	}
	tmpl, err := clientTemplate(req, now)
	if err != nil {
		return nil, err
	}
	return ca.sign(tmpl, pub, now)
}

// PKCS12Legacy is PKCS12 with older algorithms that nearly every system
// reads: 3DES encryption and a SHA-1 MAC (go-pkcs12's LegacyDES, the same
// as OpenSSL's -descert). It is for systems that cannot read an
// AES-encrypted file: macOS 14 and older, Android 11 and older, older
// Windows. 3DES with a SHA-1 key derivation resists password guessing
// poorly, so the password should be long and random.
func PKCS12Legacy(issued *Issued, caCert *x509.Certificate, password string) ([]byte, error) {
	b, err := pkcs12.LegacyDES.Encode(issued.Key, issued.Cert, []*x509.Certificate{caCert}, password)
	if err != nil {
		return nil, fmt.Errorf("encode legacy PKCS#12: %w", err)
	}
	return b, nil
}

// ChainPEM returns the leaf certificate's PEM followed by the CA's PEM,
// as a device that made its own key installs them.
func ChainPEM(leaf, caCert *x509.Certificate) []byte {
	return append(CertPEM(leaf), CertPEM(caCert)...)
}

// MobileConfig returns an Apple configuration profile (.mobileconfig, an
// XML property list) that installs a PKCS#12 identity and the CA
// certificate on an iPhone, iPad or Mac.
//
// p12 is a file from PKCS12 or PKCS12Legacy; systems that cannot read AES
// (macOS 14 and older) need the legacy one. The import password is not put
// in the profile, where anyone holding the file could read it: the device
// asks for it while installing. displayName names the profile ("Gatehouse
// certificate for Alice's Pixel"); identifier is a reverse-DNS identifier
// that stays the same for the same device ("com.gatehouse.device.<id>"),
// so that a new profile replaces the old one. Every text is XML-escaped.
// The profile is not signed.
func MobileConfig(p12 []byte, caCert *x509.Certificate, displayName, identifier string) ([]byte, error) {
	switch {
	case len(p12) == 0:
		return nil, errors.New("configuration profile: no PKCS#12 file")
	case caCert == nil:
		return nil, errors.New("configuration profile: no CA certificate")
	case displayName == "":
		return nil, errors.New("configuration profile: empty display name")
	case identifier == "":
		return nil, errors.New("configuration profile: empty identifier")
	}
	var uuids [3]string
	for i := range uuids {
		u, err := newUUID()
		if err != nil {
			return nil, fmt.Errorf("configuration profile: %w", err)
		}
		uuids[i] = u
	}
	caName := caCert.Subject.CommonName
	if caName == "" {
		caName = "Gatehouse certificate authority"
	}

	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
`)
	// The identity. No "Password" key: the device asks for it.
	plistData(&b, 3, "PayloadContent", p12)
	plistString(&b, 3, "PayloadCertificateFileName", "gatehouse.p12")
	plistString(&b, 3, "PayloadDescription", "Your certificate for signing in to Gatehouse from this device.")
	plistString(&b, 3, "PayloadDisplayName", displayName)
	plistString(&b, 3, "PayloadIdentifier", identifier+".pkcs12")
	plistString(&b, 3, "PayloadType", "com.apple.security.pkcs12")
	plistString(&b, 3, "PayloadUUID", uuids[1])
	plistInteger(&b, 3, "PayloadVersion", 1)
	b.WriteString("\t\t</dict>\n\t\t<dict>\n")
	// The CA, so that the identity's chain is complete on the device.
	plistData(&b, 3, "PayloadContent", caCert.Raw)
	plistString(&b, 3, "PayloadCertificateFileName", "gatehouse-ca.cer")
	plistString(&b, 3, "PayloadDescription", "The certificate authority that issued your Gatehouse certificate.")
	plistString(&b, 3, "PayloadDisplayName", caName)
	plistString(&b, 3, "PayloadIdentifier", identifier+".root")
	plistString(&b, 3, "PayloadType", "com.apple.security.root")
	plistString(&b, 3, "PayloadUUID", uuids[2])
	plistInteger(&b, 3, "PayloadVersion", 1)
	b.WriteString("\t\t</dict>\n\t</array>\n")
	plistString(&b, 1, "PayloadDescription", "Installs your Gatehouse certificate and the authority that issued it. You will be asked for the import password shown on the Gatehouse page.")
	plistString(&b, 1, "PayloadDisplayName", displayName)
	plistString(&b, 1, "PayloadIdentifier", identifier)
	plistString(&b, 1, "PayloadOrganization", "Gatehouse")
	plistString(&b, 1, "PayloadType", "Configuration")
	plistString(&b, 1, "PayloadUUID", uuids[0])
	plistInteger(&b, 1, "PayloadVersion", 1)
	b.WriteString("</dict>\n</plist>\n")
	return b.Bytes(), nil
}

// plistKey writes an indented <key>.
func plistKey(b *bytes.Buffer, indent int, key string) {
	b.Write(bytes.Repeat([]byte{'\t'}, indent))
	b.WriteString("<key>")
	xml.EscapeText(b, []byte(key))
	b.WriteString("</key>\n")
}

// plistString writes a key and a <string>, escaped for XML: a device name
// may hold <, & or quotes, and characters XML cannot carry become U+FFFD.
func plistString(b *bytes.Buffer, indent int, key, value string) {
	plistKey(b, indent, key)
	b.Write(bytes.Repeat([]byte{'\t'}, indent))
	b.WriteString("<string>")
	xml.EscapeText(b, []byte(value))
	b.WriteString("</string>\n")
}

// plistInteger writes a key and an <integer>.
func plistInteger(b *bytes.Buffer, indent int, key string, value int) {
	plistKey(b, indent, key)
	fmt.Fprintf(b, "%s<integer>%d</integer>\n", bytes.Repeat([]byte{'\t'}, indent), value)
}

// plistData writes a key and a <data> element: base64 in lines of 64
// characters, so that the file stays readable.
func plistData(b *bytes.Buffer, indent int, key string, data []byte) {
	plistKey(b, indent, key)
	tabs := bytes.Repeat([]byte{'\t'}, indent)
	b.Write(tabs)
	b.WriteString("<data>\n")
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 0 {
		n := min(64, len(enc))
		b.Write(tabs)
		b.WriteString(enc[:n])
		b.WriteByte('\n')
		enc = enc[n:]
	}
	b.Write(tabs)
	b.WriteString("</data>\n")
}

// newUUID returns a random (version 4) UUID in the RFC 4122 text form.
func newUUID() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", fmt.Errorf("random UUID: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]), nil
}
