package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"gatehouse/auth"
	"gatehouse/store"
)

// Apps are the internal web applications behind forward auth. An app is
// a base URL and the roles that may open it; /auth/verify finds the app
// of the URL a proxy asks about, and the login page returns only to the
// portal itself or to a registered app.

// CheckAppName checks an app's name: the rules of a role name. The admin
// API and the command line both call it, so both refuse the same names
// with the same words.
func CheckAppName(name string) error {
	if err := auth.CheckRoleName(name); err != nil {
		return errors.New(strings.Replace(err.Error(), "role", "app", 1))
	}
	return nil
}

// AppURL checks and normalises an app's base URL: https, a host, an
// optional port, a path ending in "/", nothing else (no user info, query
// or fragment). The host is lower-cased and a default port dropped. The
// admin API and the command line both call it.
func AppURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return "", errors.New(`the URL must look like "https://app.example.com/" (https, a host, an optional port and path)`)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", errors.New("the URL must not carry a user, a query or a fragment")
	}
	if strings.ContainsAny(u.Path, "\\\x00") || strings.Contains(u.Path, "//") {
		return "", errors.New("the URL's path must not contain a backslash, a NUL byte or an empty segment (//)")
	}
	host, ok := asciiHost(u.Hostname())
	if !ok || strings.ContainsAny(host, "*%") {
		return "", errors.New("the URL needs a plain host name (an internationalised name in its xn-- form)")
	}
	port := u.Port()
	if port == "443" {
		port = ""
	}
	u.Host = host
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawPath = ""
	return u.String(), nil
}

// asciiHost lower-cases a host name for comparison, or reports false for
// one that is empty or not plain ASCII. Unicode case folding must not
// decide which app a URL belongs to: strings.ToLower turns "İ" (U+0130)
// into "i", so "wİkİ.example.com", another host, would be the wiki.
// Internationalised names are compared in their ASCII (xn--) form.
func asciiHost(host string) (string, bool) {
	if host == "" {
		return "", false
	}
	b := []byte(host)
	for i, c := range b {
		if c >= 0x80 {
			return "", false
		}
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b), true
}

// appFor returns the app whose base URL the absolute URL raw falls under
// (the longest base URL when several do), or false.
func appFor(apps []store.App, raw string) (store.App, bool) {
	target, ok := normalTarget(raw)
	if !ok {
		return store.App{}, false
	}
	var best store.App
	found := false
	for _, a := range apps {
		if strings.HasPrefix(target, a.URL) && (!found || len(a.URL) > len(best.URL)) {
			best, found = a, true
		}
	}
	return best, found
}

// normalTarget puts an absolute URL in the form of AppURL (scheme, host
// and default port normalised, path as given) for prefix matching, or
// reports false for anything that is not a plain https URL.
func normalTarget(raw string) (string, bool) {
	if len(raw) > 4096 || strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	host, ok := asciiHost(u.Hostname())
	if !ok {
		return "", false
	}
	port := u.Port()
	// The decoded path: a "\" (%5C) is a "/" to some servers behind a
	// proxy (IIS), so "..\" could step out of an app's path unseen.
	if strings.ContainsFunc(u.Path, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "", false
	}
	if port == "443" {
		port = ""
	}
	u.Host = host
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	// Compare on the decoded path, so that an encoded "/" or ".." cannot
	// step out of an app's path, and refuse dot segments outright.
	if strings.Contains(u.Path, "//") {
		return "", false
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		// "..", and "..;x" or ".;x", which servlet containers read as
		// ".." and "." once they drop path parameters.
		if seg == "." || seg == ".." || strings.HasPrefix(seg, "..;") || strings.HasPrefix(seg, ".;") {
			return "", false
		}
	}
	return u.Scheme + "://" + u.Host + u.Path, true
}

// returnTo is the return URL (rd) a login may send the user on to: a path
// on the portal (safeReturn), or an https URL under a registered app. It
// is "" for anything else, which sends the user home.
func (s *Server) returnTo(r *http.Request, rd string) string {
	if local := safeReturn(rd); local != "" || rd == "" || strings.HasPrefix(rd, "/") {
		return local
	}
	apps, err := s.store.Apps(r.Context())
	if err != nil {
		level := s.log.Error
		if clientGone(r, err) {
			level = s.log.Debug
		}
		level("list apps for a return URL", "err", err.Error())
		return ""
	}
	if _, ok := appFor(apps, rd); ok {
		return rd
	}
	return ""
}

