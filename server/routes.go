package server

import "net/http"

// addRoutes is the map of the portal: every URL, what it needs and which
// handler serves it. The whole mux is wrapped once by s.secure (security
// headers, cross-origin protection, body limits).
//
// Authentication is checked inside handlers through s.visit, which loads
// the session and re-evaluates its roles for this very request.
func (s *Server) addRoutes(mux *http.ServeMux) {
	// Anonymous.
	mux.Handle("GET /login", s.handleLoginGet())
	mux.Handle("POST /login", s.handleLoginPost())
	mux.Handle("GET /healthz", s.handleHealthz())
	mux.Handle("GET /readyz", s.handleReadyz())
	// Prometheus metrics, to this machine and trusted proxies only.
	mux.Handle("GET /metrics", s.handleMetrics())
	mux.Handle("GET /static/", s.handleStatic())

	// Forward auth for internal apps (nginx auth_request, Caddy
	// forward_auth, Traefik forwardAuth): the session, if any, decides.
	mux.Handle("GET /auth/verify", s.handleVerify())

	// A sign-in waiting at the TOTP step.
	mux.Handle("GET /login/totp", s.handleTOTPStepGet())
	mux.Handle("POST /login/totp", s.handleTOTPStepPost())

	// Any session (an incomplete one is sent to its next step).
	mux.Handle("POST /logout", s.handleLogout())
	mux.Handle("GET /{$}", s.handleHome())
	mux.Handle("GET /api/session", s.handleAPISession())
	mux.Handle("GET /account", s.handleAccount())

	// TOTP enrollment and removal (removal asks for the password again).
	mux.Handle("GET /account/totp", s.handleTOTPPage())
	mux.Handle("POST /account/totp", s.handleTOTPStart())
	mux.Handle("GET /account/totp/qr.png", s.handleTOTPQR())
	mux.Handle("POST /account/totp/confirm", s.handleTOTPConfirm())
	mux.Handle("POST /account/totp/remove", s.handleTOTPRemove())
	mux.Handle("POST /api/account/totp", s.handleTOTPStart())
	mux.Handle("POST /api/account/totp/confirm", s.handleTOTPConfirm())
	mux.Handle("DELETE /api/account/totp", s.handleTOTPRemove())

	// One's own device certificates: list, and revoke a lost one (the
	// password asked again).
	mux.Handle("GET /account/certificates", s.handleDevices())
	mux.Handle("GET /api/account/certificates", s.handleDevices())
	mux.Handle("POST /account/certificates/{id}/revoke", s.handleRevokeOwnCertificate())
	mux.Handle("POST /api/account/certificates/{id}/revoke", s.handleRevokeOwnCertificate())

	// A certificate for a new device: requested on that device, approved
	// by number matching from a device that has the account's certificate
	// (or by the help desk below), issued once to the requesting session.
	// Renewal needs the certificate being renewed on the connection.
	mux.Handle("GET /account/enrollments", s.handleEnrollments())
	mux.Handle("GET /api/account/enrollments", s.handleEnrollments())
	mux.Handle("POST /account/enrollments", s.handleEnrollmentCreate())
	mux.Handle("POST /api/account/enrollments", s.handleEnrollmentCreate())
	mux.Handle("POST /account/enrollments/{id}/approve", s.handleEnrollmentApprove())
	mux.Handle("POST /api/account/enrollments/{id}/approve", s.handleEnrollmentApprove())
	mux.Handle("POST /account/enrollments/{id}/cancel", s.handleEnrollmentCancel())
	mux.Handle("DELETE /api/account/enrollments/{id}", s.handleEnrollmentCancel())
	mux.Handle("POST /account/enrollments/{id}/issue", s.handleEnrollmentIssue())
	mux.Handle("POST /api/account/enrollments/{id}/issue", s.handleEnrollmentIssue())
	mux.Handle("POST /account/certificates/{id}/renew", s.handleRenew())
	mux.Handle("POST /api/account/certificates/{id}/renew", s.handleRenew())

	// Any session, including one that must change its password first.
	mux.Handle("GET /account/password", s.handlePasswordGet())
	mux.Handle("POST /account/password", s.handlePasswordPost())
	mux.Handle("POST /api/account/password", s.handlePasswordPost())

	// Admin console API: the effective role admin (its certificate, by
	// default) on this request.
	admin := func(h func(http.ResponseWriter, *http.Request, *visit)) http.Handler {
		return s.requireRole(h, roleAdmin)
	}
	mux.Handle("GET /api/admin/users", admin(s.apiAdminUsers))
	mux.Handle("POST /api/admin/users", admin(s.apiAdminCreateUser))
	mux.Handle("GET /api/admin/users/{name}", admin(s.apiAdminUser))
	mux.Handle("PATCH /api/admin/users/{name}", admin(s.apiAdminUpdateUser))
	mux.Handle("DELETE /api/admin/users/{name}", admin(apiDelete(s, s.deleteUser)))
	mux.Handle("DELETE /api/admin/users/{name}/sessions", admin(s.apiAdminRevokeSessions))
	mux.Handle("DELETE /api/admin/users/{name}/sessions/{handle}", admin(s.apiAdminRevokeSessions))
	mux.Handle("GET /api/admin/roles", admin(s.apiAdminRoles))
	mux.Handle("GET /api/admin/roles/{name}", admin(apiGet(s, "role", s.store.Role, roleView)))
	mux.Handle("PUT /api/admin/roles/{name}", admin(apiPut(s, func(j *roleJSON) *string { return &j.Name }, s.putRole, roleView)))
	mux.Handle("DELETE /api/admin/roles/{name}", admin(apiDelete(s, s.deleteRole)))
	mux.Handle("GET /api/admin/certificates", admin(s.apiAdminCertificates))
	mux.Handle("POST /api/admin/certificates/{id}/revoke", admin(s.apiAdminRevokeCertificate))
	mux.Handle("GET /api/admin/sessions", admin(s.apiAdminSessions))
	mux.Handle("GET /api/admin/audit", admin(s.apiAdminAudit))
	mux.Handle("GET /api/admin/apps", admin(apiList(s, "apps", s.store.Apps, appView)))
	mux.Handle("GET /api/admin/apps/{name}", admin(apiGet(s, "app", s.store.App, appView)))
	mux.Handle("PUT /api/admin/apps/{name}", admin(apiPut(s, func(j *appJSON) *string { return &j.Name }, s.putApp, appView)))
	mux.Handle("DELETE /api/admin/apps/{name}", admin(apiDelete(s, s.deleteApp)))
	mux.Handle("GET /api/admin/oidc-clients", admin(apiList(s, "clients", s.store.OIDCClients, oidcClientView)))
	mux.Handle("GET /api/admin/oidc-clients/{name}", admin(apiGet(s, "client", s.store.OIDCClient, oidcClientView)))
	mux.Handle("PUT /api/admin/oidc-clients/{name}", admin(apiPut(s, func(j *oidcClientJSON) *string { return &j.ID }, s.putOIDCClient, issuedClientView)))
	mux.Handle("DELETE /api/admin/oidc-clients/{name}", admin(apiDelete(s, s.deleteOIDCClient)))

	// Admin console pages: the same operations and rules as the API.
	mux.Handle("GET /admin", admin(s.pageAdminUsers))
	mux.Handle("POST /admin/users", admin(s.formCreateUser))
	mux.Handle("GET /admin/users/{name}", admin(s.pageAdminUser))
	mux.Handle("POST /admin/users/{name}", admin(s.formUpdateUser))
	mux.Handle("POST /admin/users/{name}/disable", admin(s.formSetDisabled(true)))
	mux.Handle("POST /admin/users/{name}/enable", admin(s.formSetDisabled(false)))
	mux.Handle("POST /admin/users/{name}/delete", admin(s.formDeleteUser))
	mux.Handle("POST /admin/users/{name}/sessions/revoke", admin(s.formRevokeSessions))
	mux.Handle("GET /admin/roles", admin(s.pageAdminRoles))
	mux.Handle("POST /admin/roles", admin(s.formPutRole))
	mux.Handle("POST /admin/roles/{name}/delete", admin(s.formDeleteRole))
	mux.Handle("GET /admin/sessions", admin(s.pageAdminSessions))
	mux.Handle("GET /admin/certificates", admin(s.pageAdminCertificates))
	mux.Handle("POST /admin/certificates/{id}/revoke", admin(s.formRevokeCertificate))
	mux.Handle("GET /admin/audit", admin(s.pageAdminAudit))
	mux.Handle("GET /admin/apps", admin(s.pageAdminApps))
	mux.Handle("POST /admin/apps", admin(s.formPutApp))
	mux.Handle("POST /admin/apps/{name}/delete", admin(s.formDeleteApp))
	mux.Handle("GET /admin/oidc-clients", admin(s.pageAdminOIDCClients))
	mux.Handle("POST /admin/oidc-clients", admin(s.formPutOIDCClient))
	mux.Handle("POST /admin/oidc-clients/{name}/delete", admin(s.formDeleteOIDCClient))

	// Help-desk API: the effective role helpdesk, or admin. Targets holding
	// admin or helpdesk are refused unless the actor is an admin.
	helpdesk := func(h func(http.ResponseWriter, *http.Request, *visit)) http.Handler {
		return s.requireRole(h, roleHelpdesk, roleAdmin)
	}
	mux.Handle("GET /api/helpdesk/users", helpdesk(s.apiHelpdeskUsers))
	mux.Handle("POST /api/helpdesk/users/{name}/{action}", helpdesk(s.apiHelpdeskAction))
	mux.Handle("GET /api/helpdesk/users/{name}/enrollments", helpdesk(s.apiHelpdeskEnrollments))
	mux.Handle("POST /api/helpdesk/users/{name}/enrollments/{id}/approve", helpdesk(s.apiHelpdeskApprove))
	mux.Handle("POST /helpdesk/users/{name}/enrollments/{id}/approve", helpdesk(s.formHelpdeskApprove))
	mux.Handle("POST /api/helpdesk/users/{name}/certificate", helpdesk(s.apiIssueCertificate))
	mux.Handle("POST /helpdesk/users/{name}/certificate", helpdesk(s.formIssueCertificate))
	mux.Handle("GET /helpdesk", helpdesk(s.pageHelpdesk))
	mux.Handle("GET /helpdesk/users/{name}", helpdesk(s.pageHelpdeskUser))
	mux.Handle("POST /helpdesk/users/{name}/{action}", helpdesk(s.formHelpdeskAction))

	// OpenID Provider for apps that sign people in with OpenID Connect
	// (oidc.go). Package op serves the protocol; /oauth2/login is where an
	// app's request meets the portal session and its roles in effect. The
	// token and userinfo endpoints are called by apps' servers (no Origin,
	// so cross-origin protection lets them through); authorization is a
	// GET, and no form leads to an app except the sign-in forms, whose CSP
	// allows the app's redirect URI (allowFormRedirect).
	mux.Handle("GET /.well-known/openid-configuration", s.handleOIDCDiscovery())
	// The authorize step sets a cookie that ties the request to this
	// browser; the login, refusal and callback steps require it
	// (oidc_binding.go).
	mux.Handle("GET /oauth2/authorize", s.bindOIDCRequests(s.handleOIDC()))
	mux.Handle("GET /oauth2/authorize/callback", s.requireOIDCBinding(s.handleOIDC()))
	mux.Handle("POST /oauth2/token", s.handleOIDC())
	mux.Handle("GET /oauth2/userinfo", s.handleOIDC())
	mux.Handle("POST /oauth2/userinfo", s.handleOIDC())
	mux.Handle("GET /oauth2/jwks", s.handleOIDC())
	mux.Handle("GET /oauth2/login", s.requireOIDCBinding(s.handleOIDCLogin()))
	mux.Handle("GET /oauth2/refuse", s.requireOIDCBinding(s.handleOIDCRefuse()))

	mux.Handle("/", s.handleNotFound())
}

// addProxyRoutes is the map of the verify socket (gatehouse serve
// --verify-socket, socket.go): plain HTTP on a Unix socket, for the auth
// subrequests of a proxy on the same host. Least privilege: the socket
// serves forward auth and liveness, nothing a browser could use (no
// sign-in, no session API, no admin), and answers every other path 404
// in JSON. Requests on it count as from a trusted proxy (the forwarded
// client certificate and X-Forwarded-For are read) and are wrapped by
// s.secure like the portal's own.
func (s *Server) addProxyRoutes(mux *http.ServeMux) {
	mux.Handle("GET /auth/verify", s.handleVerify())
	mux.Handle("GET /healthz", s.handleHealthz())

	mux.Handle("/", s.handleNotFound())
}
