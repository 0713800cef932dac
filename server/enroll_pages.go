package server

import (
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"slices"

	"gatehouse/store"
)

// The routes of device enrollment and renewal: each a JSON route under
// /api/ and a page or form for people, with the same rules.

// enrollmentsPage is the content of /account/enrollments.
type enrollmentsPage struct {
	// Mine are this session's own requests that are still open.
	Mine []enrollmentJSON
	// Waiting are other devices' requests waiting for approval.
	Waiting []enrollmentJSON
	// Recent are finished requests.
	Recent []enrollmentJSON
	// CanApprove: this session holds a valid certificate of the account.
	CanApprove bool
	// WithTOTP: the operator lets a request be approved on its own device
	// with a TOTP code, and this account has TOTP.
	WithTOTP bool
	// HasCertificate: this session signed in with a certificate.
	HasCertificate bool
	// DeviceName is a suggested name for this device.
	DeviceName string
	// Formats are the delivery choices, the best for this system first.
	Formats []formatChoice
	Done    string
}

// formatChoice is a delivery format offered on a page.
type formatChoice struct {
	Value, Label string
}

// formatsFor orders the formats for a system: the one that imports most
// easily there first.
func formatsFor(sys string) []formatChoice {
	p12 := formatChoice{formatP12, "PKCS#12 file (.p12), for current Windows, macOS 15 and later, Android 12 and later, Linux and Firefox"}
	legacy := formatChoice{formatP12Legacy, "PKCS#12 file, older encryption, for macOS 14 and older, Android 11 and older, older Windows"}
	profile := formatChoice{formatMobileConfig, "Configuration profile (.mobileconfig), for iPhone, iPad and Mac"}
	switch sys {
	case sysIOS:
		return []formatChoice{profile, p12, legacy}
	case sysMac:
		return []formatChoice{p12, profile, legacy}
	}
	return []formatChoice{p12, legacy, profile}
}

// enrollDone are the confirmations a redirect may ask the page to show.
var enrollDone = map[string]string{
	"requested": "Your request is made. Approve it with the code below.",
	"approved":  "The request is approved. The new device can now take its certificate.",
	"cancelled": "The request was cancelled.",
}

func (s *Server) enrollmentsData(r *http.Request, v *visit) enrollmentsPage {
	d := enrollmentsPage{CanApprove: v.Decision.Cert.Valid(), HasCertificate: v.Decision.Cert.Valid(),
		WithTOTP:   s.enrollWithTOTP && v.Account.TOTPSecret != "",
		DeviceName: describeUserAgent(r.UserAgent()), Formats: formatsFor(systemOf(r.UserAgent())),
		Done: enrollDone[r.URL.Query().Get("done")]}
	for _, e := range slices.Backward(v.Account.Enrollments) {
		j := s.enrollmentView(v, e)
		switch {
		case j.Mine && (j.Status == store.EnrollmentPending || j.Status == store.EnrollmentApproved):
			d.Mine = append(d.Mine, j)
		case j.Status == store.EnrollmentPending:
			d.Waiting = append(d.Waiting, j)
		default:
			d.Recent = append(d.Recent, j)
		}
	}
	return d
}

// enrollmentRefresh is how often the page of a device whose request waits
// for approval reloads itself, so the person sees the approval without
// doing anything.
const enrollmentRefresh = 5

func (s *Server) showEnrollments(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string) {
	d := s.enrollmentsData(r, v)
	p := page{Title: "Certificate for this device", Visit: v, Error: msg, Data: d}
	if msg == "" && slices.ContainsFunc(d.Mine, func(e enrollmentJSON) bool { return e.Status == store.EnrollmentPending }) && !d.WithTOTP {
		p.Refresh = enrollmentRefresh
	}
	s.render(w, r, status, "enrollments.html", p)
}

// handleEnrollments lists the account's requests (GET).
func (s *Server) handleEnrollments() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if !wantsJSON(r) {
			s.showEnrollments(w, r, v, http.StatusOK, "")
			return
		}
		out := []enrollmentJSON{}
		for _, e := range v.Account.Enrollments {
			out = append(out, s.enrollmentView(v, e))
		}
		s.writeJSON(w, http.StatusOK, map[string]any{"enrollments": out})
	})
}

// enrollmentForm answers a page form: on success a 303 to the page with
// a confirmation, on a refusal the page again with the message.
func (s *Server) enrollmentForm(w http.ResponseWriter, r *http.Request, v *visit, err error, back, done string) {
	if err == nil {
		http.Redirect(w, r, back+"?done="+done, http.StatusSeeOther)
		return
	}
	e := asError(err)
	if e.Status >= 500 {
		s.fail(w, r, err)
		return
	}
	setRetryAfter(w, e)
	s.showEnrollments(w, r, v, e.Status, e.Message)
}

// handleEnrollmentCreate makes a request for this device (POST).
func (s *Server) handleEnrollmentCreate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Name string `json:"name"`
			CSR  string `json:"csr"`
		}
		v := s.visitWithInput(w, r, &in)
		if v == nil {
			return
		}
		e, err := s.createEnrollment(r, v, in.Name, in.CSR)
		if !wantsJSON(r) {
			s.enrollmentForm(w, r, v, err, "/account/enrollments", "requested")
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.writeJSON(w, http.StatusCreated, map[string]any{"id": e.ID, "name": e.Name, "code": s.enrollmentCode(e),
			"status": e.Status, "expires_at": e.ExpiresAt.UTC()})
	})
}

