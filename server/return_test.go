package server

import (
	"net/url"
	"strings"
	"testing"
)

// returnCases are return URLs (the login form's rd) and whether they are
// kept. Only paths on the portal are; anything a browser could resolve to
// another host is dropped.
var returnCases = []struct {
	rd   string
	keep bool
}{
	{"/", true},
	{"/a?b=c", true},
	{"/x#y", true},
	{"/account/password", true},
	{"//evil.com", false},
	{"/\\evil.com", false},
	{"https://evil.com", false},
	{"http:evil", false},
	{"javascript:alert(1)", false},
	{"/%2F%2Fevil.com", false},
	{"\t//evil", false},
	{"", false},
	{" /x", false},
	{"/a\nb", false},
	{"/a\rb", false},
	{"/\t/evil.com", false},
	{"/\x00", false},
	{"\\\\evil.com", false},
	{"evil.com", false},
	{"///evil.com", false},
	{"/%5Cevil.com", false},
	{"/%5cevil.com", false},
	{"/%2f%2fevil.com", false},
	{"HTTPS://evil.com", false},
	{"https:evil.com", false},
	{"//user@evil.com", false},
	{"/\\evil.com", false},
	{"data:text/html,x", false},
	{"/%00", false},
	{"/a/b?next=//evil.com", true},
	{"/@evil.com", true},
}

func TestReturnURL_OnlyLocalPaths(t *testing.T) {
	t.Parallel()
	for _, tc := range returnCases {
		want := ""
		if tc.keep {
			want = tc.rd
		}
		if got := safeReturn(tc.rd); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", tc.rd, got, want)
		}
	}
}

func FuzzSafeReturn(f *testing.F) {
	for _, tc := range returnCases {
		f.Add(tc.rd)
	}
	f.Fuzz(func(t *testing.T, rd string) {
		got := safeReturn(rd)
		if got == "" {
			return
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.HasPrefix(got, "/\\") {
			t.Fatalf("safeReturn(%q) = %q: not a local path", rd, got)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("safeReturn(%q) = %q, which does not parse: %v", rd, got, err)
		}
		if u.Scheme != "" || u.Host != "" || u.User != nil {
			t.Fatalf("safeReturn(%q) = %q: scheme %q host %q user %v", rd, got, u.Scheme, u.Host, u.User)
		}
		// Resolved the way a browser resolves a Location header, it
		// stays on the portal.
		base, _ := url.Parse("https://portal.example/login")
		if r := base.ResolveReference(u); r.Host != "portal.example" || r.Scheme != "https" {
			t.Fatalf("safeReturn(%q) = %q, which leads to %s", rd, got, r)
		}
	})
}
