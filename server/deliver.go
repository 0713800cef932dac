package server

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/store"
)

// Delivery of a device certificate: made in the response that gives it,
// to the one session that may take it, and never kept. Without a
// certificate request the key is made here too, and leaves only inside
// the file, encrypted with an import password shown once.

// Delivery formats of a device certificate.
const (
	formatP12          = "p12"          // PKCS#12, AES-256 and PBKDF2
	formatP12Legacy    = "p12-legacy"   // PKCS#12, 3DES and SHA-1, for older systems
	formatMobileConfig = "mobileconfig" // Apple configuration profile
	formatPEM          = "pem"          // the certificate only, for a request's own key
)

// deliveredCert is a device certificate as the API gives it, once.
type deliveredCert struct {
	Format string `json:"format"`
	// Certificate is the leaf then the CA, PEM (format pem).
	Certificate string `json:"certificate,omitempty"`
	// File is the file to import, base64 (formats p12, p12-legacy,
	// mobileconfig), with its name and import password.
	File           string    `json:"file,omitempty"`
	Filename       string    `json:"filename,omitempty"`
	ImportPassword string    `json:"import_password,omitempty"`
	Fingerprint    string    `json:"fingerprint"`
	Serial         string    `json:"serial"`
	NotAfter       time.Time `json:"not_after"`

	device      string
	contentType string
	raw         []byte
}

// Device is the name of the device the certificate is for.
func (d deliveredCert) Device() string { return d.device }

// parseCSR checks a PEM certificate request and returns its public key,
// or a 400 that says what is wrong with it.
func parseCSR(pemText string) (crypto.PublicKey, error) {
	pub, err := ca.ParseCSR([]byte(pemText))
	switch {
	case errors.Is(err, ca.ErrWeakKey):
		return nil, &Error{Status: http.StatusBadRequest, Code: "weak_key", Message: err.Error(), Err: err}
	case err != nil:
		return nil, &Error{Status: http.StatusBadRequest, Code: "bad_csr", Message: err.Error(), Err: err}
	}
	return pub, nil
}

// checkFormat refuses a format that does not fit the request: a request
// with the device's own key gets the certificate alone (pem); without
// one, a file that carries the key.
func checkFormat(format string, hasCSR bool) error {
	switch {
	case hasCSR && format != formatPEM:
		return &Error{Status: http.StatusBadRequest, Code: "bad_format",
			Message: "this request carries your device's own key: the certificate comes as pem, the only format that needs no key from us"}
	case !hasCSR && !slices.Contains([]string{formatP12, formatP12Legacy, formatMobileConfig}, format):
		return &Error{Status: http.StatusBadRequest, Code: "bad_format",
			Message: "choose the format p12 (current systems), p12-legacy (macOS 14 and older, Android 11 and older, older Windows) or mobileconfig (iPhone, iPad, Mac); pem needs a certificate request from your device"}
	}
	return nil
}

// countValidCertificates counts user's certificates that still count,
// but for skip (a serial, or "").
func (s *Server) countValidCertificates(r *http.Request, user, skip string) (int, error) {
	certs, err := s.store.Certificates(r.Context(), user)
	if err != nil {
		return 0, err
	}
	now := s.now()
	n := 0
	for _, c := range certs {
		if c.RevokedAt.IsZero() && now.Before(c.NotAfter) && c.Serial != skip {
			n++
		}
	}
	return n, nil
}

// checkCertificateLimit refuses one more certificate for user when the
// account already holds as many valid ones as allowed.
func (s *Server) checkCertificateLimit(r *http.Request, user, skip string) error {
	n, err := s.countValidCertificates(r, user, skip)
	if err != nil {
		return err
	}
	if n >= s.maxDeviceCerts {
		return &Error{Status: http.StatusConflict, Code: "too_many_certificates",
			Message: fmt.Sprintf("your account already has %d valid certificates, the most allowed; revoke one you no longer use on your certificates page first", n)}
	}
	return nil
}

// maxRenewedKept bounds Account.Renewed.
const maxRenewedKept = 50

