package server

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"gatehouse/store"
)

// SessionCookieName is the session cookie. The __Host- prefix makes
// browsers insist on Secure, Path=/ and no Domain, so a sibling host
// cannot plant or overwrite it.
const SessionCookieName = "__Host-gatehouse"

// DomainCookieName is the session cookie when it is shared with sibling
// hosts (Config.CookieDomain). Browsers insist on Secure for the
// __Secure- prefix; the Domain attribute is what __Host- forbids.
const DomainCookieName = "__Secure-gatehouse"

// checkCookieDomain accepts a plain DNS domain with at least two labels
// ("example.com"): a cookie for a whole public suffix would reach other
// companies' hosts.
func checkCookieDomain(d string) error {
	labels := strings.Split(d, ".")
	if len(labels) < 2 || len(d) > 253 {
		return fmt.Errorf("cookie domain %q: give a domain such as example.com (at least two labels, no leading dot)", d)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.Trim(strings.ToLower(l), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return fmt.Errorf("cookie domain %q: %q is not a DNS label", d, l)
		}
	}
	return nil
}

// sessionIDBytes is the entropy of a session ID.
const sessionIDBytes = 32

// recordKey is the key in sessions.Session.Values under which the
// server-side record (a store.Session) travels.
type recordKey struct{}

// sessionStore is a gorilla/sessions Store whose cookie holds only a
// signed random ID; everything else lives in the store. It never adopts
// an ID the server did not issue: an unknown or unsigned ID yields a new,
// empty session whose ID is chosen at Save.
type sessionStore struct {
	codec   *idCodec
	records store.Store
	options sessions.Options
}

var _ sessions.Store = (*sessionStore)(nil)

func newSessionStore(records store.Store, hashKey []byte, maxAge time.Duration, domain string) *sessionStore {
	return &sessionStore{
		codec:   newIDCodec(hashKey, maxAge),
		records: records,
		options: sessions.Options{
			Path:     "/",
			Domain:   strings.ToLower(domain),
			Secure:   true,
			HttpOnly: true,
			SameSite: http.SameSiteLaxMode,
			// MaxAge 0: a browser-session cookie. The server-side
			// record carries the idle and absolute expiry.
		},
	}
}

// Get returns the session for this request, cached per request by
// gorilla's registry.
func (s *sessionStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

// New loads the session named by the request's cookie. A missing,
// tampered or unknown cookie gives a new session with no ID; an
// unreachable store gives an error (fail closed).
func (s *sessionStore) New(r *http.Request, name string) (*sessions.Session, error) {
	sess := sessions.NewSession(s, name)
	opts := s.options
	sess.Options = &opts
	sess.IsNew = true
	c, err := r.Cookie(name)
	if err != nil {
		return sess, nil
	}
	id, err := s.codec.decodeID(name, c.Value)
	if err != nil || id == "" {
		return sess, nil
	}
	// One read for the session, its account and the role and app
	// definitions: this runs on every request, /auth/verify included.
	view, err := s.records.View(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return sess, nil
	}
	if err != nil {
		return sess, err
	}
	sess.ID = id
	sess.IsNew = false
	// The record travels in the view until the request changes it
	// (recordOf): one allocation, not two, on every request.
	sess.Values[viewKey{}] = &view
	return sess, nil
}

// viewKey carries, in Values, the *store.SessionView read with the
// session; it is never written back.
type viewKey struct{}

// recordOf returns the session's record: the one this request set
// (recordKey), else the one read with the session.
func recordOf(sess *sessions.Session) (store.Session, bool) {
	if rec, ok := sess.Values[recordKey{}].(store.Session); ok {
		return rec, true
	}
	if view, ok := sess.Values[viewKey{}].(*store.SessionView); ok {
		return view.Session, true
	}
	return store.Session{}, false
}

// Save writes the record and the cookie. A session with negative MaxAge
// is destroyed: its record is deleted and the cookie expired.
func (s *sessionStore) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	if sess.Options.MaxAge < 0 {
		if sess.ID != "" {
			if err := s.records.DeleteSession(r.Context(), sess.ID); err != nil {
				return err
			}
		}
		http.SetCookie(w, sessions.NewCookie(sess.Name(), "", sess.Options))
		return nil
	}
	rec, ok := sess.Values[recordKey{}].(store.Session)
	if !ok {
		return errors.New("save session: no record")
	}
	ttl, _ := sess.Values[ttlKey{}].(time.Duration)
	if sess.ID == "" {
		id, err := newSessionID(rec.User)
		if err != nil {
			return err
		}
		sess.ID = id
	}
	rec.ID = sess.ID
	if sess.IsNew {
		if err := s.records.PutSession(r.Context(), rec, ttl); err != nil {
			return err
		}
	} else {
		// A refresh of a loaded session: if it was revoked since it was
		// read, it stays revoked.
		live, err := s.records.RefreshSession(r.Context(), rec, ttl)
		if err != nil {
			return err
		}
		if !live {
			return errSessionGone
		}
	}
	sess.Values[recordKey{}] = rec
	encoded, err := s.codec.Encode(sess.Name(), sess.ID)
	if err != nil {
		return fmt.Errorf("sign session cookie: %w", err)
	}
	http.SetCookie(w, sessions.NewCookie(sess.Name(), encoded, sess.Options))
	return nil
}

// idSerializer writes a cookie's session ID as securecookie.JSONEncoder
// does (a JSON string) and reads it back without a JSON decoder when it
// is a plain one, as every ID this server makes is: the cookie is read
// on every request, /auth/verify included. It runs only on what the
// cookie's MAC has vouched for; anything else goes to the JSON decoder.
type idSerializer struct{}

func (idSerializer) Serialize(src any) ([]byte, error) {
	return securecookie.JSONEncoder{}.Serialize(src)
}

func (idSerializer) Deserialize(src []byte, dst any) error {
	if id, ok := dst.(*string); ok {
		v, err := readID(src)
		*id = v
		return err
	}
	return securecookie.JSONEncoder{}.Deserialize(src, dst)
}

// readID reads the ID a cookie's serialized value holds: a plain JSON
// string at once, anything else through the JSON decoder.
func readID(src []byte) (string, error) {
	b := bytes.TrimSuffix(src, []byte("\n"))
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' && !bytes.ContainsAny(b[1:len(b)-1], "\\\"") {
		return string(b[1 : len(b)-1]), nil
	}
	var id string
	err := securecookie.JSONEncoder{}.Deserialize(src, &id)
	return id, err
}

// errSessionGone means a session ended while a request was using it.
var errSessionGone = errors.New("the session ended during the request")

// ttlKey carries, in Values, how long the store keeps the record.
type ttlKey struct{}

// newSessionID returns a new random ID for a session of user, naming
// the shard of user's account (store.SessionID), so that a store spread
// over several servers reads the session and the account in one go.
func newSessionID(user string) (string, error) {
	b := make([]byte, sessionIDBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new session ID: %w", err)
	}
	return store.SessionID(user, base64.RawURLEncoding.EncodeToString(b)), nil
}
