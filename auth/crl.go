package auth

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"time"
)

// maxCRLNumberOctets is the largest CRL number RFC 5280 §5.2.3 allows
// a CA to use: 20 octets.
const maxCRLNumberOctets = 20

// Extensions RFC 5280 defines for CRLs (§5.2) and their entries (§5.3).
var (
	oidCRLNumber = asn1.ObjectIdentifier{2, 5, 29, 20}
	// criticalExtensionNames names the critical extensions a list may
	// carry that Gatehouse does not process, for the error that refuses
	// the list.
	criticalExtensionNames = map[string]string{
		"2.5.29.27": "a delta CRL indicator: the list holds only the changes to another list",
		"2.5.29.28": "an issuing distribution point: the list covers only part of the issuer's certificates",
		"2.5.29.29": "a certificate issuer entry: an indirect CRL, listing another CA's certificates",
	}
)

// CRLSet holds certificate revocation lists whose signatures were checked
// against a trusted CA (a client CA, or an intermediate verified to chain
// to one), at most one list per issuer. It is immutable: build a new one
// to reload.
type CRLSet struct {
	// byIssuer maps an issuer's raw subject to its list.
	byIssuer map[string]*crl
}

type crl struct {
	file       string // where the list was read from
	issuer     string // the issuer's name, for messages
	rawIssuer  []byte
	number     *big.Int
	content    [sha256.Size]byte // SHA-256 of the signed part, tbsCertList
	nextUpdate time.Time
	serials    map[string]bool // big.Int.String() of each revoked serial
}

// ParseCRLs parses revocation lists (PEM "X509 CRL" blocks or DER) from
// files (name to contents) and keeps each only if it follows RFC 5280 and
// is signed by one of signers, the client CAs and the intermediates
// verified to chain to them: a list nobody trusted signed could otherwise
// revoke, or un-revoke, anything.
//
// A list is refused, and with it the whole set, when it has no next
// update (RFC 5280 §5.1.2.5) or no CRL number or a critical one (§5.2.3),
// when it carries a critical extension the portal does not process, such
// as a delta or partial list (§5.2: such a list must not be used), or
// when the certificate that signed it may not sign CRLs (a CA certificate
// whose key usage, when present, includes cRLSign). When two lists come
// from the same issuer, the one with the higher CRL number wins; two
// different lists with the same number are refused, since neither can be
// told to be the newer.
func ParseCRLs(files map[string][]byte, signers []*x509.Certificate) (*CRLSet, error) {
	set := &CRLSet{byIssuer: map[string]*crl{}}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		ders, err := crlDERs(files[name])
		if err != nil {
			return nil, fmt.Errorf("CRL %s: %w", name, err)
		}
		for _, der := range ders {
			list, err := x509.ParseRevocationList(der)
			if err != nil {
				return nil, fmt.Errorf("CRL %s: %w", name, err)
			}
			if err := checkCRLForm(list); err != nil {
				return nil, fmt.Errorf("CRL %s (issuer %s) is refused: %w", name, list.Issuer, err)
			}
			if err := checkCRLSigner(list, signers); err != nil {
				return nil, fmt.Errorf("CRL %s (issuer %s) %w", name, list.Issuer, err)
			}
			c := newCRL(name, list)
			if kept, ok := set.byIssuer[string(c.rawIssuer)]; ok {
				switch kept.number.Cmp(c.number) {
				case 1:
					continue
				case 0:
					if kept.content != c.content {
						return nil, fmt.Errorf("CRL %s and %s (issuer %s) both have CRL number %s but differ: a CA gives every new list a higher number, so neither can be told to be the newer", kept.file, name, c.issuer, c.number)
					}
					continue
				}
			}
			set.byIssuer[string(c.rawIssuer)] = c
		}
	}
	return set, nil
}

