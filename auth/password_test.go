package auth

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
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
	tests := []struct {
		name, password, user, errHas string
	}{
		{"fifteen characters is enough", "correct horse b", "alice", ""},
		{"fourteen characters is too short", "correct horse ", "alice", "at least 15"},
		{"multibyte characters count as characters", "naïve café über", "alice", ""},
		{"more than 72 bytes is refused with the length", strings.Repeat("é", 37), "alice", "at most 72 bytes"},
		{"the username is refused", "alice-in-wonderland", "alice-in-wonderland", "username"},
		{"no composition rules", "mountain river lantern", "alice", ""},
		{"a common long password is refused", "passwordpassword", "alice", "common or breached"},
		{"the blocklist ignores case and spaces", "Correct Horse Battery Staple", "alice", "common or breached"},
		{"one character repeated is refused", strings.Repeat("a", 20), "alice", "repeats a short pattern"},
		{"a short unit repeated is refused", "abc1abc1abc1abc1", "alice", "repeats a short pattern"},
		{"a listed run of digits is refused", "123456789012345", "alice", "common or breached"},
		{"an unlisted run of digits is refused", "34567890123456789", "alice", "consecutive"},
		{"a run of letters is refused", "bcdefghijklmnopq", "alice", "consecutive"},
		{"a descending run is refused", "zyxwvutsrqponmlk", "alice", "consecutive"},
		{"mostly the username is refused", "alicealice2026!", "alice", "mostly your username"},
		{"the username inside a long phrase is fine", "alice likes quiet mountain lakes", "alice", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckNewPassword(tc.password, tc.user)
			if tc.errHas == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.errHas)
			}
		})
	}
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
