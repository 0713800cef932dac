package auth

import (
	"strings"
	"testing"
	"time"
)

func TestDeviceCookies(t *testing.T) {
	t.Parallel()
	key := []byte("a server key of at least thirty-two bytes")
	c := NewDeviceCookies(key)
	now := time.Date(2026, 5, 3, 9, 0, 0, 0, time.UTC)
	const hash = "$2a$12$somebcrypthashofalicespassword.............................."
	alice := c.Issue("alice", hash, now)

	// flip changes one character of the part i of a cookie value.
	flip := func(v string, i int) string {
		f := strings.Split(v, ".")
		b := []byte(f[i])
		b[0] ^= 1
		f[i] = string(b)
		return strings.Join(f, ".")
	}
	tests := []struct {
		name  string
		value string
		at    time.Time
		hash  string
		// parses: the MAC verifies and the cookie has not expired;
		// counts: it also still counts for the account (Current).
		parses, counts bool
	}{
		{"a cookie just set counts", alice, now, hash, true, true},
		{"a cookie counts until the end of its lifetime", alice, now.Add(DeviceCookieLifetime - time.Second), hash, true, true},
		{"an expired cookie does not", alice, now.Add(DeviceCookieLifetime), hash, false, false},
		{"a cookie from the future does not", alice, now.Add(-time.Hour), hash, false, false},
		{"a cookie set before the password changed does not count", alice, now, "$2a$12$anotherhash", true, false},
		{"another server key's cookie does not parse", NewDeviceCookies([]byte("another server key of thirty-two bytes!")).Issue("alice", hash, now), now, hash, false, false},
		{"the session key itself does not sign device cookies", signedWith(key, "alice", hash, now), now, hash, false, false},
		{"a changed account name does not parse", flip(alice, 1), now, hash, false, false},
		{"a changed nonce does not parse", flip(alice, 2), now, hash, false, false},
		{"a changed time does not parse", flip(alice, 3), now, hash, false, false},
		{"a changed stamp does not parse", flip(alice, 4), now, hash, false, false},
		{"a changed MAC does not parse", flip(alice, 5), now, hash, false, false},
		{"a truncated cookie does not parse", alice[:len(alice)-4], now, hash, false, false},
		{"an empty value does not parse", "", now, hash, false, false},
		{"garbage does not parse", "v1.....", now, hash, false, false},
		{"an overlong value does not parse", alice + strings.Repeat("A", 600), now, hash, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, ok := c.Parse(tc.value, tc.at)
			if ok != tc.parses {
				t.Fatalf("Parse = %v, want %v", ok, tc.parses)
			}
			if !ok {
				return
			}
			if tok.Account != "alice" || tok.Nonce == "" || !tok.IssuedAt.Equal(now) {
				t.Errorf("token = %+v, want alice's with a nonce, issued at %v", tok, now)
			}
			if got := c.Current(tok, tc.hash); got != tc.counts {
				t.Errorf("Current = %v, want %v", got, tc.counts)
			}
		})
	}
}

// signedWith makes a device cookie whose MAC is keyed with the raw
// server key instead of the derived one.
func signedWith(key []byte, account, hash string, now time.Time) string {
	return (&DeviceCookies{key: key}).Issue(account, hash, now)
}

func TestDeviceCookies_EachSignInNamesANewDevice(t *testing.T) {
	t.Parallel()
	c := NewDeviceCookies([]byte("a server key of at least thirty-two bytes"))
	now := time.Now()
	a, _ := c.Parse(c.Issue("alice", "h", now), now)
	b, _ := c.Parse(c.Issue("alice", "h", now), now)
	if a.Nonce == b.Nonce || CookieDevice(a) == CookieDevice(b) {
		t.Errorf("two cookies share the nonce %q", a.Nonce)
	}
}

// A cookie names one account: Bob's cookie says "bob", whatever
// username a sign-in types, and cannot be edited to say "alice".
func TestDeviceCookies_BelongToOneAccount(t *testing.T) {
	t.Parallel()
	c := NewDeviceCookies([]byte("a server key of at least thirty-two bytes"))
	now := time.Now()
	bob := c.Issue("bob", "same hash", now)
	tok, ok := c.Parse(bob, now)
	if !ok || tok.Account != "bob" {
		t.Fatalf("Parse = %+v, %v; want bob's token", tok, ok)
	}
	f := strings.Split(bob, ".")
	f[1] = b64.EncodeToString([]byte("alice"))
	if _, ok := c.Parse(strings.Join(f, "."), now); ok {
		t.Error("a cookie edited to name alice parses")
	}
	// Even with the same password hash, bob's stamp is not alice's.
	tok.Account = "alice"
	if c.Current(tok, "same hash") {
		t.Error("bob's stamp counts for alice")
	}
}

func TestDeviceCounter_UnlockEpochStartsAFreshCount(t *testing.T) {
	t.Parallel()
	if DeviceCounter("alice", 0, "cookie-X") == DeviceCounter("alice", 1, "cookie-X") {
		t.Error("the device counter does not change with the epoch")
	}
	if DeviceCounter("alice", 0, "cookie-X") == DeviceCounter("bob", 0, "cookie-X") {
		t.Error("two accounts share a device counter")
	}
	if DeviceCounter("alice", 0, "cookie-X") == FailureCounter(CounterPassword, "alice") {
		t.Error("a device shares the account's counter")
	}
}

// FuzzDeviceCookiesParse feeds Parse outside input: it never panics, and
// the only value that parses is the one the signer made (anything else
// would be a forgery).
func FuzzDeviceCookiesParse(f *testing.F) {
	c := NewDeviceCookies([]byte("a server key of at least thirty-two bytes"))
	now := time.Date(2026, 5, 3, 9, 0, 0, 0, time.UTC)
	valid := c.issue("alice", "$2a$12$hash", "FIXEDNONCEFORTHEFUZZTEST2", now) // the same in every fuzz worker
	for _, seed := range []string{valid, "", ".", "v1.....", valid + ".", "v2" + valid[2:], strings.ReplaceAll(valid, ".", "..")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		if _, ok := c.Parse(value, now); ok && value != valid {
			t.Errorf("Parse accepted %q, which the signer never made", value)
		}
	})
}
