package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// SecretKeyBytes is the size of the key that encrypts TOTP secrets
// (AES-256).
const SecretKeyBytes = 32

// ErrWrongSecretKey means sealed data does not open with this key: the
// key is not the one it was sealed with, or the data was altered.
var ErrWrongSecretKey = errors.New("the secret key does not open this data (wrong key, or altered data)")

// Sealer encrypts small secrets at rest with AES-256-GCM. Each sealed
// value is bound to a context string (the account name), so a sealed
// secret copied onto another account does not open.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for a SecretKeyBytes key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != SecretKeyBytes {
		return nil, fmt.Errorf("secret key must be %d bytes, got %d", SecretKeyBytes, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext for context; the result is printable.
func (s *Sealer) Seal(plaintext []byte, context string) string {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	out := s.aead.Seal(nonce, nonce, plaintext, []byte(context))
	return "v1:" + base64.RawStdEncoding.EncodeToString(out)
}

// Open decrypts a value made by Seal for the same context.
func (s *Sealer) Open(sealed, context string) ([]byte, error) {
	const prefix = "v1:"
	if len(sealed) < len(prefix) || sealed[:len(prefix)] != prefix {
		return nil, errors.New("sealed value has an unknown format")
	}
	raw, err := base64.RawStdEncoding.DecodeString(sealed[len(prefix):])
	if err != nil || len(raw) < s.aead.NonceSize() {
		return nil, errors.New("sealed value is malformed")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(context))
	if err != nil {
		return nil, ErrWrongSecretKey
	}
	return plain, nil
}
