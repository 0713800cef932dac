package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gatehouse/auth"
	"gatehouse/store"
)

// Error is an error with what the user should see: a status, a stable
// machine code and plain words. The wrapped Err goes to the log only.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when not 0, is sent as Retry-After (seconds).
	RetryAfter int
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	}
	return e.Code
}

func (e *Error) Unwrap() error { return e.Err }

// errUnavailable is what the user sees when the store cannot be reached.
var errUnavailable = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
	Message: "the sign-in service cannot reach its data store right now; nothing was changed, please try again shortly"}

// statusClientClosedRequest is nginx's 499: the client closed the
// connection (or reset its HTTP/2 stream) before the answer was ready.
// Nothing failed on the portal's side, so it is neither a store error
// nor a 5xx, and nobody reads the answer.
const statusClientClosedRequest = 499

// clientGone reports whether err is the request's own cancellation: the
// operation stopped because the client went away. (The portal sets no
// deadline or cancellation of its own on a request's context.)
func clientGone(r *http.Request, err error) bool {
	return errors.Is(err, context.Canceled) && errors.Is(r.Context().Err(), context.Canceled)
}

// asError turns any error into an *Error: store outages become 503, other
// unknown errors a plain 500 with no detail.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, auth.ErrBusy) {
		return &Error{Status: http.StatusServiceUnavailable, Code: "busy", RetryAfter: 2,
			Message: "too many sign-ins are being checked right now; nothing was changed, please try again in a few seconds", Err: err}
	}
	if errors.Is(err, store.ErrEmailTaken) {
		return &Error{Status: http.StatusConflict, Code: "email_taken",
			Message: "another account already uses that email address (emails are compared ignoring case); give each account its own", Err: err}
	}
	if errors.Is(err, store.ErrBadCursor) {
		return &Error{Status: http.StatusBadRequest, Code: "bad_before", Message: "before must be an event id from a previous page; start again from the first page of the audit trail", Err: err}
	}
	if errors.Is(err, store.ErrDataLost) {
		return &Error{Status: http.StatusServiceUnavailable, Code: "data_lost", Err: err,
			Message: "the sign-in service's data store has lost its data (it was restarted without keeping it, or is not the right one); nobody can sign in until an administrator restores it"}
	}
	if errors.Is(err, store.ErrUnavailable) {
		return &Error{Status: errUnavailable.Status, Code: errUnavailable.Code, Message: errUnavailable.Message, Err: err}
	}
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large",
			Message: fmt.Sprintf("the request is larger than %d bytes", maxBytes.Limit), Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal",
		Message: "something went wrong on our side; it has been logged", Err: err}
}

// fail is the one error path: it logs the cause and answers with JSON for
// API clients and an HTML page for people.
//
// A request the client abandoned is answered 499, counted as such and
// logged at DEBUG only: a store call cut short by the client's hang-up
// says nothing about the store, and must not raise a store alert.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if clientGone(r, err) {
		err = &Error{Status: statusClientClosedRequest, Code: "client_closed_request",
			Message: "the request was abandoned before its answer was ready", Err: err}
	}
	e := asError(err)
	s.metrics.failed(e)
	level := s.log.Info
	switch {
	case e.Status == statusClientClosedRequest:
		level = s.log.Debug
	case e.Status >= 500:
		level = s.log.Error
	}
	attrs := []any{"status", e.Status, "code", e.Code, "method", r.Method, "path", r.URL.Path}
	if e.Err != nil {
		attrs = append(attrs, "err", e.Err.Error())
	}
	level("request failed", attrs...)
	if e.Status == statusClientClosedRequest {
		w.WriteHeader(e.Status) // for the access log and metrics; nobody reads it
		return
	}
	setRetryAfter(w, e)
	if e.RetryAfter <= 0 && e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	if wantsJSON(r) {
		s.writeJSON(w, e.Status, map[string]string{"error": e.Message, "code": e.Code})
		return
	}
	p := page{Title: http.StatusText(e.Status), Error: e.Message,
		Data: errorPage{Code: e.Code, Return: safeReturn(r.URL.RequestURI())}}
	if e.Status < 500 && e.Code != "unauthenticated" {
		// Keep the header of a signed-in person (who they are, sign out).
		// Not after a server or store error: that would ask the store
		// again.
		if v, err := s.visit(w, r); err == nil && v != nil && v.Complete() {
			p.Visit = v
		}
	}
	s.render(w, r, e.Status, "error.html", p)
}

