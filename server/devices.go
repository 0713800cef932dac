package server

import (
	"net/http"
	"strings"

	"gatehouse/store"
)

// A user's own device certificates: the ones the portal's CA issued to
// the account, listed with the device this request comes from marked, and
// revocable by their owner (the password asked again) when a device is
// lost. Revoking only ever takes privilege away, so it needs no help desk.

// devicesPage is the content of /account/certificates.
type devicesPage struct {
	Certificates []issuedCertJSON
	// Current is the serial of the certificate this request presents,
	// if any and it is one of these.
	Current string
	// Renew is Current when it may be renewed now (it ends within
	// RenewalWindow); Formats are the choices for its new file.
	Renew   string
	Formats []formatChoice
	Done    bool
}

func (s *Server) ownCertificates(r *http.Request, v *visit) ([]issuedCertJSON, error) {
	certs, err := s.store.Certificates(r.Context(), v.Account.Name)
	if err != nil {
		return nil, err
	}
	out := []issuedCertJSON{}
	for _, c := range certs {
		out = append(out, s.certView(c))
	}
	return out, nil
}

func (s *Server) showDevices(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string) {
	d := devicesPage{Done: r.URL.Query().Has("done")}
	var err error
	if d.Certificates, err = s.ownCertificates(r, v); err != nil {
		s.fail(w, r, err)
		return
	}
	if c := v.Decision.Cert; c.Valid() {
		d.Current = c.Info.Serial
		if renewalDue(c.Info, s.now()) {
			d.Renew = c.Info.Serial
		}
	}
	d.Formats = formatsFor(systemOf(r.UserAgent()))
	s.render(w, r, status, "devices.html", page{Title: "Your certificates", Visit: v, Error: msg, Data: d})
}

func (s *Server) handleDevices() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		if wantsJSON(r) {
			certs, err := s.ownCertificates(r, v)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			s.writeJSON(w, http.StatusOK, map[string]any{"certificates": certs})
			return
		}
		s.showDevices(w, r, v, http.StatusOK, "")
	})
}

// revokeOwnCertificate revokes one of the account's own certificates,
// named by fingerprint or serial, after the password is given again.
// Another account's certificate is "not found": nobody learns what
// others hold.
func (s *Server) revokeOwnCertificate(r *http.Request, v *visit, id, password, reason string) (store.Certificate, error) {
	if err := s.recheckPassword(r, v, password); err != nil {
		return store.Certificate{}, err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		reason = "revoked by its owner"
	}
	reason, err := checkReason(reason)
	if err != nil {
		return store.Certificate{}, err
	}
	certs, err := s.store.Certificates(r.Context(), v.Account.Name)
	if err != nil {
		return store.Certificate{}, err
	}
	c, ok := store.FindCertificate(certs, id)
	if !ok {
		return store.Certificate{}, &Error{Status: http.StatusNotFound, Code: "no_such_certificate",
			Message: "you have no certificate with that serial or fingerprint"}
	}
	revoked, err := store.RevokeWithRenewals(r.Context(), s.store, c.Serial, s.now(), reason)
	if err != nil {
		return c, err
	}
	c = revoked[0]
	reason = store.RevocationReason(reason, revoked)
	ev := actorEvent(v, "account.certificate.revoke", v.Account.Name, reason)
	ev.CertFingerprint = c.Fingerprint
	return c, s.audit(r, ev)
}

func (s *Server) handleRevokeOwnCertificate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		var in struct {
			Password string `json:"password"`
			Reason   string `json:"reason"`
		}
		if err := decodeInput(r, &in); err != nil {
			s.fail(w, r, err)
			return
		}
		c, err := s.revokeOwnCertificate(r, v, r.PathValue("id"), in.Password, in.Reason)
		switch e := asError(err); {
		case err == nil && wantsJSON(r):
			s.writeJSON(w, http.StatusOK, s.certView(c))
		case err == nil:
			http.Redirect(w, r, "/account/certificates?done", http.StatusSeeOther)
		case wantsJSON(r) || e.Status >= 500 || e.Status == http.StatusNotFound:
			s.fail(w, r, err)
		default:
			if e.Code == "bad_password" {
				e.Message = "your password is not right; the certificate was not revoked"
			}
			setRetryAfter(w, e)
			s.showDevices(w, r, v, e.Status, e.Message)
		}
	})
}
