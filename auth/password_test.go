package auth

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestHasher_Check(t *testing.T) {
	h, err := NewHasher(4)
	if err != nil {
		t.Fatal(err)
	}
	exact72 := strings.Repeat("a", 72)
	hash, err := h.Hash(t.Context(), exact72)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Check(t.Context(), hash, exact72); err != nil {
		t.Errorf("exact password refused: %v", err)
	}
	// bcrypt alone would accept this: it ignores bytes past 72.
	if err := h.Check(t.Context(), hash, exact72+"suffix"); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("72 bytes plus a suffix: got %v, want ErrPasswordTooLong", err)
	}
	if err := h.Check(t.Context(), hash, "wrong"); !errors.Is(err, ErrBadPassword) {
		t.Errorf("wrong password: got %v, want ErrBadPassword", err)
	}
	if _, err := h.Hash(t.Context(), exact72+"x"); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("hashing 73 bytes: got %v, want ErrPasswordTooLong", err)
	}
	if err := h.CheckUnknown(t.Context(), "anything"); !errors.Is(err, ErrBadPassword) {
		t.Errorf("CheckUnknown: got %v, want ErrBadPassword", err)
	}
}

func TestNewHasher_RejectsBadCost(t *testing.T) {
	for _, cost := range []int{0, 3, 32} {
		if _, err := NewHasher(cost); err == nil {
			t.Errorf("NewHasher(%d) accepted", cost)
		}
	}
}

func TestCheckNewPassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, password, user, email string
		// errHas is a part of the error's words; "" for no error.
		errHas string
	}{
		{"a strong passphrase of fifteen or more characters", "violet kettle drifts", "alice", "alice@example.com", ""},
		{"multibyte characters count as characters", "naïve café über alles", "alice", "", ""},
		{"no composition rules", "mountain river lantern", "alice", "", ""},
		{"the account's name inside a long phrase is fine", "alice likes quiet mountain lakes", "alice", "", ""},
		{"fourteen characters is too short", "violet kettle ", "alice", "", "at least 15"},
		{"more than 72 bytes is refused with the length", strings.Repeat("é", 37), "alice", "", "at most 72 bytes"},
		{"the username is refused", "alice-in-wonderland", "alice-in-wonderland", "", "username"},

		// Tried from outside and accepted by the old rules.
		{"a common password repeated, plus a digit", "passwordpassword1", "bob", "", "too easy to guess: a repeated word"},
		{"a season and a year, twice", "Summer2026Summer2026", "bob", "", "too easy to guess: a repeated word"},
		{"a common phrase repeated, plus a digit", "iloveyouiloveyou1", "bob", "", "too easy to guess: a repeated word"},
		{"the account's name twice and digits", "alicealice123456", "alice", "", "too easy to guess"},

		{"the account's email", "alice@example.com1", "asmith", "alice@example.com", "your account's name, your email address"},
		{"the account's words and the portal's, with a few more characters", "MyGatehouse2026!", "bob", "", "mostly your account's name, your email address or the portal's name"},
		{"the parts of the email", "SmithExample123!", "asmith", "alice.smith@example.com", "mostly your account's name"},
		{"the portal's name twice", "gatehouse_gatehouse", "bob", "", "mostly"},
		{"the portal's name and digits", "Gatehouse12345678", "bob", "", "too easy to guess: it is built on your account's name, your email address or the portal's name"},
		{"a keyboard pattern", "qwertyuiop[]asdf", "bob", "", "too easy to guess"},
		{"a run of letters", "bcdefghijklmnopq", "bob", "", "runs like abcd"},
		{"one character repeated", strings.Repeat("a", 20), "bob", "", "a character repeated"},
		{"a short unit repeated", "abc1abc1abc1abc1", "bob", "", "repeated"},
		{"a run of digits", "34567890123456789", "bob", "", "too easy to guess"},
		{"a common password with look-alike letters", "p@ssw0rdp@ssw0rd", "bob", "", "too easy to guess"},

		{"on the blocklist though zxcvbn rates it strong", "thequickbrownfoxjumpsoverthelazydog", "bob", "", "common or breached"},
		{"the blocklist ignores case and spaces", "Correct Horse Battery Staple", "bob", "", "common or breached"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := CheckNewPassword(tc.password, tc.user, tc.email)
			if tc.errHas == "" {
				if err != nil {
					t.Fatalf("CheckNewPassword(%q) = %v, want it accepted", tc.password, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("CheckNewPassword(%q) = %v, want it refused with %q", tc.password, err, tc.errHas)
			}
			if strings.Contains(err.Error(), tc.password) {
				t.Errorf("the error quotes the password: %v", err)
			}
		})
	}
}

