package store

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// MaxPage is the most items one page of a listing holds, and the page
// size when a ListQuery asks for none.
const MaxPage = 1000

// ListQuery asks for one page of a listing. Listings page by position,
// not by offset: the work of one page does not grow with the number of
// records before it.
type ListQuery struct {
	// User, for sessions and certificates, lists only that account's.
	User string
	// Cursor is the Next of the previous page; "" starts at the
	// beginning. A cursor that is not a Next of the same listing is
	// ErrBadCursor.
	Cursor string
	// Limit is the most items the page holds: 1 to MaxPage; any other
	// value means MaxPage.
	Limit int
}

// PageLimit is q.Limit where it is valid, else MaxPage.
func (q ListQuery) PageLimit() int {
	if q.Limit < 1 || q.Limit > MaxPage {
		return MaxPage
	}
	return q.Limit
}

// Page is one page of a listing: its items, in the listing's order, and
// Next, the cursor of the following page ("" when this is the last). A
// page may hold fewer items than asked for and still have a Next: a
// backend may stop early to bound the work one page costs (records that
// expired between two reads, for example).
type Page[T any] struct {
	Items []T
	Next  string
}

// Cursors. Every backend writes and reads them with these functions, so
// they have one form: a letter for the listing, a dot, and the position
// (the last item listed) as base64url JSON. They name no secret except a
// session ID (SessionPosition): callers that show session cursors to
// anyone must seal them.

// AccountPosition is where a listing of accounts stopped: the last name.
type AccountPosition struct {
	Name string `json:"n"`
}

// SessionPosition is where a listing of sessions stopped, in the order
// (User, CreatedAt, ID). UserDone means that every session of User was
// listed: the next page starts with the next account.
type SessionPosition struct {
	User      string    `json:"u"`
	CreatedAt time.Time `json:"t,omitzero"`
	ID        string    `json:"i,omitempty"`
	UserDone  bool      `json:"d,omitempty"`
}

// CertificatePosition is where a listing of certificates stopped, in the
// order (IssuedAt, Serial).
type CertificatePosition struct {
	IssuedAt time.Time `json:"t"`
	Serial   string    `json:"s"`
}

// Cursor encodes a position of the listing kind ("a" accounts, "s"
// sessions, "c" certificates).
func Cursor(kind string, pos any) string {
	b, err := json.Marshal(pos)
	if err != nil {
		panic(fmt.Sprintf("store: encode a %s cursor: %v", kind, err)) // plain structs of strings and times
	}
	return kind + "." + base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor decodes a cursor of the listing kind into pos, or fails
// with ErrBadCursor.
func ParseCursor(kind, cursor string, pos any) error {
	rest, ok := strings.CutPrefix(cursor, kind+".")
	if !ok {
		return fmt.Errorf("cursor %.40q: %w", cursor, ErrBadCursor)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return fmt.Errorf("cursor %.40q: %w", cursor, ErrBadCursor)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(pos); err != nil {
		return fmt.Errorf("cursor %.40q: %w", cursor, ErrBadCursor)
	}
	return nil
}

// Listing kinds of Cursor and ParseCursor.
const (
	AccountCursor     = "a"
	SessionCursor     = "s"
	CertificateCursor = "c"
)

// ForEach calls fn for every item of a listing, a page at a time, so
// that a walk over every record holds one page in memory, not all of
// them. list is one of a Store's List methods, with its query filled in
// except the cursor; fn's error stops the walk and is returned.
func ForEach[T any](list func(cursor string) (Page[T], error), fn func(T) error) error {
	cursor := ""
	for {
		page, err := list(cursor)
		if err != nil {
			return err
		}
		for _, it := range page.Items {
			if err := fn(it); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		cursor = page.Next
	}
}
