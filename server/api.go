package server

import (
	"net/http"
	"time"
)

// sessionJSON is the body of GET /api/session.
type sessionJSON struct {
	User           string    `json:"user"`
	Roles          []string  `json:"roles"`
	EffectiveRoles []string  `json:"effective_roles"`
	Factors        []string  `json:"factors"`
	Certificate    *certJSON `json:"certificate"`
	ExpiresAt      time.Time `json:"expires_at"`
	Notices        []string  `json:"notices"`
}

type certJSON struct {
	Subject     string    `json:"subject"`
	Fingerprint string    `json:"fingerprint"`
	NotAfter    time.Time `json:"not_after"`
}

func (s *Server) handleAPISession() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.requireVisit(w, r)
		if v == nil {
			return
		}
		out := sessionJSON{
			User:           v.Account.Name,
			Roles:          nonNil(v.Account.Roles),
			EffectiveRoles: nonNil(v.Decision.EffectiveRoles),
			Factors:        nonNil(v.Decision.Factors),
			ExpiresAt:      v.Record.ExpiresAt.UTC(),
			Notices:        nonNil(v.Decision.Notices),
		}
		if c := v.Decision.Cert; c.Valid() {
			out.Certificate = &certJSON{Subject: c.Info.Subject, Fingerprint: c.Info.Fingerprint, NotAfter: c.Info.NotAfter.UTC()}
		}
		s.writeJSON(w, http.StatusOK, out)
	})
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
