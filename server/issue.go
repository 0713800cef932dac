package server

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"

	"gatehouse/auth"
	"gatehouse/auth/ca"
	"gatehouse/store"
)

// A certificate for a new device, issued by the help desk or an admin
// from the built-in CA: the user gets a .p12 file and its import password,
// shown once. The same boundaries as the other help-desk actions apply
// (a reason, not oneself, not an admin or help-desk account unless the
// actor is an admin); the target's sessions go on, since nothing was
// taken from them.

// issuedDevice is what issuing gives back, once.
type issuedDevice struct {
	User        string
	P12         []byte
	P12Password string
	Certificate issuedCertJSON
}

var errNoIssuer = &Error{Status: http.StatusServiceUnavailable, Code: "no_issuer",
	Message: "this portal cannot issue certificates: the built-in CA's key is not on this server; use gatehouse cert issue where it is"}

func (s *Server) issueDeviceCertificate(r *http.Request, v *visit, name, reason string) (issuedDevice, error) {
	if s.issuer == nil {
		return issuedDevice{}, errNoIssuer
	}
	reason, err := checkReason(reason)
	if err != nil {
		return issuedDevice{}, err
	}
	target, err := s.loadTarget(r, name)
	if err != nil {
		return issuedDevice{}, err
	}
	if err := checkHelpdeskTarget(v, target); err != nil {
		ev := actorEvent(v, "helpdesk.certificate.issue", name, reason)
		ev.Outcome = "failure"
		if aerr := s.audit(r, ev); aerr != nil {
			return issuedDevice{}, aerr
		}
		return issuedDevice{}, err
	}
	// Only a person's very first certificate is handed over by staff:
	// anyone who has one, or has a request waiting, gets the next by a
	// request from the new device, which staff only approve.
	n, err := s.countValidCertificates(r, target.Name, "")
	if err != nil {
		return issuedDevice{}, err
	}
	if n > 0 || len(s.openEnrollments(target)) > 0 {
		ev := actorEvent(v, "helpdesk.certificate.issue", name, reason+"; refused: has_certificate")
		ev.Outcome = "failure"
		if aerr := s.audit(r, ev); aerr != nil {
			return issuedDevice{}, aerr
		}
		return issuedDevice{}, &Error{Status: http.StatusConflict, Code: "has_certificate",
			Message: fmt.Sprintf("%s already has a certificate or a request waiting: ask them to sign in on the new device and choose “Get a certificate for this device”, then approve that request here with the code they read to you", target.Name)}
	}
	now := s.now()
	issued, err := s.issuer.IssueClient(ca.ClientRequest{Name: target.Name, Email: target.Email}, now)
	if err != nil {
		return issuedDevice{}, err
	}
	password := auth.RandomPassword()
	p12, err := ca.PKCS12(issued, s.issuer.Cert, password)
	if err != nil {
		return issuedDevice{}, err
	}
	rec := store.CertificateOf(issued.Cert, target.Name, now)
	if err := s.store.PutCertificate(r.Context(), rec); err != nil {
		return issuedDevice{}, err
	}
	// The boundaries hold for the account as it is once the certificate
	// is recorded: one made an admin meanwhile gets no certificate from
	// the help desk (it is revoked before anyone sees it).
	if err := s.recheckIssueTarget(r, v, target.Name, rec); err != nil {
		ev := actorEvent(v, "helpdesk.certificate.issue", name, reason+"; refused: "+asError(err).Code)
		ev.Outcome = "failure"
		if aerr := s.audit(r, ev); aerr != nil {
			return issuedDevice{}, aerr
		}
		return issuedDevice{}, err
	}
	ev := actorEvent(v, "helpdesk.certificate.issue", name, reason)
	ev.CertFingerprint = rec.Fingerprint
	if err := s.audit(r, ev); err != nil {
		return issuedDevice{}, err
	}
	return issuedDevice{User: target.Name, P12: p12, P12Password: password, Certificate: s.certView(rec)}, nil
}

// recheckIssueTarget reads the account a certificate was just recorded
// for again and, if the help desk may no longer act on it, revokes the
// certificate and says why.
func (s *Server) recheckIssueTarget(r *http.Request, v *visit, name string, rec store.Certificate) error {
	target, err := s.loadTarget(r, name)
	if err == nil {
		err = checkHelpdeskTarget(v, target)
	}
	if err == nil {
		return nil
	}
	if _, rerr := s.store.RevokeCertificate(r.Context(), rec.Serial, s.now(), "issued by the help desk as the account became privileged"); rerr != nil {
		return rerr
	}
	return err
}

func (s *Server) apiIssueCertificate(w http.ResponseWriter, r *http.Request, v *visit) {
	var in struct {
		Reason string `json:"reason"`
	}
	if err := decodeInput(r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.issueDeviceCertificate(r, v, r.PathValue("name"), in.Reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, map[string]any{"certificate": d.Certificate,
		"p12": base64.StdEncoding.EncodeToString(d.P12), "p12_password": d.P12Password})
}

// issuedPage shows the new certificate once: the .p12 as a download link
// that carries the file itself (nothing is kept on the server) and its
// import password.
type issuedPage struct {
	Console
	issuedDevice
	// Download is a data: URL of the .p12. It is built here from bytes
	// the portal made, so it is marked safe for the href it goes in.
	Download template.URL
}

func (s *Server) formIssueCertificate(w http.ResponseWriter, r *http.Request, v *visit) {
	if !s.parseForm(w, r) {
		return
	}
	d, err := s.issueDeviceCertificate(r, v, r.PathValue("name"), r.PostFormValue("reason"))
	if err != nil {
		s.afterForm(w, r, v, err, "", "", s.showHelpdeskUser)
		return
	}
	p := issuedPage{Console: s.console(r, v, "helpdesk"), issuedDevice: d,
		Download: template.URL("data:application/x-pkcs12;base64," + base64.StdEncoding.EncodeToString(d.P12))}
	s.render(w, r, http.StatusCreated, "issued.html", page{Title: "New certificate", Visit: v, Data: p})
}
