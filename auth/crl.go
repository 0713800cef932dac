package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cryptobyte_asn1 "golang.org/x/crypto/cryptobyte/asn1"
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
//
// An issuer is the CA that signed a list: its public key and its name in
// canonical form (see crlIssuer). A list applies to every certificate
// whose issuer's name is the list's name, whichever encoding either uses.
type CRLSet struct {
	// byIssuer holds each issuer's list: the one with the highest CRL
	// number.
	byIssuer map[crlIssuer]*crl
	// byName holds the same lists by the canonical name of their issuer.
	byName map[string][]*crl
	// byRawName holds, for the DER name of every signer and of every
	// list's issuer, the lists of that name (possibly none), so that the
	// check made on every request finds them without canonicalizing.
	byRawName map[string][]*crl
	// named memoizes, for DER names byRawName does not hold (an
	// intermediate a client sends that is not configured), the lists of
	// that name, so that /auth/verify canonicalizes each such name once;
	// at most maxNamedKept of them. namedN counts them.
	named  sync.Map // string (DER name) → []*crl
	namedN atomic.Int32
}

// maxNamedKept bounds CRLSet.named. Names reach it only from chains that
// verified to a configured CA, so they are few; past the bound a name is
// canonicalized on every request, as correct and slower.
const maxNamedKept = 1024

// crlIssuer identifies the issuer of a list by what no re-encoding
// changes: the SHA-256 of the signing CA's public key (re-encoded from
// the parsed key) and the canonical form of the issuer's name. A CA
// whose certificate exists with its name in two encodings (a root
// re-issued by newer software with the same key, say) is one issuer,
// with one list and one sequence of CRL numbers; two CAs that share a
// name but not a key are two issuers, and neither's list replaces the
// other's.
type crlIssuer struct {
	key  [sha256.Size]byte
	name string // canonicalName of the issuer's name
}

// id returns the issuer's IssuerID for CRLInfo: "sha256:<hex>" over a
// label, the key's hash and the canonical name.
func (i crlIssuer) id() string {
	h := sha256.New()
	h.Write([]byte("gatehouse CRL issuer: key and canonical name\x00"))
	h.Write(i.key[:])
	h.Write([]byte(i.name))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

type crl struct {
	file       string // where the list was read from
	issuer     string // the issuer's name, for messages
	rawIssuer  []byte // as the list encodes it
	id         crlIssuer
	number     *big.Int
	content    [sha256.Size]byte // SHA-256 of the signed part, tbsCertList
	nextUpdate time.Time
	serials    map[string]bool // big.Int.String() of each revoked serial
	// nameIDs are IssuerID (the function) of each DER encoding of the
	// issuer's name that a signer with the signing key has: the keys
	// under which earlier versions counted the issuer's CRL numbers.
	nameIDs []string
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
	names := make([]string, len(signers)) // canonicalName of each signer
	keys := make([][sha256.Size]byte, len(signers))
	for i, ca := range signers {
		names[i], keys[i] = canonicalName(ca.RawSubject), keyID(ca)
	}
	set := &CRLSet{byIssuer: map[crlIssuer]*crl{}}
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
			issuer, err := crlSigner(list, signers, names, keys)
			if err != nil {
				return nil, fmt.Errorf("CRL %s (issuer %s) %w", name, list.Issuer, err)
			}
			c := newCRL(name, list, issuer)
			for i, ca := range signers {
				if names[i] == issuer.name && keys[i] == issuer.key {
					c.nameIDs = append(c.nameIDs, IssuerID(ca.RawSubject))
				}
			}
			slices.Sort(c.nameIDs)
			c.nameIDs = slices.Compact(c.nameIDs)
			if kept, ok := set.byIssuer[issuer]; ok {
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
			set.byIssuer[issuer] = c
		}
	}
	set.index(signers, names)
	return set, nil
}