func newCRL(file string, list *x509.RevocationList) *crl {
	c := &crl{
		file:       file,
		issuer:     list.Issuer.String(),
		rawIssuer:  list.RawIssuer,
		number:     list.Number,
		content:    sha256.Sum256(list.RawTBSRevocationList),
		nextUpdate: list.NextUpdate,
		serials:    map[string]bool{},
	}
	for _, entry := range list.RevokedCertificateEntries {
		c.serials[entry.SerialNumber.String()] = true
	}
	return c
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

// checkCRLForm applies RFC 5280's rules for a list that the parser
// leaves to its caller: a next update, which conforming issuers must
// include (§5.1.2.5) and without which a list could never be found out of
// date, so that a list issued years ago would vouch for its CA's
// certificates for ever; exactly one CRL number, not critical, a
// non-negative integer of at most 20 octets (§5.2.3); and no critical
// extension, on the list or on an entry, that the portal does not
// process (§5.2, §5.3), because such a list means something other than
// "these are all of the issuer's revoked certificates".
func checkCRLForm(list *x509.RevocationList) error {
	if list.NextUpdate.IsZero() {
		return errors.New("it has no next update, which RFC 5280 requires (without one the list could never be found out of date, and would vouch for its CA's certificates for ever)")
	}
	numbers := 0
	for _, ext := range list.Extensions {
		switch {
		case ext.Id.Equal(oidCRLNumber):
			numbers++
			if ext.Critical {
				return errors.New("its CRL number extension is marked critical, which RFC 5280 forbids")
			}
		case ext.Critical:
			return fmt.Errorf("it has a critical extension this portal does not process: %s", extensionName(ext.Id))
		}
	}
	switch {
	case numbers == 0:
		return errors.New("it has no CRL number, which RFC 5280 requires (the number is how a newer list is told from an older one)")
	case numbers > 1:
		return errors.New("it has more than one CRL number")
	case list.Number.Sign() < 0 || len(list.Number.Bytes()) > maxCRLNumberOctets:
		return fmt.Errorf("its CRL number %s is not a non-negative integer of at most %d octets", list.Number, maxCRLNumberOctets)
	}
	for _, entry := range list.RevokedCertificateEntries {
		for _, ext := range entry.Extensions {
			if ext.Critical {
				return fmt.Errorf("the entry for serial %s has a critical extension this portal does not process: %s", entry.SerialNumber, extensionName(ext.Id))
			}
		}
	}
	return nil
}

func extensionName(id asn1.ObjectIdentifier) string {
	if name, ok := criticalExtensionNames[id.String()]; ok {
		return id.String() + ", " + name
	}
	return id.String()
}

// checkCRLSigner finds the trusted certificate that signed list: one of
// signers with the list's issuer name whose key verifies the signature.
// That certificate must also be allowed to sign CRLs.
func checkCRLSigner(list *x509.RevocationList, signers []*x509.Certificate) error {
	signedBy := false
	for _, ca := range signers {
		if string(ca.RawSubject) != string(list.RawIssuer) ||
			ca.CheckSignature(list.SignatureAlgorithm, list.RawTBSRevocationList, list.Signature) != nil {
			continue
		}
		if maySignCRLs(ca) {
			return nil
		}
		signedBy = true
	}
	if signedBy {
		return errors.New("is signed by a CA certificate that is not allowed to sign CRLs (its key usage lacks cRLSign)")
	}
	return errors.New("is not signed by a configured client CA or client intermediate")
}

// maySignCRLs reports whether c may sign CRLs: a CA certificate whose
// key usage, when it has one, includes cRLSign (RFC 5280 §4.2.1.3).
func maySignCRLs(c *x509.Certificate) bool {
	return c.BasicConstraintsValid && c.IsCA && (c.KeyUsage == 0 || c.KeyUsage&x509.KeyUsageCRLSign != 0)
}

// Len returns how many issuers the set has a list for.
func (s *CRLSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.byIssuer)
}

// CRLInfo describes one list of a CRLSet.
type CRLInfo struct {
	// File is the name the list was read from.
	File string
	// Issuer is the issuer's name, for messages.
	Issuer string
	// IssuerID is "sha256:<hex>" of the issuer's DER-encoded name: a
	// short, stable key for a record kept per issuer.
	IssuerID string
	// Number is the list's CRL number.
	Number *big.Int
}

