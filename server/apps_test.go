package server

import (
	"net/url"
	"strings"
	"testing"

	"gatehouse/store"
)

func TestAppURL_Normalises(t *testing.T) {
	for raw, want := range map[string]string{
		"https://Wiki.Example.com":         "https://wiki.example.com/",
		"https://wiki.example.com:443/w":   "https://wiki.example.com/w/",
		"https://wiki.example.com:8443/w/": "https://wiki.example.com:8443/w/",
		" https://[::1]:8443/ ":            "https://[::1]:8443/",
		"http://wiki.example.com/":         "",
		"https:///path":                    "",
		"https://user@wiki.example.com/":   "",
		"https://wiki.example.com/?q=1":    "",
		"https://wiki.example.com/#top":    "",
		"https://*.example.com/":           "",
		"https://wiki.example.com//x/":     "",
		"wiki.example.com":                 "",
		"javascript:alert(1)":              "",
	} {
		got, err := AppURL(raw)
		if want == "" {
			if err == nil {
				t.Errorf("AppURL(%q) = %q, want an error", raw, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("AppURL(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
}

var fuzzApps = []store.App{
	{Name: "wiki", URL: "https://wiki.example.com/"},
	{Name: "ops", URL: "https://ops.example.com:8443/console/"},
	{Name: "ops-api", URL: "https://ops.example.com:8443/console/api/"},
}

// FuzzAppFor checks that a URL is taken for an app only when a browser
// would send it to that app's host and port, under its path, and that
// returnTo never lets a login lead anywhere else.
func FuzzAppFor(f *testing.F) {
	for _, s := range []string{
		"https://wiki.example.com/", "https://WIKI.example.com:443/x", "https://wiki.example.com.evil.net/",
		"https://ops.example.com:8443/console/api/x", "https://ops.example.com:8443/console/../admin",
		"https://ops.example.com:8443/console/%2e%2e/x", "https://ops.example.com:8443/console%2F..%2Fx",
		"https://wiki.example.com\\@evil.net/", "https://evil.net\\@wiki.example.com/", "https://wiki.example.com@evil.net/",
		"//wiki.example.com/", "https:wiki.example.com/", "HTTPS://wiki.example.com/", "https://wiki.example.com:0443/",
		"https://wiki.example.com./", "https://wiki.example.com%2f@evil.net/", "https://[::1]/",
		"https://w\u0130k\u0130.example.com/", "https://w%C4%B0k%C4%B0.example.com/", "https://\u212aops.example.com:8443/console/",
		"https://ops.example.com:8443/console/..%5Cadmin", "https://ops.example.com:8443/console/%00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		app, ok := appFor(fuzzApps, raw)
		if !ok {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("appFor(%q) matched %s, but the URL does not parse: %v", raw, app.Name, err)
		}
		if u.Path == "" {
			u.Path = "/" // what a browser asks for
		}
		base, _ := url.Parse(app.URL)
		port := u.Port()
		if port == "" || port == "443" {
			port = base.Port()
		}
		// Hosts compare by ASCII case only: Unicode folding ("İ" to "i",
		// the Kelvin sign to "k") would make another host this one.
		nonASCII := strings.ContainsFunc(u.Hostname(), func(r rune) bool { return r >= 0x80 })
		if !strings.EqualFold(u.Scheme, "https") || nonASCII || strings.ToLower(u.Hostname()) != base.Hostname() || port != base.Port() || u.User != nil {
			t.Fatalf("appFor(%q) = %s (%s), but a browser would go to %s://%s (port %q)", raw, app.Name, app.URL, u.Scheme, u.Host, u.Port())
		}
		if !strings.HasPrefix(u.Path, base.Path) || strings.Contains(u.Path, "/../") || strings.HasSuffix(u.Path, "/..") {
			t.Fatalf("appFor(%q) = %s, but its path %q is not under %q", raw, app.Name, u.Path, base.Path)
		}
		resolved := u.ResolveReference(&url.URL{})
		if !strings.HasPrefix(resolved.Path, base.Path) {
			t.Fatalf("appFor(%q) = %s, but the path resolves to %q", raw, app.Name, resolved.Path)
		}
	})
}

// A URL matches an app only on the app's own host, compared by ASCII
// case: "İ" (U+0130) lower-cases to "i" in Unicode, but "wİkİ" is another
// host. And a decoded "\\" (%5C), a "/" to some servers behind a proxy,
// cannot step out of an app's path.
func TestAppFor_NoUnicodeCaseFoldingAndNoEncodedBackslash(t *testing.T) {
	apps := []store.App{
		{Name: "wiki", URL: "https://wiki.example.com/", Roles: []string{"employee"}},
		{Name: "public", URL: "https://intranet.example.com/public/", Roles: []string{"employee"}},
		{Name: "intranet", URL: "https://intranet.example.com/", Roles: []string{"admin"}},
	}
	for _, raw := range []string{
		"https://w\u0130k\u0130.example.com/",
		"https://w%C4%B0k%C4%B0.example.com/",
		"https://\u212aiki.example.com/",
		"https://intranet.example.com/public/..%5Cadmin",
		"https://intranet.example.com/public/..%5cadmin/secret",
		"https://intranet.example.com/public/x%00",
	} {
		if app, ok := appFor(apps, raw); ok {
			t.Errorf("appFor(%q) = %s (%s), want no app", raw, app.Name, app.URL)
		}
	}
	if app, ok := appFor(apps, "https://WIKI.Example.COM/page"); !ok || app.Name != "wiki" {
		t.Errorf("appFor of the wiki in capitals = %v %v, want the wiki", app.Name, ok)
	}
	if _, err := AppURL("https://w\u0130ki.example.com/"); err == nil {
		t.Errorf("AppURL took a host that is not plain ASCII")
	}
}