// The blocklist holds only what zxcvbn does not know: each entry is long
// enough to pass the length rule and would pass zxcvbn too.
func TestBlocklist_OnlyWhatZxcvbnMisses(t *testing.T) {
	t.Parallel()
	if len(commonPasswords) == 0 {
		t.Fatal("the blocklist is empty")
	}
	for p := range commonPasswords {
		if n := utf8.RuneCountInString(p); n < MinPasswordLength {
			t.Errorf("%q has %d characters: the length rule refuses it already", p, n)
		}
		if why := strengthProblem(p, "", ""); why != "" {
			t.Errorf("%q: zxcvbn refuses it already (%s); drop it from the list", p, why)
		}
	}
}

// FuzzCheckNewPassword checks that no input makes the rules panic, and
// that a refusal never quotes the password.
func FuzzCheckNewPassword(f *testing.F) {
	for _, s := range []string{"passwordpassword1", "Summer2026Summer2026", "alicealice123456", "violet kettle drifts",
		strings.Repeat("a", 72), strings.Repeat("ab", 36), "\xff\xfe long invalid text", "1990-01-01 1990-01-01", "qwertyuiop[]asdfghjkl;'"} {
		f.Add(s, "alice", "alice@example.com")
	}
	f.Fuzz(func(t *testing.T, password, user, email string) {
		err := CheckNewPassword(password, user, email)
		if err != nil && len(password) >= 4 && strings.Contains(err.Error(), password) {
			t.Fatalf("CheckNewPassword(%q) = %v: the error quotes the password", password, err)
		}
	})
}

// A check that cannot get a bcrypt slot within the queue wait gives up
// with ErrBusy instead of waiting without bound; once a slot is free,
// checks run again.
func TestHasher_BoundedConcurrency(t *testing.T) {
	h, err := NewHasher(4)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash(t.Context(), "a long passphrase for tests")
	if err != nil {
		t.Fatal(err)
	}
	h.queueWait = 20 * time.Millisecond
	var releases []func()
	for range cap(h.slots) {
		release, err := h.acquire(t.Context())
		if err != nil {
			t.Fatalf("taking a free slot: %v", err)
		}
		releases = append(releases, release)
	}
	if err := h.Check(t.Context(), hash, "a long passphrase for tests"); !errors.Is(err, ErrBusy) {
		t.Errorf("Check with every slot taken: got %v, want ErrBusy", err)
	}
	if err := h.CheckUnknown(t.Context(), "x"); !errors.Is(err, ErrBusy) {
		t.Errorf("CheckUnknown with every slot taken: got %v, want ErrBusy", err)
	}
	if _, err := h.Hash(t.Context(), "x"); !errors.Is(err, ErrBusy) {
		t.Errorf("Hash with every slot taken: got %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	h.queueWait = time.Hour
	if err := h.Check(ctx, hash, "x"); !errors.Is(err, ErrBusy) || !errors.Is(err, context.Canceled) {
		t.Errorf("Check with a cancelled request: got %v, want ErrBusy and context.Canceled", err)
	}
	releases[0]()
	if err := h.Check(t.Context(), hash, "a long passphrase for tests"); err != nil {
		t.Errorf("Check after a slot was freed: %v", err)
	}
}

// bcrypt runs on worker threads at BcryptNice, and no other thread is
// lowered with them.
func TestHasher_BcryptRunsAtLowerPriority(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("thread priorities are set on Linux only")
	}
	h, err := NewHasher(4)
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	base := threadNice()
	var nice int
	h.onWorker(func() { nice = threadNice() })
	if nice != max(base, BcryptNice) {
		t.Errorf("bcrypt worker thread niceness = %d, want %d", nice, max(base, BcryptNice))
	}
	if _, err := h.Hash(t.Context(), "a long passphrase for tests"); err != nil {
		t.Fatal(err)
	}
	if got := threadNice(); got != base {
		t.Errorf("the caller's thread niceness changed to %d, want %d", got, base)
	}
}

// Close ends the worker threads; the Hasher still answers until then.
func TestHasher_Close(t *testing.T) {
	h, err := NewHasher(4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Hash(t.Context(), "a long passphrase for tests"); err != nil {
		t.Fatal(err)
	}
	running := runtime.NumGoroutine()
	h.Close()
	for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > running-h.Slots(); {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, want at most %d: the workers did not stop", runtime.NumGoroutine(), running-h.Slots())
		}
		time.Sleep(10 * time.Millisecond)
	}
	unused, err := NewHasher(4)
	if err != nil {
		t.Fatal(err)
	}
	unused.Close() // never started any worker
}
