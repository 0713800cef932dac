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
