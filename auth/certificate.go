package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cryptobyte_asn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CertStatus says whether a presented client certificate counts as a
// factor, and if not, why not.
type CertStatus int

// The outcomes of certificate verification. Only CertValid adds a factor;
// every other status is treated as if no certificate had been presented.
const (
	CertAbsent          CertStatus = iota // no certificate on the connection
	CertValid                             // verified and bound to the account
	CertUnknownIssuer                     // does not chain to a configured client CA
	CertNotYetValid                       // chain verifies, but NotBefore is in the future
	CertExpired                           // chain verifies, but NotAfter has passed
	CertNoClientAuth                      // lacks the clientAuth extended key usage
	CertRevoked                           // revoked by its issuer
	CertInvalid                           // fails verification for another reason
	CertOtherUser                         // verified, but bound to another account
	CertUnbound                           // verified, but bound to no account
	CertSessionMismatch                   // not the certificate this session signed in with
	CertAmbiguous                         // verified, but bound to more than one account
)

var certStatusNames = [...]string{
	CertAbsent:          "absent",
	CertValid:           "valid",
	CertUnknownIssuer:   "unknown_issuer",
	CertNotYetValid:     "not_yet_valid",
	CertExpired:         "expired",
	CertNoClientAuth:    "no_client_auth",
	CertRevoked:         "revoked",
	CertInvalid:         "invalid",
	CertOtherUser:       "other_user",
	CertUnbound:         "unbound",
	CertSessionMismatch: "session_mismatch",
	CertAmbiguous:       "ambiguous",
}

// String returns a stable machine name for the status, used in the audit
// trail and logs.
func (s CertStatus) String() string {
	if int(s) < len(certStatusNames) {
		return certStatusNames[s]
	}
	return fmt.Sprintf("CertStatus(%d)", int(s))
}

// CertInfo describes a certificate whose chain verified. Nothing in it is
// read from a certificate before its chain to a client CA is verified.
type CertInfo struct {
	// ID is "sha256:<hex>" of the certificate's signed body
	// (TBSCertificate). Unlike Fingerprint it cannot be changed by
	// re-encoding the signature (an ECDSA signature (r, s) is as valid as
	// (r, n-s)), so it is what a session binds to.
	ID string
	// Issuer is IssuerID of the name of the CA that issued the
	// certificate; with Serial it is the certificate's identity for
	// revocation (RFC 5280 §4.1.2.2).
	Issuer string
	// Fingerprint is "sha256:<hex>" of the DER certificate, shown to
	// people. It is never the key of a security decision on its own: the
	// same certificate has more than one DER encoding.
	Fingerprint string
	// TwinFingerprint is, for a certificate with an ECDSA signature, the
	// Fingerprint of its one other encoding that verifies: the same
	// signed body with the signature (r, s) written as (r, n-s). Anyone
	// holding the certificate can make it, so a fingerprint pin matches
	// either (CertBoundTo). Empty for other signatures, which have one
	// encoding only (see the function TwinFingerprint).
	TwinFingerprint string
	// KeyPin is "sha256:<hex>" of the certificate's SubjectPublicKeyInfo:
	// it stays the same when a certificate is renewed with the same key.
	KeyPin     string
	Subject    string
	CommonName string
	Emails     []string
	NotBefore  time.Time
	NotAfter   time.Time
	// Serial is the serial number in lower-case hex.
	Serial string
}

// CertResult is the outcome of verifying the certificate a connection
// presented.
type CertResult struct {
	Status CertStatus
	// Info is set when the chain verified, even when a later check (time,
	// usage, binding) failed; it is nil otherwise.
	Info *CertInfo
	// Notice explains, in plain words for the user, why the certificate
	// did not count. Empty for CertValid and CertAbsent.
	Notice string
}

// Valid reports whether the certificate counts as a factor.
func (r CertResult) Valid() bool { return r.Status == CertValid }

// CertVerifier checks client certificates against a dedicated pool of
// client CAs (never the system roots).
type CertVerifier struct {
	// Roots are the client CAs. A nil or empty pool verifies nothing.
	Roots *x509.CertPool
	// Intermediates are issuing CAs known to chain to one of Roots
	// (checked when the portal starts). They complete chains that clients
	// present without them, and add no trust of their own: every chain
	// must still end at one of Roots.
	Intermediates []*x509.Certificate
	// CRLs, when set, returns the current revocation lists; it is called
	// on every verification so that a reloader can swap the set. Every
	// certificate of a verified chain is checked against its issuer's
	// list, the leaf and each intermediate.
	CRLs func() *CRLSet
	// Revoked, when set, reports whether the certificate with that
	// issuer (IssuerID) and serial number (lower-case hex) was revoked
	// through Gatehouse itself. An error fails closed: the certificate
	// does not count.
	Revoked func(ctx context.Context, issuer, serial string) (bool, error)

	// chains remembers chains that verified, so that a certificate sent
	// with every request is not checked against its CA's signature every
	// time. Time, usage, CRLs and revocation are still checked on every
	// request.
	chains chainCache
}

