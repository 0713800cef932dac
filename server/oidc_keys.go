package server

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"gatehouse/auth"
	"gatehouse/store"
)

// Token signing keys: RS256, the one algorithm every relying party must
// support (OpenID Connect Core §15.1), on 2048-bit RSA keys.
const (
	oidcKeyAlgorithm = jose.RS256
	oidcKeyBits      = 2048
	// oidcKeyKept is how long a retired key stays published: longer than
	// any token it signed lives, with room for clocks and caches.
	oidcKeyKept = oidcTokenLifetime + time.Hour
)

// errNoSigningKey means the store holds no key that may sign.
var errNoSigningKey = errors.New("no OpenID Connect signing key yet")

// RotateOIDCKey makes a new token signing key, which signs from now on,
// retires the key that signed until now (it stays published until the
// tokens it signed have expired) and deletes keys retired long enough
// ago. The private key is sealed before it reaches the store. It returns
// the new key's ID. "gatehouse oidc-keys rotate" runs it; so does the
// provider on its first token, when the store has no key.
func RotateOIDCKey(ctx context.Context, st store.Store, sealer *auth.Sealer, now time.Time) (string, error) {
	priv, err := rsa.GenerateKey(rand.Reader, oidcKeyBits)
	if err != nil {
		return "", fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("encode signing key: %w", err)
	}
	var b [6]byte
	rand.Read(b[:])
	id := now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
	keys, err := st.OIDCKeys(ctx)
	if err != nil {
		return "", err
	}
	// Put the new key first: a crash half-way leaves two signing keys,
	// of which the newest signs, never none.
	k := store.OIDCKey{ID: id, Algorithm: string(oidcKeyAlgorithm), PrivateKey: sealer.Seal(der, oidcKeyContext(id)), CreatedAt: now.UTC()}
	if err := st.PutOIDCKey(ctx, k); err != nil {
		return "", err
	}
	for _, old := range keys {
		switch {
		case old.RetiredAt.IsZero():
			old.RetiredAt = now.UTC()
			if err := st.PutOIDCKey(ctx, old); err != nil {
				return id, err
			}
		case now.Sub(old.RetiredAt) >= oidcKeyKept:
			if err := st.DeleteOIDCKey(ctx, old.ID); err != nil {
				return id, err
			}
		}
	}
	return id, nil
}

// oidcKeyContext binds a sealed key to its ID.
func oidcKeyContext(id string) string { return "oidc-key:" + id }

// signingKey is a token signing key opened for use; it serves as both
// op.SigningKey and op.Key.
type signingKey struct {
	id      string
	priv    *rsa.PrivateKey
	retired time.Time
}

func (k *signingKey) ID() string                                  { return k.id }
func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return oidcKeyAlgorithm }
func (k *signingKey) Algorithm() jose.SignatureAlgorithm          { return oidcKeyAlgorithm }
func (k *signingKey) Use() string                                 { return "sig" }

// Key is the private key for signing; KeySet publishes publicKey.
func (k *signingKey) Key() any { return k.priv }

// publicKey is the key as the JWKS publishes it.
type publicKey struct{ *signingKey }

func (k publicKey) Key() any { return k.priv.Public().(crypto.PublicKey) }

// oidcKeys opens the store's signing keys, keeping the ones it opened so
// that a key is unsealed and parsed once per process.
type oidcKeys struct {
	store  store.Store
	sealer *auth.Sealer
	mu     sync.Mutex
	opened map[string]*rsa.PrivateKey
}

// all returns every key in the store, oldest first.
func (o *oidcKeys) all(ctx context.Context) ([]*signingKey, error) {
	recs, err := o.store.OIDCKeys(ctx)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.opened == nil {
		o.opened = make(map[string]*rsa.PrivateKey)
	}
	out := make([]*signingKey, 0, len(recs))
	for _, rec := range recs {
		priv, ok := o.opened[rec.ID]
		if !ok {
			if rec.Algorithm != string(oidcKeyAlgorithm) {
				return nil, fmt.Errorf("signing key %s: algorithm %q is not %s", rec.ID, rec.Algorithm, oidcKeyAlgorithm)
			}
			der, err := o.sealer.Open(rec.PrivateKey, oidcKeyContext(rec.ID))
			if err != nil {
				return nil, fmt.Errorf("open signing key %s: %w", rec.ID, err)
			}
			parsed, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				return nil, fmt.Errorf("parse signing key %s: %w", rec.ID, err)
			}
			if priv, ok = parsed.(*rsa.PrivateKey); !ok {
				return nil, fmt.Errorf("signing key %s is not an RSA key", rec.ID)
			}
			o.opened[rec.ID] = priv
		}
		out = append(out, &signingKey{id: rec.ID, priv: priv, retired: rec.RetiredAt})
	}
	return out, nil
}

// signing returns the newest key that is not retired.
func (o *oidcKeys) signing(ctx context.Context) (*signingKey, error) {
	keys, err := o.all(ctx)
	if err != nil {
		return nil, err
	}
	for i := len(keys) - 1; i >= 0; i-- {
		if keys[i].retired.IsZero() {
			return keys[i], nil
		}
	}
	return nil, errNoSigningKey
}
