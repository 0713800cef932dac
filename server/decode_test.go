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

// A body the API does not read is refused, never taken as no input: a
// PUT that replaces the admin role with an unread body would otherwise
// leave a role that requires nothing. Unknown form fields are refused,
// as unknown JSON fields are.
func TestDecodeInput_BodyItDoesNotReadIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
	}{
		{"JSON", "application/json", `{"require_certificate":true}`, 0},
		{"JSON with a charset", "application/json; charset=utf-8", `{"require_certificate":true}`, 0},
		{"JSON sent as a form (curl -d)", "application/x-www-form-urlencoded", `{"require_certificate":true}`, http.StatusUnsupportedMediaType},
		{"no Content-Type", "", `{"require_certificate":true}`, http.StatusUnsupportedMediaType},
		{"text/plain", "text/plain", `{"require_certificate":true}`, http.StatusUnsupportedMediaType},
		{"no Content-Type, no body", "", ``, 0},
		{"a form", "application/x-www-form-urlencoded", `description=books`, 0},
		{"a form with a field the route does not take", "application/x-www-form-urlencoded", `descripton=books`, http.StatusBadRequest},
		{"multipart (curl -F)", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"require_certificate\"\r\n\r\ntrue\r\n--x--\r\n", http.StatusUnsupportedMediaType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPut, "/api/admin/roles/admin", strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			var in struct {
				Description        string `json:"description"`
				RequireCertificate bool   `json:"require_certificate"`
			}
			err := decodeInput(req, &in)
			switch {
			case tc.status == 0 && err != nil:
				t.Errorf("decodeInput = %v, want it read", err)
			case tc.status != 0 && (err == nil || asError(err).Status != tc.status || asError(err).Message == ""):
				t.Errorf("decodeInput = %v (read %+v), want %d with plain words", err, in, tc.status)
			}
		})
	}
}

// A DELETE's form body is read like a POST's: net/http's ParseForm skips
// it, and a password sent that way must not be read as none.
func TestDecodeInput_DeleteWithAFormIsRead(t *testing.T) {
	req := httptest.NewRequest(http.MethodDelete, "/api/account/totp", strings.NewReader("password=hunter2+hunter2"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var in struct {
		Password string `json:"password"`
	}
	if err := decodeInput(req, &in); err != nil || in.Password != "hunter2 hunter2" {
		t.Errorf("decodeInput of a DELETE's form = %v, password %q; want it read", err, in.Password)
	}
}