// putWithinLimit records a certificate that was just made and counts
// again: two made at the same instant may each have seen room for one
// more. One over the limit is revoked at once and never handed out (a
// race costs both their certificate, never the limit).
func (s *Server) putWithinLimit(r *http.Request, rec store.Certificate, skip string) error {
	if err := s.store.PutCertificate(r.Context(), rec); err != nil {
		return err
	}
	n, err := s.countValidCertificates(r, rec.User, skip)
	if err != nil {
		return err
	}
	if n <= s.maxDeviceCerts {
		return nil
	}
	if _, err := s.store.RevokeCertificate(r.Context(), rec.Serial, s.now(), "over the limit of certificates per account"); err != nil {
		return err
	}
	return &Error{Status: http.StatusConflict, Code: "too_many_certificates",
		Message: "another certificate for your account was made at the same moment, and together they pass the limit of valid certificates; nothing was issued: try again"}
}

// makeDeviceCertificate signs a certificate for acct's device (with the
// request's key when csr is set) and packs it in format.
func (s *Server) makeDeviceCertificate(acct store.Account, device, csr, format string) (store.Certificate, deliveredCert, error) {
	if s.issuer == nil {
		return store.Certificate{}, deliveredCert{}, errNoIssuer
	}
	if err := checkFormat(format, csr != ""); err != nil {
		return store.Certificate{}, deliveredCert{}, err
	}
	now := s.now()
	req := ca.ClientRequest{Name: acct.Name, Email: acct.Email}
	out := deliveredCert{Format: format, device: device}
	var cert *x509.Certificate
	if csr != "" {
		pub, err := parseCSR(csr)
		if err != nil {
			return store.Certificate{}, deliveredCert{}, err
		}
		if cert, err = s.issuer.IssueClientForKey(req, pub, now); err != nil {
			return store.Certificate{}, deliveredCert{}, err
		}
		out.Certificate = string(ca.ChainPEM(cert, s.issuer.Cert))
		out.raw, out.contentType, out.Filename = []byte(out.Certificate), "application/x-pem-file", fileName(acct.Name, device, ".crt")
	} else {
		issued, err := s.issuer.IssueClient(req, now)
		if err != nil {
			return store.Certificate{}, deliveredCert{}, err
		}
		cert = issued.Cert
		out.ImportPassword = auth.RandomPassword()
		switch format {
		case formatP12:
			out.raw, err = ca.PKCS12(issued, s.issuer.Cert, out.ImportPassword)
			out.contentType, out.Filename = "application/x-pkcs12", fileName(acct.Name, device, ".p12")
		case formatP12Legacy:
			out.raw, err = ca.PKCS12Legacy(issued, s.issuer.Cert, out.ImportPassword)
			out.contentType, out.Filename = "application/x-pkcs12", fileName(acct.Name, device, "-legacy.p12")
		case formatMobileConfig:
			var p12 []byte
			if p12, err = ca.PKCS12(issued, s.issuer.Cert, out.ImportPassword); err == nil {
				out.raw, err = ca.MobileConfig(p12, s.issuer.Cert, "Gatehouse certificate for "+device,
					"gatehouse.device."+auth.SerialText(cert))
			}
			out.contentType, out.Filename = "application/x-apple-aspen-config", fileName(acct.Name, device, ".mobileconfig")
		}
		if err != nil {
			return store.Certificate{}, deliveredCert{}, err
		}
		out.File = base64.StdEncoding.EncodeToString(out.raw)
	}
	rec := store.CertificateOf(cert, acct.Name, now)
	rec.TwinFingerprint = auth.TwinFingerprint(cert, s.issuer.Cert)
	rec.Device = device
	out.Fingerprint, out.Serial, out.NotAfter = rec.Fingerprint, rec.Serial, cert.NotAfter.UTC()
	return rec, out, nil
}

var unsafeFileChars = regexp.MustCompile(`[^a-z0-9]+`)

// fileName is a download's name: "gatehouse-alice-alice-s-pixel.p12".
func fileName(user, device, ext string) string {
	base := strings.Trim(unsafeFileChars.ReplaceAllString(strings.ToLower(user+"-"+device), "-"), "-")
	if len(base) > 60 {
		base = strings.TrimRight(base[:60], "-")
	}
	return "gatehouse-" + base + ext
}

