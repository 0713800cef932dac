package auth

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// CRLSet holds certificate revocation lists whose signatures were checked
// against a client CA. It is immutable: build a new one to reload.
type CRLSet struct {
	// byIssuer maps an issuer's raw subject to its list.
	byIssuer map[string]*crl
}

type crl struct {
	issuer     string
	nextUpdate time.Time
	serials    map[string]bool // big.Int.String() of each revoked serial
}

// ParseCRLs parses revocation lists (PEM "X509 CRL" blocks or DER) and
// keeps each only if it is signed by one of issuers, the client CAs: a
// list nobody trusted signed could otherwise revoke, or un-revoke,
// anything. When two lists come from the same issuer, the one with the
// higher CRL number wins.
func ParseCRLs(files map[string][]byte, issuers []*x509.Certificate) (*CRLSet, error) {
	set := &CRLSet{byIssuer: map[string]*crl{}}
	numbers := map[string]*big.Int{}
	for name, data := range files {
		ders, err := crlDERs(data)
		if err != nil {
			return nil, fmt.Errorf("CRL %s: %w", name, err)
		}
		for _, der := range ders {
			list, err := x509.ParseRevocationList(der)
			if err != nil {
				return nil, fmt.Errorf("CRL %s: %w", name, err)
			}
			issuer := findIssuer(list, issuers)
			if issuer == nil {
				return nil, fmt.Errorf("CRL %s (issuer %s) is not signed by a configured client CA", name, list.Issuer)
			}
			key := string(list.RawIssuer)
			if n, ok := numbers[key]; ok && list.Number != nil && n != nil && n.Cmp(list.Number) >= 0 {
				continue
			}
			numbers[key] = list.Number
			c := &crl{issuer: list.Issuer.String(), nextUpdate: list.NextUpdate, serials: map[string]bool{}}
			for _, entry := range list.RevokedCertificateEntries {
				c.serials[entry.SerialNumber.String()] = true
			}
			set.byIssuer[key] = c
		}
	}
	return set, nil
}

func crlDERs(data []byte) ([][]byte, error) {
	var ders [][]byte
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "X509 CRL" {
			ders = append(ders, block.Bytes)
		}
	}
	if len(ders) > 0 {
		return ders, nil
	}
	if len(data) > 0 && data[0] == 0x30 { // DER SEQUENCE
		return [][]byte{data}, nil
	}
	return nil, errors.New("no CRL found (want PEM \"X509 CRL\" or DER)")
}

func findIssuer(list *x509.RevocationList, issuers []*x509.Certificate) *x509.Certificate {
	for _, ca := range issuers {
		if string(ca.RawSubject) == string(list.RawIssuer) && list.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}

// Len returns how many issuers the set has a list for.
func (s *CRLSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.byIssuer)
}

// crlVerdict is what a CRL set says about one certificate.
type crlVerdict int

const (
	crlNotCovered crlVerdict = iota // no list for this issuer
	crlGood                         // listed issuer, serial not revoked
	crlRevoked                      // serial revoked
	crlStale                        // the issuer's list is past its NextUpdate
)

// check looks up leaf, issued by issuer, at time now. A list past its
// next update no longer vouches for anything: certificates of that issuer
// fail closed until a fresh list is loaded.
func (s *CRLSet) check(leaf, issuer *x509.Certificate, now time.Time) crlVerdict {
	if s == nil || issuer == nil {
		return crlNotCovered
	}
	c, ok := s.byIssuer[string(issuer.RawSubject)]
	if !ok {
		return crlNotCovered
	}
	if c.serials[leaf.SerialNumber.String()] {
		return crlRevoked
	}
	if !c.nextUpdate.IsZero() && now.After(c.nextUpdate) {
		return crlStale
	}
	return crlGood
}
