package auth

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// rfc6238Secret is the SHA-1 test key of RFC 6238 appendix B,
// "12345678901234567890", in base32.
const rfc6238Secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

// TestTOTP_RFC6238Vectors checks the generator configuration Gatehouse
// relies on against RFC 6238's SHA-1 vectors: 8 digits as published, and
// the 6 digits we use (the last six of the same truncation).
func TestTOTP_RFC6238Vectors(t *testing.T) {
	vectors := []struct {
		unix int64
		code string
	}{
		{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"},
		{1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
	}
	for _, v := range vectors {
		at := time.Unix(v.unix, 0)
		got8, err := totp.GenerateCodeCustom(rfc6238Secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsEight, Algorithm: otp.AlgorithmSHA1})
		if err != nil || got8 != v.code {
			t.Errorf("8 digits at %d: got %q, %v; want %q", v.unix, got8, err, v.code)
		}
		step, err := VerifyTOTP(rfc6238Secret, v.code[2:], at)
		if err != nil {
			t.Errorf("6-digit code %s at %d refused: %v", v.code[2:], v.unix, err)
		}
		if step != v.unix/30 {
			t.Errorf("step at %d = %d, want %d", v.unix, step, v.unix/30)
		}
	}
}

func TestVerifyTOTP_Skew(t *testing.T) {
	now := time.Unix(1111111111, 0)
	code := func(at time.Time) string {
		c, err := totp.GenerateCodeCustom(rfc6238Secret, at, totpOpts)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name   string
		offset time.Duration
		ok     bool
	}{
		{"current step", 0, true},
		{"one step behind", -30 * time.Second, true},
		{"one step ahead", 30 * time.Second, true},
		{"two steps behind", -60 * time.Second, false},
		{"two steps ahead", 60 * time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyTOTP(rfc6238Secret, code(now.Add(tc.offset)), now)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef", "      "} {
		if _, err := VerifyTOTP(rfc6238Secret, bad, now); !errors.Is(err, ErrBadTOTP) {
			t.Errorf("code %q: err = %v, want ErrBadTOTP", bad, err)
		}
	}
	if _, err := VerifyTOTP(rfc6238Secret, "081 804", time.Unix(1111111109, 0)); err != nil {
		t.Errorf("a code typed with a space was refused: %v", err)
	}
}

func TestNewTOTPKey_AppCompatible(t *testing.T) {
	key, err := NewTOTPKey("alice")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(key.URL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || q.Get("issuer") != TOTPIssuer || q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
		t.Errorf("otpauth URL %s", key.URL())
	}
	if len(mustBase32(key.Secret())) != 20 {
		t.Errorf("secret is %d bytes, want 20", len(mustBase32(key.Secret())))
	}
	if TOTPURL("alice", key.Secret()) != key.URL() {
		t.Errorf("TOTPURL = %s, want %s", TOTPURL("alice", key.Secret()), key.URL())
	}
}

func TestRecoveryCodes(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	codes := NewRecoveryCodes()
	if len(codes) != RecoveryCodeCount {
		t.Fatalf("%d codes", len(codes))
	}
	seen := map[string]bool{}
	hashes := make([]string, len(codes))
	for i, c := range codes {
		if len(c) != 11 || c[5] != '-' || seen[c] {
			t.Fatalf("bad or repeated code %q", c)
		}
		seen[c] = true
		hashes[i] = HashRecoveryCode(key, c)
		if strings.Contains(hashes[i], c) {
			t.Fatal("hash contains the code")
		}
	}
	if got := MatchRecoveryCode(key, hashes, strings.ToUpper(strings.ReplaceAll(codes[3], "-", " "))); got != 3 {
		t.Errorf("typed variant matched %d, want 3", got)
	}
	if got := MatchRecoveryCode(key, hashes, "zzzzz-zzzzz"); got != -1 {
		t.Errorf("unknown code matched %d", got)
	}
	if got := MatchRecoveryCode([]byte("another key, another key, anothe"), hashes, codes[0]); got != -1 {
		t.Errorf("code matched under another key")
	}
	if slices.Contains(hashes, "") {
		t.Error("empty hash")
	}
}

func TestSealer(t *testing.T) {
	key := make([]byte, SecretKeyBytes)
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.Seal([]byte("JBSWY3DPEHPK3PXP"), "alice")
	if strings.Contains(sealed, "JBSWY3DPEHPK3PXP") {
		t.Fatal("sealed value shows the secret")
	}
	if got, err := s.Open(sealed, "alice"); err != nil || string(got) != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(sealed, "bob"); !errors.Is(err, ErrWrongSecretKey) {
		t.Errorf("opened under another account: %v", err)
	}
	other := make([]byte, SecretKeyBytes)
	other[0] = 1
	s2, _ := NewSealer(other)
	if _, err := s2.Open(sealed, "alice"); !errors.Is(err, ErrWrongSecretKey) {
		t.Errorf("opened with another key: %v", err)
	}
	if _, err := NewSealer(key[:16]); err == nil {
		t.Error("short key accepted")
	}
}

func TestFailureDelay(t *testing.T) {
	tests := map[int]time.Duration{0: 0, 4: 0, 5: time.Second, 6: 2 * time.Second, 10: 32 * time.Second, 15: MaxFailureDelay, 99: MaxFailureDelay, 1 << 30: MaxFailureDelay}
	for n, want := range tests {
		if got := FailureDelay(n); got != want {
			t.Errorf("FailureDelay(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestRandomPassword_LengthAndAlphabet(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p := RandomPassword()
		if len(p) != 24 || strings.Trim(p, passwordAlphabet) != "" || seen[p] {
			t.Fatalf("bad or repeated password %q", p)
		}
		seen[p] = true
		if err := CheckNewPassword(p, "alice", "alice@example.com"); err != nil {
			t.Fatalf("a random password fails the rules: %v", err)
		}
	}
}
