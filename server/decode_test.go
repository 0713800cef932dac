package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDecodeInput feeds arbitrary bodies, as JSON and as forms, to the
// one input decoder of the JSON API and the forms: it either decodes or
// answers 400/413 with plain words, and never panics or says 500.
func FuzzDecodeInput(f *testing.F) {
	f.Add(true, `{"name":"bob","roles":["employee"],"password":"x"}`)
	f.Add(true, `{"name":1}`)
	f.Add(true, `{"unknown":true}`)
	f.Add(true, `{"email":"a@b","roles":null,"disabled":true}`)
	f.Add(true, `[`)
	f.Add(true, strings.Repeat(`{"a":`, 200))
	f.Add(false, "name=bob&roles=employee&password=%zz")
	f.Add(false, "name=bob&name=alice&email=%00")
	f.Add(false, strings.Repeat("a=b&", 100))
	f.Fuzz(func(t *testing.T, asJSON bool, body string) {
		req := httptest.NewRequest(http.MethodPost, "/api/admin/users", strings.NewReader(body))
		if asJSON {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Body = http.MaxBytesReader(httptest.NewRecorder(), req.Body, 256)
		var user newUser
		var change userChange
		for _, v := range []any{&user, &change} {
			err := decodeInput(req, v)
			if err == nil {
				continue
			}
			e := asError(err)
			if (e.Status != http.StatusBadRequest && e.Status != http.StatusRequestEntityTooLarge) || e.Message == "" {
				t.Fatalf("decodeInput(%q) = %d %q %q, want 400 or 413 with a message", body, e.Status, e.Code, e.Message)
			}
		}
	})
}
