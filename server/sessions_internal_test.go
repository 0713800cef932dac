package server

import (
	"testing"

	"github.com/gorilla/securecookie"
)

// FuzzIDSerializer: whatever string securecookie's JSON serializer
// wrote into a cookie, the session store reads back the same string,
// by its quick path or by the JSON decoder, and what it writes, the
// JSON serializer reads back: cookies written before and after it are
// the same cookies.
func FuzzIDSerializer(f *testing.F) {
	for _, s := range []string{"", "0001.abcDEF-_", `a"b`, `a\b`, "é\u2028", "\x00", "a\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		b, err := securecookie.JSONEncoder{}.Serialize(id)
		if err != nil {
			t.Fatal(err)
		}
		var want, got string
		if err := (securecookie.JSONEncoder{}).Deserialize(b, &want); err != nil {
			t.Fatal(err)
		}
		if err := (idSerializer{}).Deserialize(b, &got); err != nil || got != want {
			t.Fatalf("Deserialize(%q) = %q, %v; want %q", b, got, err, want)
		}
		ours, err := idSerializer{}.Serialize(id)
		if err != nil {
			t.Fatal(err)
		}
		var back string
		if err := (securecookie.JSONEncoder{}).Deserialize(ours, &back); err != nil || back != want {
			t.Fatalf("JSONEncoder read %q as %q, %v; want %q", ours, back, err, want)
		}
	})
}