// issueEnrollment gives the certificate of an approved request to the
// session that made it, once. A refusal is in the audit trail.
func (s *Server) issueEnrollment(r *http.Request, v *visit, id, format string) (deliveredCert, error) {
	user := v.Account.Name
	e, ok := findEnrollment(v.Account, id)
	if !ok {
		return deliveredCert{}, errNoSuchEnrollment
	}
	out, rec, err := s.takeEnrollment(r, v, e, format)
	if err != nil {
		return deliveredCert{}, s.auditRefusal(r, enrollmentEvent(v, "enrollment.issue", user, e), err)
	}
	ev := enrollmentEvent(v, "enrollment.issue", user, e)
	ev.Reason += ", format " + format
	ev.CertFingerprint = rec.Fingerprint
	return out, s.audit(r, ev)
}

// takeEnrollment is issueEnrollment without the audit.
func (s *Server) takeEnrollment(r *http.Request, v *visit, e store.Enrollment, format string) (deliveredCert, store.Certificate, error) {
	user := v.Account.Name
	if !s.isRequester(v, e) {
		return deliveredCert{}, store.Certificate{}, errNotYourEnrollment
	}
	if st := enrollmentStatus(e, s.now()); st != store.EnrollmentApproved {
		return deliveredCert{}, store.Certificate{}, closedError(e, st)
	}
	if err := checkFormat(format, e.CSR != ""); err != nil {
		return deliveredCert{}, store.Certificate{}, err
	}
	if err := s.checkCertificateLimit(r, user, ""); err != nil {
		return deliveredCert{}, store.Certificate{}, err
	}
	rec, out, err := s.makeDeviceCertificate(v.Account, e.Name, e.CSR, format)
	if err != nil {
		return deliveredCert{}, store.Certificate{}, err
	}
	// Taking the certificate is the once-only step: the request turns
	// issued before anything is handed out, so a second, concurrent
	// issue finds it taken.
	now := s.now()
	err = s.store.UpdateAccount(r.Context(), user, func(a *store.Account) error {
		i := slices.IndexFunc(a.Enrollments, func(x store.Enrollment) bool { return x.ID == e.ID })
		if i < 0 {
			return errNoSuchEnrollment
		}
		x := &a.Enrollments[i]
		if st := enrollmentStatus(*x, now); st != store.EnrollmentApproved {
			return closedError(*x, st)
		}
		x.Status, x.Serial, x.CSR = store.EnrollmentIssued, rec.Serial, ""
		return nil
	})
	if err != nil {
		return deliveredCert{}, store.Certificate{}, err
	}
	if err := s.putWithinLimit(r, rec, ""); err != nil {
		return deliveredCert{}, store.Certificate{}, err
	}
	return out, rec, nil
}

// renewCertificate gives the device that presents certificate id a new
// one: the certificate itself is the approval, within RenewalWindow of
// its end. A refusal is in the audit trail.
func (s *Server) renewCertificate(r *http.Request, v *visit, id, format, csr string) (deliveredCert, error) {
	user := v.Account.Name
	ev := actorEvent(v, "certificate.renew", user, fmt.Sprintf("certificate %q", truncate(strings.TrimSpace(id), 128)))
	certs, err := s.store.Certificates(r.Context(), user)
	if err != nil {
		return deliveredCert{}, err
	}
	c, ok := store.FindCertificate(certs, id)
	if ok {
		ev.Reason = fmt.Sprintf("device %q, serial %s", c.Device, c.Serial)
		ev.CertFingerprint = c.Fingerprint
	}
	if !v.Decision.Cert.Valid() {
		return deliveredCert{}, s.auditRefusal(r, ev, &Error{Status: http.StatusForbidden, Code: "certificate_required",
			Message: "renewing a certificate needs that certificate: open this page on the device that holds it"})
	}
	if !ok {
		return deliveredCert{}, s.auditRefusal(r, ev, &Error{Status: http.StatusNotFound, Code: "no_such_certificate",
			Message: "you have no certificate with that serial or fingerprint"})
	}
	out, rec, err := s.renew(r, v, c, format, strings.TrimSpace(csr))
	if err != nil {
		return deliveredCert{}, s.auditRefusal(r, ev, err)
	}
	ev.Reason += fmt.Sprintf(", new serial %s, format %s", rec.Serial, format)
	return out, s.audit(r, ev)
}

