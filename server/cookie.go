package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/securecookie"
)

// idCodec signs the session cookie with securecookie and reads it back
// with a reader of its own for the same format, so that cookies from
// before and after are the same cookies. The session cookie is read on
// every request, /auth/verify included: this reader takes its keyed
// HMAC and its buffers from a pool, where securecookie keys a new HMAC
// and allocates for every step.
//
// The format (securecookie, no encryption): base64url of
// "DATE|VALUE|MAC", where DATE is the Unix time of signing in decimal,
// VALUE the base64url of the serialized ID, and MAC the HMAC-SHA256,
// under the session key, of "NAME|DATE|VALUE" for the cookie's NAME.
type idCodec struct {
	sc     *securecookie.SecureCookie
	key    []byte
	maxAge int64
	// states holds *macState: an HMAC-SHA256 keyed with key, whose
	// Reset returns it to its keyed start without hashing the key again,
	// and the buffers a read needs.
	states sync.Pool
}

// macState is what one cookie read works in.
type macState struct {
	mac      hash.Hash
	raw, msg []byte
	sum      [sha256.Size]byte
}

// maxCookieValue is the longest cookie value read, securecookie's
// default limit.
const maxCookieValue = 4096

// errCookieInvalid is any cookie this server did not sign, or signed
// too long ago: the request then has no session.
var errCookieInvalid = errors.New("session cookie: not valid")

func newIDCodec(hashKey []byte, maxAge time.Duration) *idCodec {
	sc := securecookie.New(hashKey, nil)
	sc.MaxAge(int(maxAge / time.Second))
	sc.MaxLength(maxCookieValue)
	sc.SetSerializer(idSerializer{})
	c := &idCodec{sc: sc, key: bytes.Clone(hashKey), maxAge: int64(maxAge / time.Second)}
	c.states.New = func() any { return &macState{mac: hmac.New(sha256.New, c.key)} }
	return c
}

// Encode signs value for the cookie name (securecookie).
func (c *idCodec) Encode(name string, value any) (string, error) {
	return c.sc.Encode(name, value)
}

// decodeID reads the session ID in a cookie value signed by Encode for
// the cookie name.
func (c *idCodec) decodeID(name, value string) (string, error) {
	if len(value) > maxCookieValue {
		return "", errCookieInvalid
	}
	st := c.states.Get().(*macState)
	defer c.states.Put(st)
	// raw is "DATE|VALUE|MAC", and msg what the MAC is of: "NAME|DATE|VALUE".
	st.msg = append(append(st.msg[:0], name...), '|')
	raw, err := base64.URLEncoding.AppendDecode(st.raw[:0], []byte(value))
	st.raw = raw
	if err != nil {
		return "", errCookieInvalid
	}
	// The MAC is binary and may hold '|': it is what follows the second.
	i := bytes.IndexByte(raw, '|')
	if i < 0 {
		return "", errCookieInvalid
	}
	j := bytes.IndexByte(raw[i+1:], '|')
	if j < 0 {
		return "", errCookieInvalid
	}
	j += i + 1
	date, val, mac := raw[:i], raw[i+1:j], raw[j+1:]
	st.msg = append(st.msg, raw[:j]...)
	st.mac.Reset()
	st.mac.Write(st.msg)
	if !hmac.Equal(st.mac.Sum(st.sum[:0]), mac) {
		return "", errCookieInvalid
	}
	// Past the MAC, everything below was written by this server.
	signed, err := strconv.ParseInt(string(date), 10, 64)
	if err != nil {
		return "", errCookieInvalid
	}
	if c.maxAge != 0 && signed < time.Now().Unix()-c.maxAge {
		return "", errCookieInvalid
	}
	// The ID's serialization goes after what raw holds; msg is done with.
	st.msg, err = base64.URLEncoding.AppendDecode(st.msg[:0], val)
	if err != nil {
		return "", errCookieInvalid
	}
	return readID(st.msg)
}
