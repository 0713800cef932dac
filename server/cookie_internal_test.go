package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
)

// codecKey is the session key of the codec tests.
var codecKey = []byte("0123456789abcdef0123456789abcdef")

// referenceCodec is securecookie set up as idCodec sets it up: the
// reader idCodec must agree with.
func referenceCodec(maxAge time.Duration) *securecookie.SecureCookie {
	sc := securecookie.New(codecKey, nil)
	sc.MaxAge(int(maxAge / time.Second))
	sc.SetSerializer(idSerializer{})
	return sc
}

// signed makes a cookie value in securecookie's format by hand, signed
// at the Unix time date with key.
func signed(key []byte, name, date, id string) string {
	val := base64.URLEncoding.EncodeToString([]byte(fmt.Sprintf("%q\n", id)))
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s|%s|%s", name, date, val)
	return base64.URLEncoding.EncodeToString(append([]byte(date+"|"+val+"|"), m.Sum(nil)...))
}

// sameVerdict fails t unless idCodec and securecookie read value alike:
// both refuse it, or both read the same ID.
func sameVerdict(t *testing.T, c *idCodec, sc *securecookie.SecureCookie, name, value string) (string, bool) {
	t.Helper()
	var want string
	werr := sc.Decode(name, value, &want)
	got, gerr := c.decodeID(name, value)
	if (werr == nil) != (gerr == nil) || got != want {
		t.Fatalf("Decode(%q, %q): ours %q, %v; securecookie %q, %v", name, value, got, gerr, want, werr)
	}
	return got, gerr == nil
}

// The session cookie's reader accepts exactly what securecookie accepts,
// and reads the same ID: cookies signed before it are read by it, and it
// takes no cookie securecookie would refuse (another key, another
// cookie's name, a changed byte, an expired or malformed date).
func TestIDCodec_ReadsAsSecurecookieDoes(t *testing.T) {
	const name = SessionCookieName
	c, sc := newIDCodec(codecKey, time.Hour), referenceCodec(time.Hour)
	now := time.Now().Unix()
	value, err := c.Encode(name, "0001.abc-DEF_xyz")
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := sameVerdict(t, c, sc, name, value); !ok || id != "0001.abc-DEF_xyz" {
		t.Fatalf("a cookie it signed: %q, %v", id, ok)
	}
	other := []byte("another key, 32 bytes long......")
	tests := []struct {
		name, value string
		accept      bool
	}{
		{"signed by hand, now", signed(codecKey, name, fmt.Sprint(now), "s1"), true},
		{"an ID the JSON decoder reads", signed(codecKey, name, fmt.Sprint(now), "a\"b\\c\u2028"), true},
		{"another key", signed(other, name, fmt.Sprint(now), "s1"), false},
		{"another cookie's name", signed(codecKey, DomainCookieName, fmt.Sprint(now), "s1"), false},
		{"expired", signed(codecKey, name, fmt.Sprint(now-2*3600), "s1"), false},
		{"a date that is not a number", signed(codecKey, name, "12a", "s1"), false},
		{"a signed date with a sign", signed(codecKey, name, fmt.Sprintf("+%d", now), "s1"), true},
		{"empty", "", false},
		{"not base64", "!!!!", false},
		{"one separator", base64.URLEncoding.EncodeToString([]byte("1|2")), false},
		{"too long", strings.Repeat("A", maxCookieValue+4), false},
		{"a character of the other alphabet", strings.ReplaceAll(strings.ReplaceAll(value, "-", "+"), "_", "/"), !strings.ContainsAny(value, "-_")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := sameVerdict(t, c, sc, name, tc.value); ok != tc.accept {
				t.Errorf("accepted: %v, want %v", ok, tc.accept)
			}
		})
	}
}

// FuzzIDCodec: for any ID, any cookie value, and any one byte changed in
// a value the server signed, idCodec and securecookie give the same
// verdict and the same ID.
func FuzzIDCodec(f *testing.F) {
	f.Add("0001.abc", "", 0, byte(0))
	f.Add("s", "MTc5|x|y", 3, byte(1))
	f.Add("a|b", "", 10, byte('|'))
	c, sc := newIDCodec(codecKey, time.Hour), referenceCodec(time.Hour)
	f.Fuzz(func(t *testing.T, id, value string, pos int, x byte) {
		sameVerdict(t, c, sc, SessionCookieName, value)
		enc, err := c.Encode(SessionCookieName, id)
		if err != nil {
			return // too long for a cookie
		}
		// (An ID that is not UTF-8 comes back with U+FFFD, as JSON has
		// it: both readers agree, and the server's IDs are ASCII.)
		if got, ok := sameVerdict(t, c, sc, SessionCookieName, enc); !ok {
			t.Fatalf("its own cookie for %q refused (%q)", id, got)
		}
		b := []byte(enc)
		if pos < 0 {
			pos = -pos
		}
		b[pos%len(b)] ^= x
		sameVerdict(t, c, sc, SessionCookieName, string(b))
	})
}
