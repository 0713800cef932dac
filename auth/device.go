package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// A known device is one the account's owner has signed in on before: it
// presents a verified certificate bound to the account, or carries a
// device cookie from an earlier successful sign-in on it (OWASP's "Slow
// Down Online Guessing Attacks with Device Cookies"). Its sign-ins are
// checked ahead of anonymous ones (Hasher.CheckKnown) and against a
// failure count of their own, so a flood or a guessing run from other
// devices neither slows nor locks out the owner.

// DeviceCookieLifetime is how long a device cookie counts after the
// sign-in that set it. Every successful sign-in on the device sets a new
// one.
const DeviceCookieLifetime = 180 * 24 * time.Hour

// Limits on consecutive failed sign-ins from one known device. They are
// counted apart from the account's own count (which counts unknown
// devices only) and are much smaller: a device that fails
// KnownDeviceMaxFailures times in a row is treated as unknown from then
// on (OWASP's lockout list), until a successful sign-in on it or an
// unlock. Delays before that follow FailureDelay.
const (
	KnownDeviceMaxFailures = 10
	// KnownDeviceLockMemory is how long a device stays demoted to
	// unknown: as long as its cookie could count anyway.
	KnownDeviceLockMemory = DeviceCookieLifetime
)

// DeviceCounter names the count of consecutive failed sign-ins of user
// from one known device (CookieDevice, CertificateDevice). epoch is the
// account's DeviceEpochCounter: an unlock moves it on, and so starts
// every device of the account on a fresh count.
func DeviceCounter(user string, epoch int, device string) string {
	return "password-device:" + strconv.Itoa(epoch) + ":" + device + ":" + user
}

// DeviceEpochCounter names the counter that an unlock of user increments
// (with a lifetime of LockForever): the known devices' failure counts
// cannot be listed, so they are left behind under the old epoch instead.
func DeviceEpochCounter(user string) string { return "device-epoch:" + user }

// CookieDevice names the device of a device cookie in its counters.
func CookieDevice(t DeviceToken) string { return "cookie-" + t.Nonce }

// CertificateDevice names the device of a certificate in its counters:
// by its public key, which a certificate renewed with the same key keeps
// and which a re-encoded certificate cannot change.
func CertificateDevice(info *CertInfo) string {
	return "key-" + strings.TrimPrefix(info.KeyPin, "sha256:")
}

// DeviceToken is what a device cookie says.
type DeviceToken struct {
	// Account is the account that signed in on the device.
	Account string
	// Nonce is random: it tells one device of the account from another.
	Nonce    string
	IssuedAt time.Time
	// stamp ties the cookie to the password in force when it was set.
	stamp string
}

// deviceCookieVersion starts every device cookie value, so that the
// format can change without old cookies being misread.
const deviceCookieVersion = "v1"

// DeviceCookies makes and checks device cookies. A cookie value is
// "v1.ACCOUNT.NONCE.ISSUED.STAMP.MAC" (account, stamp and MAC in
// unpadded base64url): MAC is HMAC-SHA-256 over everything before it
// under a key of its own, and STAMP is a keyed hash of the account's
// password hash, so that a new password (set by the owner, the help desk
// or an admin) makes every earlier cookie stop counting.
type DeviceCookies struct {
	key []byte
}

// NewDeviceCookies returns the signer for device cookies. secret is a
// server key of at least 32 bytes (the session key); the cookie key is
// derived from it with a label of its own, so a device cookie's MAC and a
// session cookie's signature never share a key.
func NewDeviceCookies(secret []byte) *DeviceCookies {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("gatehouse device cookies v1"))
	return &DeviceCookies{key: m.Sum(nil)}
}

var b64 = base64.RawURLEncoding

// Issue returns a new device cookie value for account, whose current
// bcrypt hash is passwordHash, at time now.
func (c *DeviceCookies) Issue(account, passwordHash string, now time.Time) string {
	return c.issue(account, passwordHash, rand.Text(), now)
}

func (c *DeviceCookies) issue(account, passwordHash, nonce string, now time.Time) string {
	body := strings.Join([]string{deviceCookieVersion, b64.EncodeToString([]byte(account)), nonce,
		strconv.FormatInt(now.Unix(), 10), b64.EncodeToString(c.stamp(account, passwordHash))}, ".")
	return body + "." + b64.EncodeToString(c.mac(body))
}

// Parse returns what a device cookie value says when its MAC verifies
// and it is not older than DeviceCookieLifetime at now. It reads no
// account: a forged or stale cookie is turned away before anything is
// looked up. Whether it still counts for the account is Current's call.
func (c *DeviceCookies) Parse(value string, now time.Time) (DeviceToken, bool) {
	if len(value) > maxDeviceCookieBytes {
		return DeviceToken{}, false
	}
	body, sum, ok := cutLast(value, ".")
	if !ok {
		return DeviceToken{}, false
	}
	mac, err := b64.DecodeString(sum)
	if err != nil || !hmac.Equal(mac, c.mac(body)) {
		return DeviceToken{}, false
	}
	f := strings.Split(body, ".")
	if len(f) != 5 || f[0] != deviceCookieVersion {
		return DeviceToken{}, false
	}
	account, err := b64.DecodeString(f[1])
	if err != nil {
		return DeviceToken{}, false
	}
	unix, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return DeviceToken{}, false
	}
	issued := time.Unix(unix, 0)
	if now.Before(issued.Add(-time.Minute)) || !now.Before(issued.Add(DeviceCookieLifetime)) {
		return DeviceToken{}, false
	}
	return DeviceToken{Account: string(account), Nonce: f[2], IssuedAt: issued, stamp: f[4]}, true
}

// maxDeviceCookieBytes bounds the value Parse looks at: an account name
// of 64 bytes makes a cookie of about 200.
const maxDeviceCookieBytes = 512

// Current reports whether a parsed cookie still counts for the account
// it names, whose current bcrypt hash is passwordHash: the password has
// not changed since the cookie was set.
func (c *DeviceCookies) Current(t DeviceToken, passwordHash string) bool {
	stamp, err := b64.DecodeString(t.stamp)
	return err == nil && hmac.Equal(stamp, c.stamp(t.Account, passwordHash))
}

func (c *DeviceCookies) mac(body string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// stamp is a keyed hash of the password hash: the cookie shows nothing
// about the hash, and changes whenever it does.
func (c *DeviceCookies) stamp(account, passwordHash string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("password stamp\x00" + account + "\x00" + passwordHash))
	return m.Sum(nil)[:16]
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
