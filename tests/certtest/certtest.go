// Package certtest holds certificate tricks the tests play as an attacker
// would. It is imported by tests only.
package certtest

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// ReencodeSignature returns another valid DER encoding of c, an ECDSA
// signed certificate from issuer: the signature (r, s) becomes (r, n-s),
// which verifies just the same. The signed body (TBSCertificate), and so
// the serial number and issuer, stay byte for byte; the fingerprint (the
// SHA-256 of the DER) changes. Anyone holding the certificate can do it.
func ReencodeSignature(c, issuer *x509.Certificate) ([]byte, error) {
	pub, ok := issuer.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("issuer's key is not ECDSA")
	}
	var outer struct {
		TBS       asn1.RawValue
		Algorithm asn1.RawValue
		Signature asn1.BitString
	}
	if rest, err := asn1.Unmarshal(c.Raw, &outer); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("parse certificate: %v (%d trailing bytes)", err, len(rest))
	}
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(outer.Signature.Bytes, &sig); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("parse ECDSA signature: %v (%d trailing bytes)", err, len(rest))
	}
	sig.S = new(big.Int).Sub(pub.Curve.Params().N, sig.S)
	sigDER, err := asn1.Marshal(sig)
	if err != nil {
		return nil, err
	}
	outer.Signature = asn1.BitString{Bytes: sigDER, BitLength: 8 * len(sigDER)}
	der, err := asn1.Marshal(outer)
	if err != nil {
		return nil, err
	}
	again, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse re-encoded certificate: %w", err)
	}
	if err := again.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("re-encoded certificate does not verify: %w", err)
	}
	return der, nil
}

// PadSignatureBits returns another encoding of c that Go's parser takes
// and whose signature still verifies: the signature's BIT STRING declares
// bits (1 or 2) unused bits at its end, and holds the signature shifted
// left by as many, which the parser shifts back. It is not DER (DER
// writes a whole number of bytes as such); the fingerprint changes.
func PadSignatureBits(c *x509.Certificate, bits int) ([]byte, error) {
	if bits < 1 || bits > 7 || len(c.Signature) == 0 || c.Signature[0]>>(8-bits) != 0 {
		return nil, fmt.Errorf("the signature cannot be shifted by %d bits", bits)
	}
	shifted := make([]byte, len(c.Signature))
	for i, b := range c.Signature {
		shifted[i] = b << bits
		if i+1 < len(c.Signature) {
			shifted[i] |= c.Signature[i+1] >> (8 - bits)
		}
	}
	return rebuild(c, asn1.BitString{Bytes: shifted, BitLength: 8*len(shifted) - bits}, nil)
}

// AppendInsideCertificate returns c with extra after its signature,
// inside the certificate's outer SEQUENCE, which Go's parser never
// reads: another encoding with another fingerprint, as many as there
// are byte strings.
func AppendInsideCertificate(c *x509.Certificate, extra []byte) ([]byte, error) {
	return rebuild(c, asn1.BitString{Bytes: c.Signature, BitLength: 8 * len(c.Signature)}, extra)
}

// rebuild re-encodes c with sig as its signature BIT STRING and extra
// after it, and checks that Go still parses the result.
func rebuild(c *x509.Certificate, sig asn1.BitString, extra []byte) ([]byte, error) {
	var outer struct {
		TBS       asn1.RawValue
		Algorithm asn1.RawValue
		Signature asn1.BitString
	}
	rest, err := asn1.Unmarshal(c.Raw, &outer)
	if err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("parse certificate: %v (%d trailing bytes)", err, len(rest))
	}
	sigDER, err := asn1.Marshal(sig)
	if err != nil {
		return nil, err
	}
	body := slices.Concat(outer.TBS.FullBytes, outer.Algorithm.FullBytes, sigDER, extra)
	der, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
	if err != nil {
		return nil, err
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("parse re-encoded certificate: %w", err)
	}
	return der, nil
}