// chainCacheFor is how long a verified chain is remembered: a CA
// certificate that expires or is replaced is noticed within this time.
const chainCacheFor = time.Minute

// maxCachedChains bounds the cache; it is emptied when full.
const maxCachedChains = 10_000

// chainCache maps the SHA-256 of a presented chain's certificates to the
// chains that verified it and what the leaf says (hashing and formatting
// it is most of the cost of a verification that hits the cache).
type chainCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]cachedChain
}

type cachedChain struct {
	chains [][]*x509.Certificate // as x509.Verify returned them; read only
	info   CertInfo              // of the leaf; callers get a copy
	until  time.Time
}

func chainKey(chain []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	for _, c := range chain {
		if c != nil {
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(len(c.Raw)))
			h.Write(n[:])
			h.Write(c.Raw)
		}
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (c *chainCache) get(k [sha256.Size]byte, now time.Time) ([][]*x509.Certificate, *CertInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !now.Before(e.until) || now.Before(e.until.Add(-chainCacheFor)) {
		return nil, nil, false
	}
	info := e.info
	info.Emails = slices.Clone(info.Emails)
	return e.chains, &info, true
}

func (c *chainCache) put(k [sha256.Size]byte, chains [][]*x509.Certificate, info *CertInfo, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedChains {
		c.m = make(map[[sha256.Size]byte]cachedChain)
	}
	e := cachedChain{chains: chains, info: *info, until: now.Add(chainCacheFor)}
	e.info.Emails = slices.Clone(info.Emails)
	c.m[k] = e
}

// Fingerprint returns "sha256:<hex>" of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CertID returns the identity of a certificate that its holder cannot
// change: "sha256:<hex>" of its signed body (TBSCertificate).
func CertID(c *x509.Certificate) string { return Fingerprint(c.RawTBSCertificate) }

// IssuerID returns "sha256:<hex>" of an issuer name as encoded in a
// certificate (x509.Certificate.RawIssuer). The bytes are covered by the
// certificate's signature, so nobody but the CA can change them.
func IssuerID(rawIssuer []byte) string { return Fingerprint(rawIssuer) }

// SerialText returns a serial number as Gatehouse writes it: lower-case
// hex without leading zeros.
func SerialText(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// strictDER reports whether a parsed certificate is encoded in DER.
// x509.ParseCertificate reads the outer structure with cryptobyte, which
// takes only minimal lengths, and requires the outer signature algorithm
// to equal the one in the signed body byte for byte; but it takes two
// other liberties that anyone holding a certificate can use to give it
// as many encodings (and fingerprints) as they like, all with the same
// signed body and a valid signature: bytes after the signature inside the
// outer SEQUENCE, which it never reads, and a signature BIT STRING that
// declares 1 to 7 unused (zero) bits, whose value it shifts back into
// place. A certificate in DER is exactly the DER re-encoding of its
// parts, so that is what is compared. Intermediates a client sends are
// not checked: no account or pin is bound to them by their encoding.
func strictDER(c *x509.Certificate) bool {
	tbs, alg, ok := certParts(c.Raw)
	if !ok {
		return false
	}
	der, err := encodeCertificate(tbs, alg, c.Signature)
	return err == nil && bytes.Equal(der, c.Raw)
}

// certParts returns a DER certificate's signed body (TBSCertificate) and
// signature algorithm, each with its tag and length.
func certParts(der []byte) (tbs, alg []byte, ok bool) {
	in := cryptobyte.String(der)
	var body, t, a cryptobyte.String
	if !in.ReadASN1(&body, cryptobyte_asn1.SEQUENCE) ||
		!body.ReadASN1Element(&t, cryptobyte_asn1.SEQUENCE) ||
		!body.ReadASN1Element(&a, cryptobyte_asn1.SEQUENCE) {
		return nil, nil, false
	}
	return t, a, true
}

// encodeCertificate returns the DER certificate made of a signed body, a
// signature algorithm (both as certParts returns them) and a signature.
func encodeCertificate(tbs, alg, sig []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cryptobyte_asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(alg)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

// issuerOf returns the certificate whose key signed a verified chain's
// leaf: the next one up, or the leaf itself when it is the trust anchor
// (a self-signed certificate in the pool).
func issuerOf(chain []*x509.Certificate) *x509.Certificate {
	if len(chain) > 1 {
		return chain[1]
	}
	return chain[0]
}

// TwinFingerprint returns the fingerprint of the other encoding of c, a
// certificate in DER (strictDER) that issuer's key signed: for an ECDSA
// signature (r, s), the same certificate with (r, n-s), in DER, where n
// is the order of the issuer's curve. It returns "" for other keys.
//
// Together with c's own fingerprint, this is every encoding of c that
// Verify accepts. The signed body is fixed (the signature covers it),
// the signature algorithm must equal the one inside it, lengths are
// minimal, and strictDER refuses anything else around the signature; what
// is left is the signature value itself:
//   - ECDSA: ecdsa.VerifyASN1 takes only a DER SEQUENCE of two minimal
//     INTEGERs with nothing after it, and 0 < r, s < n. (r, s) and
//     (r, n-s) both verify, because the points R and -R share their x.
//     Another s would need a point whose x is r+n, and finding its s is
//     a discrete logarithm: it takes the private key.
//   - RSA PKCS#1 v1.5: one signature per key and message, and Go takes
//     it only as long as the modulus.
//   - RSA-PSS: a new signature takes the private key.
//   - Ed25519: Go refuses S >= L and compares R byte for byte.
//
// So the one other encoding anyone can make is the ECDSA twin.
func TwinFingerprint(c, issuer *x509.Certificate) string {
	pub, ok := issuer.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return ""
	}
	n := pub.Curve.Params().N
	sig := cryptobyte.String(c.Signature)
	var inner cryptobyte.String
	r, s := new(big.Int), new(big.Int)
	if !sig.ReadASN1(&inner, cryptobyte_asn1.SEQUENCE) || !sig.Empty() ||
		!inner.ReadASN1Integer(r) || !inner.ReadASN1Integer(s) || !inner.Empty() ||
		s.Sign() <= 0 || s.Cmp(n) >= 0 {
		return ""
	}
	var b cryptobyte.Builder
	b.AddASN1(cryptobyte_asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(r)
		b.AddASN1BigInt(new(big.Int).Sub(n, s))
	})
	twinSig, err := b.Bytes()
	if err != nil {
		return ""
	}
	tbs, alg, ok := certParts(c.Raw)
	if !ok {
		return ""
	}
	der, err := encodeCertificate(tbs, alg, twinSig)
	if err != nil {
		return ""
	}
	return Fingerprint(der)
}

// dateLayout is how dates appear in notices: "3 May 2026".
const dateLayout = "2 January 2006"

// Verify checks the chain a connection presented (leaf first) at time
// now: it must chain to a client CA, be valid now, carry the clientAuth
// extended key usage and not be revoked. Binding to an account is checked
// separately by BindTo, once the account is known.
func (v *CertVerifier) Verify(ctx context.Context, chain []*x509.Certificate, now time.Time) CertResult {
	if len(chain) == 0 || chain[0] == nil {
		return CertResult{Status: CertAbsent}
	}
	leaf := chain[0]
	if v == nil || v.Roots == nil {
		return CertResult{Status: CertUnknownIssuer, Notice: noticeUnknownIssuer}
	}
	key := chainKey(chain)
	chains, info, ok := v.chains.get(key, now)
	if !ok {
		intermediates := x509.NewCertPool()
		for _, c := range v.Intermediates {
			intermediates.AddCert(c)
		}
		for _, c := range chain[1:] {
			if c != nil {
				intermediates.AddCert(c)
			}
		}
		opts := x509.VerifyOptions{
			Roots:         v.Roots,
			Intermediates: intermediates,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			// Verify the chain at a moment inside the leaf's own
			// validity, so that an expired certificate from a trusted CA
			// is reported as expired (with its date) rather than as
			// untrusted. The leaf's dates are compared with now below,
			// after the chain verified.
			CurrentTime: clamp(now, leaf.NotBefore, leaf.NotAfter),
		}
		// Only the DER encoding counts: see strictDER and
		// TwinFingerprint for why a certificate then has at most two.
		if !strictDER(leaf) {
			return CertResult{Status: CertInvalid,
				Notice: "your certificate has been altered or damaged on its way here, so it cannot count; install it again from your certificates page, or ask for a new one"}
		}
		var err error
		chains, err = leaf.Verify(opts)
		if err != nil {
			return chainFailure(err)
		}
		info = infoOf(leaf)
		info.TwinFingerprint = TwinFingerprint(leaf, issuerOf(chains[0]))
		v.chains.put(key, chains, info, now)
	}
	switch {
	case now.Before(leaf.NotBefore):
		return CertResult{Status: CertNotYetValid, Info: info,
			Notice: fmt.Sprintf("your certificate is not valid until %s", leaf.NotBefore.UTC().Format(dateLayout))}
	case now.After(leaf.NotAfter):
		return CertResult{Status: CertExpired, Info: info,
			Notice: fmt.Sprintf("your certificate expired on %s", leaf.NotAfter.UTC().Format(dateLayout))}
	}
	// x509.Verify accepts a leaf with no extended key usage at all as
	// valid for any usage; a client certificate must say clientAuth.
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return CertResult{Status: CertNoClientAuth, Info: info,
			Notice: "your certificate is not made for signing in (it lacks the client authentication usage)"}
	}
	if v.CRLs != nil {
		if r, ok := crlFailure(v.CRLs(), chains, info, now); !ok {
			return r
		}
	}
	if v.Revoked != nil {
		revoked, err := v.Revoked(ctx, info.Issuer, info.Serial)
		if err != nil {
			return CertResult{Status: CertInvalid, Info: info,
				Notice: "whether your certificate was revoked could not be checked right now"}
		}
		if revoked {
			return CertResult{Status: CertRevoked, Info: info, Notice: noticeRevoked}
		}
	}
	return CertResult{Status: CertValid, Info: info}
}

