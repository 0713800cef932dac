package server

import (
	"net/http"
)

// Staff never hand over a key. A person's certificate, the first one
// included, is made for the device that asked for it and taken by that
// device only: the person signs in on the new device and asks, and the
// help desk approves the request with the code the person reads out
// (enroll.go). Earlier versions let the help desk issue a .p12 and its
// import password for a first device; the address is kept so that a
// script or a bookmark that still uses it learns what to do instead.

var errStaffIssueGone = &Error{Status: http.StatusGone, Code: "use_enrollment",
	Message: "the help desk no longer issues certificates: ask the person to sign in on the new device and choose “Get a certificate for this device”; their request then waits on this account's page, and you approve it with the code they read to you"}

func (s *Server) apiIssueCertificate(w http.ResponseWriter, r *http.Request, v *visit) {
	s.fail(w, r, errStaffIssueGone)
}

func (s *Server) formIssueCertificate(w http.ResponseWriter, r *http.Request, v *visit) {
	if !s.parseForm(w, r) {
		return
	}
	s.afterForm(w, r, v, errStaffIssueGone, "", "", s.showHelpdeskUser)
}