// renew is renewCertificate, for certificate c of the session's account,
// without the audit.
func (s *Server) renew(r *http.Request, v *visit, c store.Certificate, format, csr string) (deliveredCert, store.Certificate, error) {
	user, cert := v.Account.Name, v.Decision.Cert
	if !presents(c, cert.Info) {
		return deliveredCert{}, store.Certificate{}, &Error{Status: http.StatusForbidden, Code: "not_this_certificate",
			Message: "a certificate is renewed from the device that holds it, and this connection presents another one"}
	}
	if due := cert.Info.NotAfter.Add(-RenewalWindow); s.now().Before(due) {
		return deliveredCert{}, store.Certificate{}, &Error{Status: http.StatusConflict, Code: "not_due",
			Message: fmt.Sprintf("your certificate is valid until %s; it can be renewed from %s on", humanDate(cert.Info.NotAfter), humanDate(due))}
	}
	if err := s.checkCertificateLimit(r, user, c.Serial); err != nil {
		return deliveredCert{}, store.Certificate{}, err
	}
	device := c.Device
	if device == "" {
		device = describeUserAgent(r.UserAgent())
	}
	// The certificate is made first, so that a request the portal refuses
	// (a bad CSR, a weak key) spends nothing; it is handed out only after
	// the renewal is spent below.
	rec, out, err := s.makeDeviceCertificate(v.Account, device, csr, format)
	if err != nil {
		return deliveredCert{}, store.Certificate{}, err
	}
	rec.RenewedFrom = c.Serial
	// A certificate is renewed once: the renewal is spent before the new
	// certificate is recorded, so two at once cannot both take it.
	err = s.store.UpdateAccount(r.Context(), user, func(a *store.Account) error {
		if slices.Contains(a.Renewed, c.Serial) {
			return &Error{Status: http.StatusConflict, Code: "already_renewed",
				Message: "this certificate was already renewed; use the new one (your certificates page lists it), or revoke both if that was not you"}
		}
		a.Renewed = append(a.Renewed, c.Serial)
		if len(a.Renewed) > maxRenewedKept {
			a.Renewed = a.Renewed[len(a.Renewed)-maxRenewedKept:]
		}
		return nil
	})
	if err != nil {
		return deliveredCert{}, store.Certificate{}, err
	}
	if err := s.putWithinLimit(r, rec, c.Serial); err != nil {
		return deliveredCert{}, store.Certificate{}, err
	}
	// The old certificate may have been revoked while the new one was
	// made, before its record listed the renewal (RevokeWithRenewals
	// finds renewals by their records): look again, now that it does.
	if err := s.refuseRenewalOfRevoked(r, c, rec); err != nil {
		return deliveredCert{}, store.Certificate{}, err
	}
	return out, rec, nil
}

// refuseRenewalOfRevoked revokes rec, a renewal of old just recorded, if
// old is revoked by now.
func (s *Server) refuseRenewalOfRevoked(r *http.Request, old, rec store.Certificate) error {
	now, ok, err := store.LookupCertificate(r.Context(), s.store, old.Serial)
	if err != nil {
		return err
	}
	if ok && now.RevokedAt.IsZero() {
		return nil
	}
	if _, err := s.store.RevokeCertificate(r.Context(), rec.Serial, s.now(), "renewed from "+old.Serial+", revoked while it was renewed"); err != nil {
		return err
	}
	return &Error{Status: http.StatusConflict, Code: "certificate_revoked",
		Message: "the certificate being renewed was revoked a moment ago; nothing was issued"}
}

// presents reports whether the verified certificate info is the stored
// certificate c: by its signed body, or, for records made before that was
// kept, by issuer (when known) and serial.
func presents(c store.Certificate, info *auth.CertInfo) bool {
	if info == nil {
		return false
	}
	if c.ID != "" {
		return c.ID == info.ID
	}
	return c.Serial == info.Serial && (c.Issuer == "" || c.Issuer == info.Issuer)
}

// renewalDue reports whether a verified certificate is within the
// renewal window at now.
func renewalDue(info *auth.CertInfo, now time.Time) bool {
	return info != nil && !now.Before(info.NotAfter.Add(-RenewalWindow))
}

// humanDate writes a date the way notices do: "3 May 2026".
func humanDate(t time.Time) string { return t.UTC().Format("2 January 2006") }