const noticeRevoked = "your certificate has been revoked"

// crlFailure checks every chain that verified against the CRLs and
// reports false, with the result to return, when one of them fails: a
// revocation or a stale list on any path counts, so that a second path
// (a cross-signed intermediate, say) cannot bring back what one CA
// revoked.
func crlFailure(set *CRLSet, chains [][]*x509.Certificate, info *CertInfo, now time.Time) (CertResult, bool) {
	verdict, chain, at := crlNotCovered, []*x509.Certificate(nil), 0
	for _, c := range chains {
		if v, i := set.checkChain(c, now); v > verdict {
			verdict, chain, at = v, c, i
		}
	}
	switch {
	case verdict == crlRevoked && at == 0:
		return CertResult{Status: CertRevoked, Info: info, Notice: noticeRevoked}, false
	case verdict == crlRevoked:
		return CertResult{Status: CertRevoked, Info: info,
			Notice: fmt.Sprintf("the certificate authority %q that your certificate depends on has been revoked, so your certificate cannot be trusted", caName(chain[at]))}, false
	case verdict == crlStale && at == 0:
		return CertResult{Status: CertInvalid, Info: info,
			Notice: "the revocation list of your certificate's issuer is out of date, so the certificate cannot be trusted right now"}, false
	case verdict == crlStale:
		return CertResult{Status: CertInvalid, Info: info,
			Notice: fmt.Sprintf("the revocation list of %q, a certificate authority your certificate depends on, is out of date, so the certificate cannot be trusted right now", caName(chain[at+1]))}, false
	}
	return CertResult{}, true
}