// handleEnrollmentApprove approves a request of the same account (POST):
// {"code"} from a session with the account's certificate, or {"totp"}
// on the requesting session where the operator allows it.
func (s *Server) handleEnrollmentApprove() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Code string `json:"code"`
			TOTP string `json:"totp"`
		}
		v := s.visitWithInput(w, r, &in)
		if v == nil {
			return
		}
		e, err := s.approveOwn(r, v, r.PathValue("id"), in.Code, in.TOTP)
		if !wantsJSON(r) {
			s.enrollmentForm(w, r, v, err, "/account/enrollments", "approved")
			return
		}
		if err != nil {
			setRetryAfter(w, asError(err))
			s.fail(w, r, err)
			return
		}
		s.writeJSON(w, http.StatusOK, s.enrollmentView(v, e))
	})
}

// handleEnrollmentCancel withdraws an open request (POST or DELETE).
func (s *Server) handleEnrollmentCancel() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		e, err := s.cancelEnrollment(r, v, r.PathValue("id"))
		if !wantsJSON(r) {
			s.enrollmentForm(w, r, v, err, "/account/enrollments", "cancelled")
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.writeJSON(w, http.StatusOK, s.enrollmentView(v, e))
	})
}

// certificatePage is the page that hands over a device certificate.
type certificatePage struct {
	deliveredCert
	// Download is a data: URL of the file. It is built here from bytes
	// the portal made, so it is marked safe for the href it goes in.
	Download template.URL
	// System is the visitor's system, whose install steps open first.
	System string
	// Renewal: a renewed certificate rather than a new device's.
	Renewal bool
}

// deliver answers with a device certificate: JSON for scripts, a page
// with the download, its import password and the install steps for
// people.
func (s *Server) deliver(w http.ResponseWriter, r *http.Request, v *visit, out deliveredCert, renewal bool) {
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		s.writeJSON(w, http.StatusCreated, out)
		return
	}
	p := certificatePage{deliveredCert: out, System: systemOf(r.UserAgent()), Renewal: renewal,
		Download: template.URL("data:" + out.contentType + ";base64," + base64.StdEncoding.EncodeToString(out.raw))}
	s.render(w, r, http.StatusCreated, "device_certificate.html", page{Title: "Your new certificate", Visit: v, Data: p})
}

// handleEnrollmentIssue gives the certificate of an approved request to
// the session that made it, once (POST {"format"}).
func (s *Server) handleEnrollmentIssue() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Format string `json:"format"`
		}
		v := s.visitWithInput(w, r, &in)
		if v == nil {
			return
		}
		out, err := s.issueEnrollment(r, v, r.PathValue("id"), in.Format)
		switch {
		case err != nil && wantsJSON(r):
			s.fail(w, r, err)
		case err != nil:
			s.enrollmentForm(w, r, v, err, "", "")
		default:
			s.deliver(w, r, v, out, false)
		}
	})
}

// handleRenew renews the certificate this device presents (POST
// {"format", "csr"?}).
func (s *Server) handleRenew() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Format string `json:"format"`
			CSR    string `json:"csr"`
		}
		v := s.visitWithInput(w, r, &in)
		if v == nil {
			return
		}
		out, err := s.renewCertificate(r, v, r.PathValue("id"), in.Format, in.CSR)
		switch e := asError(err); {
		case err != nil && (wantsJSON(r) || e.Status >= 500 || e.Status == http.StatusNotFound):
			s.fail(w, r, err)
		case err != nil:
			s.showDevices(w, r, v, e.Status, e.Message)
		default:
			s.deliver(w, r, v, out, true)
		}
	})
}

// apiHelpdeskEnrollments lists a user's open requests for the help desk:
// never the code, which only the new device shows.
func (s *Server) apiHelpdeskEnrollments(w http.ResponseWriter, r *http.Request, v *visit) {
	target, err := s.loadTarget(r, r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := checkHelpdeskTarget(v, target); err != nil {
		s.fail(w, r, err)
		return
	}
	out := []enrollmentJSON{}
	for _, e := range target.Enrollments {
		out = append(out, s.enrollmentView(nil, e))
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"enrollments": out})
}

// apiHelpdeskApprove approves a user's request with a reason and the
// code the user reads from the new device.
func (s *Server) apiHelpdeskApprove(w http.ResponseWriter, r *http.Request, v *visit) {
	var in struct {
		Reason string `json:"reason"`
		Code   string `json:"code"`
	}
	if err := decodeInput(r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.approveForHelpdesk(r, v, r.PathValue("name"), r.PathValue("id"), in.Reason, in.Code)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, s.enrollmentView(nil, e))
}

func (s *Server) formHelpdeskApprove(w http.ResponseWriter, r *http.Request, v *visit) {
	if !s.parseForm(w, r) {
		return
	}
	name := r.PathValue("name")
	_, err := s.approveForHelpdesk(r, v, name, r.PathValue("id"), r.PostFormValue("reason"), r.PostFormValue("code"))
	s.afterForm(w, r, v, err, "/helpdesk/users/"+url.PathEscape(name), "enrollment-approved", s.showHelpdeskUser)
}