// Lists describes the lists in the set, one per issuer, sorted by
// IssuerID.
func (s *CRLSet) Lists() []CRLInfo {
	if s == nil {
		return nil
	}
	out := make([]CRLInfo, 0, len(s.byIssuer))
	for _, c := range s.byIssuer {
		sum := sha256.Sum256(c.rawIssuer)
		out = append(out, CRLInfo{File: c.file, Issuer: c.issuer,
			IssuerID: "sha256:" + hex.EncodeToString(sum[:]), Number: new(big.Int).Set(c.number)})
	}
	slices.SortFunc(out, func(a, b CRLInfo) int { return strings.Compare(a.IssuerID, b.IssuerID) })
	return out
}

// OlderCRLError reports a list whose CRL number is lower than one
// already seen from the same issuer: an older list, which could un-revoke
// certificates, so it is refused.
type OlderCRLError struct {
	File   string
	Issuer string
	// Number is the refused list's CRL number; Seen the highest number
	// already seen from the issuer.
	Number, Seen *big.Int
}

func (e *OlderCRLError) Error() string {
	return fmt.Sprintf("CRL %s (issuer %s) has CRL number %s, lower than number %s already seen from that issuer: an older list is refused, because it could bring revoked certificates back; install the issuer's current list",
		e.File, e.Issuer, e.Number, e.Seen)
}

// Follows reports why s may not replace prev, the set in force, or nil
// when it may. For every issuer prev has a list from, s must have one
// too (a reload never quietly stops checking an issuer), with a CRL
// number no lower (*OlderCRLError), and with an equal number only the
// very same list, by its signed content.
func (s *CRLSet) Follows(prev *CRLSet) error {
	if prev == nil {
		return nil
	}
	for _, key := range slices.Sorted(maps.Keys(prev.byIssuer)) {
		old := prev.byIssuer[key]
		c, ok := s.byIssuer[key]
		if !ok {
			return fmt.Errorf("the CRL files no longer hold a list from issuer %s (it was in %s): a reload never stops checking an issuer; restart the portal to drop one", old.issuer, old.file)
		}
		switch c.number.Cmp(old.number) {
		case -1:
			return &OlderCRLError{File: c.file, Issuer: c.issuer, Number: c.number, Seen: old.number}
		case 0:
			if c.content != old.content {
				return fmt.Errorf("CRL %s (issuer %s) has CRL number %s, the number of the list in force, but different content: a CA gives every new list a higher number, so it cannot be told to be the newer", c.file, c.issuer, c.number)
			}
		}
	}
	return nil
}

// crlVerdict is what a CRL set says about one certificate. The values
// are ordered from best to worst, so the worst of several is the
// greatest.
type crlVerdict int

const (
	crlNotCovered crlVerdict = iota // no list for this issuer
	crlGood                         // listed issuer, serial not revoked
	crlStale                        // the issuer's list is past its NextUpdate
	crlRevoked                      // serial revoked
)

// check looks up cert, issued by issuer, at time now. A list past its
// next update no longer vouches for anything: certificates of that issuer
// fail closed until a fresh list is loaded.
func (s *CRLSet) check(cert, issuer *x509.Certificate, now time.Time) crlVerdict {
	if s == nil || issuer == nil {
		return crlNotCovered
	}
	c, ok := s.byIssuer[string(issuer.RawSubject)]
	if !ok {
		return crlNotCovered
	}
	if c.serials[cert.SerialNumber.String()] {
		return crlRevoked
	}
	// A list without a next update is refused when loaded; were one
	// here, its zero time would be long past: stale, never fresh.
	if now.After(c.nextUpdate) {
		return crlStale
	}
	return crlGood
}

// checkChain checks every certificate of a verified chain (leaf first,
// client CA last) against the list of the CA that issued it, and returns
// the worst verdict with the position in the chain of the certificate it
// concerns (0 for the leaf). A revoked intermediate makes everything
// below it worthless. The client CA at the end is trusted as configured.
func (s *CRLSet) checkChain(chain []*x509.Certificate, now time.Time) (crlVerdict, int) {
	worst, at := crlNotCovered, 0
	for i := 0; i+1 < len(chain); i++ {
		if v := s.check(chain[i], chain[i+1], now); v > worst {
			worst, at = v, i
		}
	}
	return worst, at
}