// caName is how a notice names a certificate authority.
func caName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

const noticeUnknownIssuer = "your certificate was not issued by a certificate authority this portal trusts"

func chainFailure(err error) CertResult {
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		return CertResult{Status: CertUnknownIssuer, Notice: noticeUnknownIssuer}
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		switch invalid.Reason {
		case x509.IncompatibleUsage:
			return CertResult{Status: CertNoClientAuth,
				Notice: "your certificate is not made for signing in (it lacks the client authentication usage)"}
		case x509.Expired:
			// The leaf is inside its own validity (see Verify), so an
			// issuing CA has expired or is not yet valid.
			return CertResult{Status: CertInvalid,
				Notice: "your certificate's issuing authority is outside its validity period"}
		}
	}
	return CertResult{Status: CertInvalid, Notice: "your certificate could not be verified"}
}

func clamp(t, lo, hi time.Time) time.Time {
	if t.Before(lo) {
		return lo
	}
	if t.After(hi) {
		return hi
	}
	return t
}

func infoOf(c *x509.Certificate) *CertInfo {
	return &CertInfo{
		ID:          CertID(c),
		Issuer:      IssuerID(c.RawIssuer),
		Fingerprint: Fingerprint(c.Raw),
		KeyPin:      Fingerprint(c.RawSubjectPublicKeyInfo),
		Subject:     c.Subject.String(),
		CommonName:  c.Subject.CommonName,
		Emails:      slices.Clone(c.EmailAddresses),
		NotBefore:   c.NotBefore,
		NotAfter:    c.NotAfter,
		Serial:      SerialText(c),
	}
}

