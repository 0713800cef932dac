// Package ca is Gatehouse's built-in certificate authority: it creates the
// development CA, the server certificate for localhost, and client
// certificates for accounts, and packages them as PEM and PKCS#12 so that
// a person can import one into a browser.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// Validity periods of what the built-in CA issues.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 397 * 24 * time.Hour // within what browsers accept
	ClientValidity = 365 * 24 * time.Hour
	// backdate absorbs small clock differences between machines.
	backdate = 5 * time.Minute
)

// CA is a certificate authority: its certificate and private key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// New creates a self-signed ECDSA P-256 CA valid from now for CAValidity.
// It may sign only end-entity certificates (path length zero).
func New(commonName string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Gatehouse"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Load reads a CA from PEM: a certificate and a PKCS#8 private key.
func Load(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, errors.New("load CA: certificate is not a CA")
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Issued is a certificate the CA signed and its new private key.
type Issued struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// IssueServer signs a TLS server certificate for hosts (DNS names or IP
// addresses).
func (ca *CA) IssueServer(hosts []string, now time.Time) (*Issued, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		NotAfter:    now.Add(ServerValidity),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(tmpl, now)
}

// ClientRequest describes a client certificate for an account.
type ClientRequest struct {
	// Name is the account name; it becomes the subject common name.
	Name string
	// Email, when set, becomes a SAN email address.
	Email string
	// Validity defaults to ClientValidity.
	Validity time.Duration
}

// IssueClient signs a client-authentication certificate for an account.
func (ca *CA) IssueClient(req ClientRequest, now time.Time) (*Issued, error) {
	tmpl, err := clientTemplate(req, now)
	if err != nil {
		return nil, err
	}
	return ca.issue(tmpl, now)
}

// clientTemplate is the certificate every client certificate is made from,
// whoever made its key: the names come from the account, never from the
// person asking.
func clientTemplate(req ClientRequest, now time.Time) (*x509.Certificate, error) {
	if req.Name == "" {
		return nil, errors.New("issue client certificate: empty account name")
	}
	validity := req.Validity
	if validity <= 0 {
		validity = ClientValidity
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: req.Name, Organization: []string{"Gatehouse"}},
		NotAfter:    now.Add(validity),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if req.Email != "" {
		tmpl.EmailAddresses = []string{req.Email}
	}
	return tmpl, nil
}

// issue generates a new ECDSA P-256 key and signs tmpl for it.
func (ca *CA) issue(tmpl *x509.Certificate, now time.Time) (*Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	cert, err := ca.sign(tmpl, &key.PublicKey, now)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, Key: key}, nil
}

// sign signs tmpl for the public key pub, setting what every certificate
// from this CA has in common: a random serial, validity from a little
// before now and never past the CA's own, and an end-entity key usage.
func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	tmpl.SerialNumber = newSerial()
	tmpl.NotBefore = now.Add(-backdate)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

// newSerial returns a random positive 128-bit serial number, so serials
// are unique without keeping a counter.
func newSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x01 // never zero, always 16 bytes
	return new(big.Int).SetBytes(b)
}

// CertPEM encodes a certificate as PEM.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// KeyPEM encodes a private key as PKCS#8 PEM.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCertPEM parses the first certificate in PEM data.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCertsPEM parses every certificate in PEM data; it fails when there
// is none.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// ParseKeyPEM parses a PKCS#8, EC or PKCS#1 private key in PEM.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key found")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

// PKCS12 packages a certificate, its key and the CA certificate for
// import into a browser or key store, encrypted with password (AES-256,
// PBKDF2), as modern browsers and operating systems read it.
func PKCS12(issued *Issued, caCert *x509.Certificate, password string) ([]byte, error) {
	// Modern2023, pinned: go-pkcs12 moves Modern to newer profiles (PBMAC1)
	// that the systems people import into cannot all read yet.
	b, err := pkcs12.Modern2023.Encode(issued.Key, issued.Cert, []*x509.Certificate{caCert}, password)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#12: %w", err)
	}
	return b, nil
}