// wantsJSON reports whether the client is a script: API and forward-auth
// routes, and everything on the verify socket (a proxy's, never a
// person's), always answer JSON, other routes when asked for it.
func wantsJSON(r *http.Request) bool {
	if fromProxySocket(r) {
		return true
	}
	p := r.URL.Path
	if strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/auth/") {
		return true
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

// writeJSON encodes v into a buffer first, so an encoding error becomes a
// clean 500 rather than half a body.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		s.log.Error("encode JSON", "err", err.Error())
		http.Error(w, `{"error":"internal error","code":"internal"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorPage is the content of an error page: the error's machine code
// and the page to come back to after signing in.
type errorPage struct {
	Code   string
	Return string
}

// page is what every template receives.
type page struct {
	Title string
	// Visit is the signed-in session, or nil.
	Visit *visit
	// Error is a message shown prominently, or empty.
	Error string
	// Data is the page's own content.
	Data any
	// Refresh, when not 0, reloads the page after that many seconds
	// (a page waiting for something to happen elsewhere).
	Refresh int
}

// parsePages parses each page template together with the shared layout.
func parsePages(fsys fs.FS) (map[string]*template.Template, error) {
	names, err := fs.Glob(fsys, "*.html")
	if err != nil {
		return nil, err
	}
	pages := make(map[string]*template.Template)
	for _, name := range names {
		if name == "layout.html" {
			continue
		}
		t, err := template.New(name).Funcs(templateFuncs).ParseFS(fsys, "layout.html", name)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

var templateFuncs = template.FuncMap{
	"join":     strings.Join,
	"duration": humanDuration,
	"when":     humanTime,
	"date":     humanDate,
	"factors":  factorsText,
	"words":    reasonText,
}

// humanTime writes an instant in UTC to the minute, the way every page
// and message writes one: "3 May 2026, 14:05 UTC"; a dash for none.
func humanTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2 January 2006, 15:04 UTC")
}

// factorNames are the factors as pages name them.
var factorNames = map[string]string{auth.FactorPassword: "password", auth.FactorCertificate: "certificate", auth.FactorTOTP: "TOTP code"}

// factorsText names factors for people: "password + certificate".
func factorsText(factors []string) string {
	names := make([]string, 0, len(factors))
	for _, f := range factors {
		if n, ok := factorNames[f]; ok {
			f = n
		}
		names = append(names, f)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, " + ")
}

// humanDuration writes a duration the way a person would: "30 minutes",
// "12 hours", "1 hour 30 minutes".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	unit := func(n int, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case h == 0:
		return unit(m, "minute")
	case m == 0:
		return unit(h, "hour")
	}
	return unit(h, "hour") + " " + unit(m, "minute")
}

// render executes a page into a buffer, then writes it: a template error
// becomes a clean 500 and the content type is never sniffed.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := s.pages[name]
	if !ok {
		s.log.Error("unknown template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		s.log.Error("render template", "name", name, "err", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// audit records an event in the store's audit trail and in the log. The
// time and client address are filled in here. An event that cannot be
// recorded is an error: the caller fails rather than act unrecorded.
func (s *Server) audit(r *http.Request, e store.AuditEvent) error {
	e.Time = s.now().UTC()
	e.ClientAddr = s.clientAddr(r)
	attrs := []any{"action", e.Action, "outcome", e.Outcome, "actor", e.Actor, "client", e.ClientAddr}
	for _, kv := range [][2]string{{"target", e.Target}, {"reason", e.Reason}, {"cert_status", e.CertStatus}, {"cert_fingerprint", e.CertFingerprint}, {"known_device", e.KnownDevice}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	if len(e.ActorFactors) > 0 {
		attrs = append(attrs, "factors", strings.Join(e.ActorFactors, "+"))
	}
	if len(e.Notices) > 0 {
		attrs = append(attrs, "notices", strings.Join(e.Notices, "; "))
	}
	level := slog.LevelInfo
	if e.Outcome == "warning" {
		level = slog.LevelWarn
	}
	s.log.Log(r.Context(), level, "audit", attrs...)
	if e.Action == "login" || e.Action == "login.totp" {
		s.metrics.login(e.Outcome, e.ActorFactors)
	}
	if err := s.store.AppendAudit(r.Context(), e); err != nil {
		return fmt.Errorf("record audit event: %w", err)
	}
	return nil
}

// decodeInput reads a request's input into v: a JSON body for API
// clients, form fields (by the same names as v's json tags) otherwise.
// Malformed input and unknown fields are a 400 with plain words. A body
// it would not read (no
// Content-Type, or another type) is refused with 415, never taken as no
// input: a PUT that replaces a role must not turn an unread body into a
// role without requirements. So is a form whose field looks like JSON
// (curl -d sends JSON as a form unless told otherwise).
func decodeInput(r *http.Request, v any) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			var maxBytes *http.MaxBytesError
			if errors.As(err, &maxBytes) {
				return asError(err)
			}
			return &Error{Status: http.StatusBadRequest, Code: "bad_json", Message: "the request body is not the JSON this route expects", Err: err}
		}
		return nil
	case "application/x-www-form-urlencoded":
	default:
		var one [1]byte
		if n, _ := io.ReadFull(r.Body, one[:]); n == 0 {
			return nil // no body: no input
		}
		return errUnreadBody
	}
	if err := parseFormBody(r); err != nil {
		return badForm(err)
	}
	fields := map[string]string{}
	for k := range r.PostForm {
		if strings.HasPrefix(strings.TrimSpace(k), "{") {
			return errUnreadBody
		}
		fields[k] = r.PostForm.Get(k)
	}
	b, _ := json.Marshal(fields)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return &Error{Status: http.StatusBadRequest, Code: "bad_form", Message: "the form has a field this address does not take: " + name, Err: err}
		}
		return &Error{Status: http.StatusBadRequest, Code: "bad_form", Message: "the form could not be read", Err: err}
	}
	return nil
}

// parseFormBody fills r.PostForm from a form body, for every method:
// net/http's ParseForm reads the body of POST, PUT and PATCH only, and a
// DELETE's form would otherwise be read as no input.
func parseFormBody(r *http.Request) error {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return r.ParseForm()
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	r.PostForm, err = url.ParseQuery(string(b))
	return err
}

// errUnreadBody refuses a body decodeInput does not read.
var errUnreadBody = &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
	Message: "send the request body as JSON with Content-Type: application/json (or as a URL-encoded form); nothing was changed"}

// setRetryAfter sends e's Retry-After, when it has one.
func setRetryAfter(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
}