// appJSON is an app in the admin API.
type appJSON struct {
	Name  string   `json:"name"`
	URL   string   `json:"url"`
	Roles []string `json:"roles"`
}

// putApp creates or replaces an app.
func (s *Server) putApp(r *http.Request, v *visit, in appJSON) (store.App, bool, error) {
	if err := CheckAppName(in.Name); err != nil {
		return store.App{}, false, invalid("bad_name", err)
	}
	u, err := AppURL(in.URL)
	if err != nil {
		return store.App{}, false, invalid("bad_url", err)
	}
	roles, err := s.checkRoles(r, in.Roles)
	if err != nil {
		if e := asError(err); e.Code == "no_roles" {
			e.Message = "give the app at least one role that may open it"
		}
		return store.App{}, false, err
	}
	apps, err := s.store.Apps(r.Context())
	if err != nil {
		return store.App{}, false, err
	}
	created := true
	for _, a := range apps {
		if a.Name == in.Name {
			created = false
		} else if a.URL == u {
			return store.App{}, false, &Error{Status: http.StatusConflict, Code: "url_taken",
				Message: fmt.Sprintf("the app %s already has the URL %s", a.Name, u)}
		}
	}
	app := store.App{Name: in.Name, URL: u, Roles: roles}
	if err := s.store.PutApp(r.Context(), app); err != nil {
		return app, false, err
	}
	ev := actorEvent(v, "admin.app.put", in.Name, fmt.Sprintf("url %s roles %s", u, strings.Join(roles, ",")))
	return app, created, s.audit(r, ev)
}

// deleteApp removes an app: /auth/verify then denies its URLs.
func (s *Server) deleteApp(r *http.Request, v *visit, name string) error {
	if _, err := s.store.App(r.Context(), name); errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Code: "no_such_app", Message: fmt.Sprintf("there is no app named %q", name)}
	} else if err != nil {
		return err
	}
	if err := s.store.DeleteApp(r.Context(), name); err != nil {
		return err
	}
	return s.audit(r, actorEvent(v, "admin.app.delete", name, ""))
}

// appsFor lists the apps v's effective roles may open, from the app
// definitions the session's one read brought.
func appsFor(v *visit) []store.App {
	return slices.DeleteFunc(slices.Clone(v.apps), func(a store.App) bool { return !mayOpen(v, a) })
}

// mayOpen reports whether v's effective roles include one of a's roles.
func mayOpen(v *visit, a store.App) bool {
	return slices.ContainsFunc(a.Roles, v.Has)
}

func appView(a store.App) appJSON {
	return appJSON{Name: a.Name, URL: a.URL, Roles: nonNil(a.Roles)}
}

// appsPage is the content of /admin/apps.
type appsPage struct {
	Console
	Apps  []store.App
	Roles []roleChoice
	New   appJSON
}

func (s *Server) showApps(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string) {
	d := appsPage{Console: s.console(r, v, "apps")}
	var err error
	if d.Apps, err = s.store.Apps(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	if r.Method == http.MethodPost {
		d.New = appJSON{Name: r.PostFormValue("name"), URL: r.PostFormValue("url"), Roles: r.PostForm["roles"]}
	}
	if d.Roles, err = s.formRoleChoices(r, d.New.Roles, r.Method == http.MethodPost); err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, status, "admin_apps.html", page{Title: "Apps", Visit: v, Error: msg, Data: d})
}

func (s *Server) pageAdminApps(w http.ResponseWriter, r *http.Request, v *visit) {
	s.showApps(w, r, v, http.StatusOK, "")
}

func (s *Server) formPutApp(w http.ResponseWriter, r *http.Request, v *visit) {
	if !s.parseForm(w, r) {
		return
	}
	in := appJSON{Name: strings.TrimSpace(r.PostFormValue("name")), URL: r.PostFormValue("url"), Roles: r.PostForm["roles"]}
	_, _, err := s.putApp(r, v, in)
	s.afterForm(w, r, v, err, "/admin/apps", "app", s.showApps)
}

func (s *Server) formDeleteApp(w http.ResponseWriter, r *http.Request, v *visit) {
	err := s.deleteApp(r, v, r.PathValue("name"))
	s.afterForm(w, r, v, err, "/admin/apps", "app-deleted", s.showApps)
}