// index fills byName and byRawName from byIssuer. names are the
// canonical names of signers.
func (s *CRLSet) index(signers []*x509.Certificate, names []string) {
	s.byName = map[string][]*crl{}
	for _, key := range slices.SortedFunc(maps.Keys(s.byIssuer), compareIssuers) {
		c := s.byIssuer[key]
		s.byName[key.name] = append(s.byName[key.name], c)
	}
	s.byRawName = map[string][]*crl{}
	for i, ca := range signers {
		s.byRawName[string(ca.RawSubject)] = s.byName[names[i]]
	}
	for _, c := range s.byIssuer {
		s.byRawName[string(c.rawIssuer)] = s.byName[c.id.name]
	}
}

func compareIssuers(a, b crlIssuer) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	return bytes.Compare(a.key[:], b.key[:])
}

func newCRL(file string, list *x509.RevocationList, issuer crlIssuer) *crl {
	c := &crl{
		file:       file,
		issuer:     list.Issuer.String(),
		rawIssuer:  list.RawIssuer,
		id:         issuer,
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

// crlSigner finds the trusted certificate that signed list: one of
// signers whose name is the list's issuer name (compared in canonical
// form: names holds canonicalName of each signer, keys its keyID) and
// whose key verifies the signature. That certificate must also be
// allowed to sign CRLs. It returns the list's issuer: that certificate's
// key and the name.
func crlSigner(list *x509.RevocationList, signers []*x509.Certificate, names []string, keys [][sha256.Size]byte) (crlIssuer, error) {
	name := canonicalName(list.RawIssuer)
	signedBy := false
	for i, ca := range signers {
		if names[i] != name ||
			ca.CheckSignature(list.SignatureAlgorithm, list.RawTBSRevocationList, list.Signature) != nil {
			continue
		}
		if maySignCRLs(ca) {
			return crlIssuer{key: keys[i], name: name}, nil
		}
		signedBy = true
	}
	if signedBy {
		return crlIssuer{}, errors.New("is signed by a CA certificate that is not allowed to sign CRLs (its key usage lacks cRLSign)")
	}
	return crlIssuer{}, errors.New("is not signed by a configured client CA or client intermediate")
}

// keyID returns the SHA-256 of a certificate's public key as DER
// SubjectPublicKeyInfo, encoded again from the parsed key so that two
// certificates of one key agree however each encodes it (the
// certificate's own bytes when Go cannot encode that kind of key).
func keyID(c *x509.Certificate) [sha256.Size]byte {
	der, err := x509.MarshalPKIXPublicKey(c.PublicKey)
	if err != nil {
		der = c.RawSubjectPublicKeyInfo
	}
	return sha256.Sum256(der)
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
	// IssuerID is "sha256:<hex>" over the public key that signed the list
	// and the canonical form of the issuer's name: a short, stable key
	// for a record kept per issuer, the same whichever encoding of the
	// name the list uses.
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
		out = append(out, CRLInfo{File: c.file, Issuer: c.issuer, IssuerID: c.id.id(), Number: new(big.Int).Set(c.number)})
	}
	slices.SortFunc(out, func(a, b CRLInfo) int { return strings.Compare(a.IssuerID, b.IssuerID) })
	return out
}

// CRLNumber is a CRL number that must never go back: Counter names the
// record of the highest number seen, and File, Issuer and Number are
// those of the list that holds it in the set.
type CRLNumber struct {
	Counter string
	File    string
	Issuer  string
	Number  *big.Int
}

// Numbers returns the CRL numbers of the set under the names of the
// records that keep the highest number seen, sorted by Counter:
//   - each list's number, under its IssuerID;
//   - for each DER encoding of an issuer's name that a signer with the
//     list's key has, the highest number among the lists of that
//     encoding, under IssuerID (the function) of the encoding. Earlier
//     versions kept the numbers there: one record per encoding of a
//     name, shared by every key with that encoding, holding the highest
//     number of its lists. Comparing with those records keeps numbers
//     seen before an upgrade counting; raising them keeps an instance of
//     an earlier version that shares the store refusing older lists.
func (s *CRLSet) Numbers() []CRLNumber {
	if s == nil {
		return nil
	}
	byCounter := map[string]CRLNumber{}
	for _, c := range s.byIssuer {
		byCounter[c.id.id()] = CRLNumber{Counter: c.id.id(), File: c.file, Issuer: c.issuer, Number: c.number}
	}
	for _, key := range slices.SortedFunc(maps.Keys(s.byIssuer), compareIssuers) {
		c := s.byIssuer[key]
		for _, id := range c.nameIDs {
			if kept, ok := byCounter[id]; !ok || kept.Number.Cmp(c.number) < 0 {
				byCounter[id] = CRLNumber{Counter: id, File: c.file, Issuer: c.issuer, Number: c.number}
			}
		}
	}
	out := slices.SortedFunc(maps.Values(byCounter), func(a, b CRLNumber) int { return strings.Compare(a.Counter, b.Counter) })
	for i := range out {
		out[i].Number = new(big.Int).Set(out[i].Number)
	}
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
	for _, key := range slices.SortedFunc(maps.Keys(prev.byIssuer), compareIssuers) {
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

// check looks up cert, issued by issuer, at time now, in every list
// whose issuer has issuer's name, and returns the worst verdict. Names
// are compared as RFC 5280 §7.1 compares them, not as encoded: a CA
// whose certificate exists in two encodings of its name is one issuer.
// A list that another configured CA with that name signed, with another
// key, applies too (RFC 5280 §6.3.3 matches a list to a certificate by
// issuer name; a CA that changed its key may list the old key's
// certificates on lists signed with the new one), and since the worst
// verdict wins, a list can add a revocation but never take one away.
//
// A list past its next update no longer vouches for anything:
// certificates of that issuer fail closed until a fresh list is loaded.
func (s *CRLSet) check(cert, issuer *x509.Certificate, now time.Time) crlVerdict {
	if s == nil || issuer == nil || len(s.byIssuer) == 0 {
		return crlNotCovered
	}
	lists, ok := s.byRawName[string(issuer.RawSubject)]
	if !ok {
		lists = s.listsNamed(issuer.RawSubject)
	}
	worst := crlNotCovered
	for _, c := range lists {
		v := crlGood
		switch {
		case c.serials[cert.SerialNumber.String()]:
			v = crlRevoked
		case now.After(c.nextUpdate):
			// A list without a next update is refused when loaded; were
			// one here, its zero time would be long past: stale.
			v = crlStale
		}
		worst = max(worst, v)
	}
	return worst
}

// listsNamed returns the lists whose issuer has the DER name raw, which
// byRawName does not hold, compared as check says.
func (s *CRLSet) listsNamed(raw []byte) []*crl {
	if v, ok := s.named.Load(string(raw)); ok {
		return v.([]*crl)
	}
	lists := s.byName[canonicalName(raw)]
	if s.namedN.Add(1) <= maxNamedKept {
		s.named.Store(string(raw), lists)
	}
	return lists
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

// canonicalName returns a form of a DER-encoded X.501 name in which two
// encodings of one name are equal, for comparing names as RFC 5280 §7.1
// does: an attribute value of a string type (UTF8String,
// PrintableString, IA5String, NumericString, TeletexString read as
// Latin-1, BMPString: the types Go reads in certificates) is taken as
// its characters, case folded, with leading and trailing white space
// removed and each inner run of it made one space (the case folding and
// space handling of RFC 4518's string preparation; its Unicode
// normalization and character mapping are not done, so names that differ
// only in those stay apart). The attributes of an RDN are compared as a
// set, in any order. Values of other types keep their DER encoding. A
// name that does not parse is its DER bytes, compared exactly.
//
// It runs when lists are loaded, and on a request only for a CA
// certificate the set does not know by its DER name, so it is written
// to be cheap rather than with encoding/asn1.
func canonicalName(der []byte) string {
	if name, ok := parseCanonicalName(der); ok {
		return "name:" + string(name)
	}
	return "der:" + string(der)
}

func parseCanonicalName(der []byte) ([]byte, bool) {
	input := cryptobyte.String(der)
	var rdns cryptobyte.String
	if !input.ReadASN1(&rdns, cryptobyte_asn1.SEQUENCE) || !input.Empty() {
		return nil, false
	}
	var b []byte
	for !rdns.Empty() {
		var set cryptobyte.String
		if !rdns.ReadASN1(&set, cryptobyte_asn1.SET) {
			return nil, false
		}
		var attrs [][]byte
		for !set.Empty() {
			var atv, oid, value cryptobyte.String
			var tag cryptobyte_asn1.Tag
			if !set.ReadASN1(&atv, cryptobyte_asn1.SEQUENCE) ||
				!atv.ReadASN1(&oid, cryptobyte_asn1.OBJECT_IDENTIFIER) ||
				!atv.ReadAnyASN1(&value, &tag) || !atv.Empty() {
				return nil, false
			}
			attr := appendField(nil, oid)
			if text, ok := directoryString(tag, value); ok {
				attr = append(attr, 's')
				attr = appendField(attr, foldName(text))
			} else {
				attr = append(attr, 'v', byte(tag))
				attr = appendField(attr, value)
			}
			attrs = append(attrs, attr)
		}
		slices.SortFunc(attrs, bytes.Compare)
		b = binary.AppendUvarint(b, uint64(len(attrs)))
		for _, a := range attrs {
			b = append(b, a...)
		}
	}
	return b, true
}

// appendField appends field to b, preceded by its length, so that fields
// cannot run into each other.
func appendField(b, field []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(field)))
	return append(b, field...)
}

// Universal string types that encoding/asn1 names but cryptobyte does
// not.
const (
	tagNumericString = cryptobyte_asn1.Tag(asn1.TagNumericString)
	tagBMPString     = cryptobyte_asn1.Tag(asn1.TagBMPString)
)

// directoryString returns the characters of an attribute value of a
// string type, and false for any other value.
func directoryString(tag cryptobyte_asn1.Tag, value []byte) ([]rune, bool) {
	switch tag {
	case cryptobyte_asn1.UTF8String, cryptobyte_asn1.PrintableString, cryptobyte_asn1.IA5String, tagNumericString:
		if !utf8.Valid(value) {
			return nil, false
		}
		return []rune(string(value)), true
	case cryptobyte_asn1.T61String:
		r := make([]rune, len(value))
		for i, c := range value {
			r[i] = rune(c) // Latin-1, as Go and most of the world read it
		}
		return r, true
	case tagBMPString:
		if len(value)%2 != 0 {
			return nil, false
		}
		r := make([]rune, 0, len(value)/2)
		for i := 0; i < len(value); i += 2 {
			u := rune(binary.BigEndian.Uint16(value[i:]))
			if utf16.IsSurrogate(u) {
				return nil, false // UCS-2 has none
			}
			r = append(r, u)
		}
		if n := len(r); n > 0 && r[n-1] == 0 {
			r = r[:n-1] // a terminator, as Go strips it
		}
		return r, true
	}
	return nil, false
}

// foldName returns text case folded (each character the least of those
// it equals ignoring case, as strings.EqualFold compares), without
// leading and trailing white space and with each inner run of it made
// one space, as UTF-8.
func foldName(text []rune) []byte {
	var b []byte
	space := false
	for _, r := range text {
		if unicode.IsSpace(r) {
			space = len(b) > 0
			continue
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		b = utf8.AppendRune(b, foldRune(r))
	}
	return b
}

// foldRune returns the least rune of r's case folding orbit.
func foldRune(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}