// BoundTo checks that a verified certificate belongs to account and to
// no other account (see CertBoundTo). owners are the accounts the caller
// found the certificate bound to, account among them or not: at sign-in
// the caller must look at every account, since a certificate that names
// more than one counts for none of them (one account's name in the common
// name and another's email, say, made by a CA that trusted either). A
// certificate that does not belong to account alone stops counting, and
// the status says whether it belongs to someone else, to several
// accounts, or to nobody.
func (r CertResult) BoundTo(account Account, owners []string) CertResult {
	if r.Status != CertValid {
		return r
	}
	var others []string
	for _, o := range owners {
		if o != "" && o != account.Name && !slices.Contains(others, o) {
			others = append(others, o)
		}
	}
	bound := CertBoundTo(r.Info, account)
	switch {
	case bound && len(others) == 0:
		return r
	case bound || len(others) > 1:
		return CertResult{Status: CertAmbiguous, Info: r.Info,
			Notice: fmt.Sprintf("your certificate (issued to %q) names more than one account, so it does not count; an administrator must link it to one account only", certName(r.Info))}
	case len(others) == 1:
		return CertResult{Status: CertOtherUser, Info: r.Info,
			Notice: fmt.Sprintf("your certificate (issued to %q) belongs to another account, not to this one", certName(r.Info))}
	}
	return CertResult{Status: CertUnbound, Info: r.Info,
		Notice: fmt.Sprintf("your certificate (issued to %q) is not linked to this account", certName(r.Info))}
}

func certName(info *CertInfo) string {
	if info.CommonName != "" || len(info.Emails) == 0 {
		return info.CommonName
	}
	return info.Emails[0]
}

// CertBoundTo reports whether a verified certificate belongs to account:
// its fingerprint (of either of its encodings: Fingerprint or
// TwinFingerprint) or its public key is pinned on the account, its
// subject common name equals the account name, or one of its SAN email
// addresses equals the account's email. A pin made from one encoding
// must match the other as well: a pin can take a certificate away from
// another account (CertResult.BoundTo), and re-encoding must not undo
// that.
func CertBoundTo(info *CertInfo, account Account) bool {
	if info == nil {
		return false
	}
	if slices.Contains(account.PinnedFingerprints, info.Fingerprint) ||
		(info.TwinFingerprint != "" && slices.Contains(account.PinnedFingerprints, info.TwinFingerprint)) ||
		slices.Contains(account.PinnedKeys, info.KeyPin) {
		return true
	}
	return CertMatchesAccount(info.CommonName, info.Emails, account.Name, account.Email)
}

// CertMatchesAccount reports whether a certificate's common name or SAN
// emails name the account. Emails compare ignoring ASCII case only (not
// Unicode folding, under which the Kelvin sign equals "k"); the common
// name must equal the account name exactly. Empty values never match.
func CertMatchesAccount(commonName string, emails []string, name, email string) bool {
	if name != "" && commonName == name {
		return true
	}
	if email == "" {
		return false
	}
	for _, e := range emails {
		if asciiEqualFold(e, email) {
			return true
		}
	}
	return false
}

// asciiEqualFold reports whether a and b are equal ignoring the case of
// ASCII letters.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ForSession re-evaluates the certificate of a request made on an
// existing session. A session that signed in with a certificate keeps its
// certificate factor only while requests present that same certificate
// (by CertID), still valid; a session that signed in without one never
// gains it mid-session (that takes a new login and a new session).
func (r CertResult) ForSession(sessionCertID string) CertResult {
	if sessionCertID == "" {
		if r.Status != CertAbsent && !r.Valid() {
			return r // keep telling the user why their certificate does not count
		}
		return CertResult{Status: CertAbsent}
	}
	switch {
	case r.Status == CertAbsent:
		return CertResult{Status: CertSessionMismatch,
			Notice: "this connection did not present the certificate you signed in with, so the roles that need it are withheld"}
	case r.Info != nil && r.Info.ID != sessionCertID:
		return CertResult{Status: CertSessionMismatch, Info: r.Info,
			Notice: "this connection presented a different certificate from the one you signed in with, so the roles that need it are withheld"}
	}
	return r
}
