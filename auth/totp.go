package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters (RFC 6238): what every authenticator app supports.
const (
	TOTPPeriod = 30 * time.Second
	TOTPDigits = otp.DigitsSix
	// TOTPSkew is how many periods before or after now a code may come
	// from, for clocks that drift.
	TOTPSkew = 1
	// TOTPIssuer names the portal in authenticator apps.
	TOTPIssuer = "Gatehouse"
)

// totpOpts are the validation options matching the constants above.
var totpOpts = totp.ValidateOpts{Period: uint(TOTPPeriod / time.Second), Digits: TOTPDigits, Algorithm: otp.AlgorithmSHA1}

// ErrBadTOTP means a TOTP or recovery code is wrong.
var ErrBadTOTP = errors.New("the code is not right")

// NewTOTPKey makes a new random TOTP secret for account (160 bits, as
// RFC 4226 recommends) and its otpauth:// URL for a QR code.
func NewTOTPKey(account string) (*otp.Key, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      TOTPIssuer,
		AccountName: account,
		Period:      totpOpts.Period,
		Digits:      totpOpts.Digits,
		Algorithm:   totpOpts.Algorithm,
		SecretSize:  20,
	})
	if err != nil {
		return nil, fmt.Errorf("generate TOTP key: %w", err)
	}
	return key, nil
}

// TOTPURL returns the otpauth:// URL for an existing secret.
func TOTPURL(account, secret string) string {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: TOTPIssuer, AccountName: account, Period: totpOpts.Period,
		Digits: totpOpts.Digits, Algorithm: totpOpts.Algorithm, Secret: mustBase32(secret),
	})
	if err != nil {
		return ""
	}
	return key.URL()
}

// TOTPStep is the RFC 6238 time step (counter) of t.
func TOTPStep(t time.Time) int64 { return t.Unix() / int64(TOTPPeriod/time.Second) }

// VerifyTOTP checks code against secret at now, allowing TOTPSkew steps
// either way, and returns the time step the code belongs to: the caller
// records it so that the same code is never accepted twice. Codes are
// compared in constant time.
func VerifyTOTP(secret, code string, now time.Time) (int64, error) {
	code = strings.TrimSpace(strings.ReplaceAll(code, " ", ""))
	if len(code) != TOTPDigits.Length() {
		return 0, ErrBadTOTP
	}
	step := TOTPStep(now)
	for d := -TOTPSkew; d <= TOTPSkew; d++ {
		s := step + int64(d)
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*int64(TOTPPeriod/time.Second), 0), totpOpts)
		if err != nil {
			return 0, fmt.Errorf("TOTP secret: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return s, nil
		}
	}
	return 0, ErrBadTOTP
}

// RecoveryCodeCount is how many recovery codes an enrollment gets.
const RecoveryCodeCount = 10

// recoveryAlphabet leaves out characters that are easy to misread.
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// NewRecoveryCodes returns RecoveryCodeCount single-use codes of the form
// "xxxxx-xxxxx" (about 50 bits each), to be shown once.
func NewRecoveryCodes() []string {
	codes := make([]string, RecoveryCodeCount)
	for i := range codes {
		var b strings.Builder
		for j := range 10 {
			if j == 5 {
				b.WriteByte('-')
			}
			b.WriteByte(recoveryAlphabet[randIndex(len(recoveryAlphabet))])
		}
		codes[i] = b.String()
	}
	return codes
}

func randIndex(n int) int {
	limit := 256 - 256%n
	for {
		var b [1]byte
		rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// NormalizeRecoveryCode lower-cases a typed code and drops spaces and
// dashes, so "ABCDE FGHJK" and "abcde-fghjk" are the same code.
func NormalizeRecoveryCode(code string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return r
	}, code)
}

// HashRecoveryCode returns the stored form of a recovery code: an
// HMAC-SHA256 under a key kept outside the store, so a store dump alone
// cannot be searched for codes.
func HashRecoveryCode(key []byte, code string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(NormalizeRecoveryCode(code)))
	return hex.EncodeToString(m.Sum(nil))
}

// MatchRecoveryCode returns the index in hashes of code's hash, or -1,
// comparing every entry in constant time.
func MatchRecoveryCode(key []byte, hashes []string, code string) int {
	want := []byte(HashRecoveryCode(key, code))
	found := -1
	for i, h := range hashes {
		if subtle.ConstantTimeCompare([]byte(h), want) == 1 {
			found = i
		}
	}
	return found
}

func mustBase32(secret string) []byte {
	b, err := b32.DecodeString(strings.ToUpper(secret))
	if err != nil {
		return nil
	}
	return b
}
