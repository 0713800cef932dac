package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
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
	if err := h.CheckKnown(t.Context(), hash, exact72); err != nil {
		t.Errorf("exact password from a known device refused: %v", err)
	}
	if err := h.CheckKnown(t.Context(), hash, "wrong"); !errors.Is(err, ErrBadPassword) {
		t.Errorf("wrong password from a known device: got %v, want ErrBadPassword", err)
	}
	if err := h.CheckKnown(t.Context(), hash, exact72+"suffix"); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("72 bytes plus a suffix from a known device: got %v, want ErrPasswordTooLong", err)
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
	for range h.cores {
		release, err := h.acquire(t.Context(), false)
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
	if n := h.waiting(); n != [2]int{} {
		t.Errorf("waiters left behind by checks that gave up: %v", n)
	}
	releases[0]()
	if err := h.Check(t.Context(), hash, "a long passphrase for tests"); err != nil {
		t.Errorf("Check after a slot was freed: %v", err)
	}
}

// waiting returns how many known-device and anonymous checks wait for a
// slot.
func (h *Hasher) waiting() [2]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return [2]int{len(h.known), len(h.anonymous)}
}

// waitFor returns once the queues hold want, so that a test can order
// its waiters without sleeping. It only synchronises: no assertion
// depends on how long anything takes.
func (h *Hasher) waitFor(t *testing.T, want [2]int) {
	t.Helper()
	for h.waiting() != want {
		if t.Context().Err() != nil {
			t.Fatalf("waiters = %v, never %v", h.waiting(), want)
		}
		runtime.Gosched()
	}
}

// acquireAsync starts acquire on a goroutine and returns the channel
// that delivers its outcome.
func acquireAsync(h *Hasher, ctx context.Context, known bool) <-chan func() {
	got := make(chan func(), 1)
	go func() {
		release, err := h.acquire(ctx, known)
		if err != nil {
			release = nil
		}
		got <- release
	}()
	return got
}

// With one slot per core taken by anonymous work (a flood), a known
// device's check starts at once, while anonymous ones wait; known
// devices get at most KnownDeviceSlots slots beyond the cores.
func TestHasher_KnownDeviceStartsWhileAnonymousSlotsAreFull(t *testing.T) {
	for _, cores := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("%d cores", cores), func(t *testing.T) {
			h, err := NewHasher(4)
			if err != nil {
				t.Fatal(err)
			}
			h.cores = cores
			h.queueWait = 0 // whoever cannot start at once gives up
			for range cores {
				if _, err := h.acquire(t.Context(), false); err != nil {
					t.Fatalf("anonymous check on a free slot: %v", err)
				}
			}
			if _, err := h.acquire(t.Context(), false); !errors.Is(err, ErrBusy) {
				t.Fatalf("anonymous check beyond one per core: got %v, want ErrBusy", err)
			}
			for i := range KnownDeviceSlots {
				if _, err := h.acquire(t.Context(), true); err != nil {
					t.Fatalf("known device's check %d while anonymous work fills every core: %v", i+1, err)
				}
			}
			if _, err := h.acquire(t.Context(), true); !errors.Is(err, ErrBusy) {
				t.Fatalf("known device's check beyond %d extra slots: got %v, want ErrBusy", KnownDeviceSlots, err)
			}
		})
	}
}

// A freed slot goes to a waiting known device before any anonymous
// waiter, even one that waited longer; and an anonymous check does not
// start while that would put more checks than cores to work.
func TestHasher_FreedSlotGoesToKnownDeviceFirst(t *testing.T) {
	h, err := NewHasher(4)
	if err != nil {
		t.Fatal(err)
	}
	h.cores = 2
	h.queueWait = time.Hour
	ctx := t.Context()
	flood1, _ := h.acquire(ctx, false)
	_, _ = h.acquire(ctx, false)
	known1, err := h.acquire(ctx, true)
	if err != nil {
		t.Fatalf("known device's check with the cores busy: %v", err)
	}

	anon := acquireAsync(h, ctx, false)
	h.waitFor(t, [2]int{0, 1})
	known2 := acquireAsync(h, ctx, true)
	h.waitFor(t, [2]int{1, 1})

	flood1()
	h.waitFor(t, [2]int{0, 1}) // handed out in release, before it returned
	release := <-known2
	if release == nil {
		t.Fatal("the waiting known device's check gave up")
	}
	// Running: one anonymous and two known-device checks. The anonymous
	// waiter still waits, also once only two run: one per core.
	release()
	if got := h.waiting(); got != [2]int{0, 1} {
		t.Fatalf("after a known device's check ended with two running: waiters %v, want the anonymous one still waiting", got)
	}
	known1()
	if r := <-anon; r == nil {
		t.Fatal("the anonymous waiter gave up once a core was free")
	}
}

// Anonymous waiters are served in the order they came, and one that
// gives up (its request went away) leaves no trace in the queue.
func TestHasher_AnonymousWaitersInArrivalOrder(t *testing.T) {
	h, err := NewHasher(4)
	if err != nil {
		t.Fatal(err)
	}
	h.cores = 1
	h.queueWait = time.Hour
	ctx := t.Context()
	busy, _ := h.acquire(ctx, false)
	first := acquireAsync(h, ctx, false)
	h.waitFor(t, [2]int{0, 1})
	gone, cancel := context.WithCancel(ctx)
	second := acquireAsync(h, gone, false)
	h.waitFor(t, [2]int{0, 2})
	third := acquireAsync(h, ctx, false)
	h.waitFor(t, [2]int{0, 3})
	cancel()
	if r := <-second; r != nil {
		t.Fatal("a waiter whose request went away got a slot")
	}
	h.waitFor(t, [2]int{0, 2})
	busy()
	r := <-first
	if r == nil {
		t.Fatal("the first waiter gave up")
	}
	if got := h.waiting(); got != [2]int{0, 1} {
		t.Fatalf("waiters %v after the first was served, want the third still waiting", got)
	}
	r()
	if r := <-third; r == nil {
		t.Fatal("the third waiter gave up")
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
	base, baseSlice := threadNice(), threadSlice()
	var nice int
	var slice time.Duration
	h.onWorker(func() { nice, slice = threadNice(), threadSlice() })
	if nice != max(base, BcryptNice) {
		t.Errorf("bcrypt worker thread niceness = %d, want %d", nice, max(base, BcryptNice))
	}
	if kernelTakesSlices(t) && slice != BcryptSlice {
		t.Errorf("bcrypt worker thread slice = %v, want %v", slice, BcryptSlice)
	}
	if _, err := h.Hash(t.Context(), "a long passphrase for tests"); err != nil {
		t.Fatal(err)
	}
	if got := threadNice(); got != base {
		t.Errorf("the caller's thread niceness changed to %d, want %d", got, base)
	}
	if got := threadSlice(); got != baseSlice {
		t.Errorf("the caller's thread slice changed to %v, want %v", got, baseSlice)
	}
}

// kernelTakesSlices reports whether the running kernel takes a normal
// thread's slice from sched_setattr (Linux 6.12 and later).
func kernelTakesSlices(t *testing.T) bool {
	var major, minor int
	release, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(string(release), "%d.%d", &major, &minor); err != nil {
		t.Fatalf("kernel release %q: %v", release, err)
	}
	return major > 6 || major == 6 && minor >= 12
}

// A known device's check runs at the caller's priority, not the
// workers': under a flood it competes for the CPU as an equal of the
// requests, not as the last in line.
func TestHasher_KnownDeviceChecksRunAtNormalPriority(t *testing.T) {
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
	if base >= BcryptNice {
		t.Skipf("this test runs at niceness %d already", base)
	}
	var known, anonymous int
	h.run(true, func() { known = threadNice() })
	h.run(false, func() { anonymous = threadNice() })
	if known != base || anonymous != BcryptNice {
		t.Errorf("niceness of a known device's check %d, of anonymous work %d; want %d and %d", known, anonymous, base, BcryptNice)
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
	for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > running-h.cores; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, want at most %d: the workers did not stop", runtime.NumGoroutine(), running-h.cores)
		}
		time.Sleep(10 * time.Millisecond)
	}
	unused, err := NewHasher(4)
	if err != nil {
		t.Fatal(err)
	}
	unused.Close() // never started any worker
}

// The dummy hash CheckUnknown compares with is a well-formed hash at the
// Hasher's cost: bcrypt runs in full on it (a hash it cannot parse would
// fail at once and make an unknown user quick to spot), no password
// matches it, and making it runs no bcrypt outside a slot.
func TestCheckUnknown_DummyIsAFullComparisonAtTheCost(t *testing.T) {
	for _, cost := range []int{bcrypt.MinCost, 10, 12} {
		dummy := []byte(dummyHash(cost))
		if got, err := bcrypt.Cost(dummy); err != nil || got != cost {
			t.Errorf("dummyHash(%d): cost %d, %v", cost, got, err)
		}
		for _, password := range []string{"", "gatehouse dummy password", strings.Repeat("x", MaxPasswordBytes)} {
			if err := bcrypt.CompareHashAndPassword(dummy, []byte(password)); !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
				t.Errorf("dummyHash(%d) against %q: %v, want a full comparison that does not match", cost, password, err)
			}
		}
	}
	h, err := NewHasher(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if n := h.Runs(); n != 0 {
		t.Errorf("NewHasher ran bcrypt %d times", n)
	}
	if err := h.CheckUnknown(t.Context(), "anything at all"); !errors.Is(err, ErrBadPassword) {
		t.Errorf("CheckUnknown: %v, want ErrBadPassword", err)
	}
	if n := h.Runs(); n != 1 {
		t.Errorf("CheckUnknown ran bcrypt %d times, want once", n)
	}
	// Over MaxPasswordBytes: refused as for an account that exists, with
	// no bcrypt, so the two cost the same.
	if err := h.CheckUnknown(t.Context(), strings.Repeat("x", MaxPasswordBytes+1)); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("CheckUnknown with %d bytes: %v, want ErrPasswordTooLong", MaxPasswordBytes+1, err)
	}
	if n := h.Runs(); n != 1 {
		t.Errorf("CheckUnknown of a password too long ran bcrypt (%d runs)", n)
	}
}

// procsLog is a stand-in for runtime.GOMAXPROCS that records what the
// Hasher sets.
type procsLog struct {
	mu  sync.Mutex
	set []int
}

func (p *procsLog) setProcs(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set = append(p.set, n)
	return 0
}

func (p *procsLog) calls() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.set)
}

// With WithProcessors, the runtime has one processor more per slot while
// any bcrypt runs, from before it starts, and the cores' worth again
// once none does; computations that overlap raise and lower it once.
func TestHasher_ExtraProcessorsOnlyWhileBcryptRuns(t *testing.T) {
	var procs procsLog
	h, err := NewHasher(bcrypt.MinCost, WithProcessors(procs.setProcs))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	base, busy := h.cores, h.cores+h.Slots()
	if got := procs.calls(); len(got) != 0 {
		t.Fatalf("NewHasher set the processors: %v", got)
	}
	hash, err := h.Hash(t.Context(), "a password that is long enough")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := procs.calls(), []int{busy, base}; !slices.Equal(got, want) {
		t.Errorf("one computation set the processors to %v, want %v", got, want)
	}

	// Two slots taken one after the other, given back in turn.
	first, err := h.acquire(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	second, err := h.acquire(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := procs.calls()[2:], []int{busy}; !slices.Equal(got, want) {
		t.Errorf("two slots taken: %v, want %v", got, want)
	}
	first()
	if got := procs.calls()[2:]; len(got) != 1 {
		t.Errorf("one of two slots given back: %v, want the processors kept", got)
	}
	second()
	if got, want := procs.calls()[2:], []int{busy, base}; !slices.Equal(got, want) {
		t.Errorf("both slots given back: %v, want %v", got, want)
	}

	// A computation that waited for its slot runs with the extra ones
	// too, and a wait that ends in ErrBusy leaves the cores' worth.
	h.queueWait = 2 * time.Second
	var slots []func()
	for range h.cores + KnownDeviceSlots {
		r, err := h.acquire(t.Context(), true)
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, r)
	}
	done := make(chan error)
	go func() { done <- h.Check(t.Context(), hash, "a password that is long enough") }()
	time.Sleep(50 * time.Millisecond) // the check is waiting for a slot
	for _, r := range slots {
		r()
	}
	if err := <-done; err != nil {
		t.Fatalf("Check after waiting for a slot: %v", err)
	}
	if got := procs.calls(); got[len(got)-1] != base {
		t.Errorf("after every slot was given back the processors are %d, want %d (%v)", got[len(got)-1], base, got)
	}
	h.queueWait = 10 * time.Millisecond
	for range h.cores + KnownDeviceSlots {
		r, err := h.acquire(t.Context(), true)
		if err != nil {
			t.Fatal(err)
		}
		defer r()
	}
	if err := h.Check(t.Context(), hash, "x"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Check with every slot taken: %v, want ErrBusy", err)
	}
	if got := procs.calls(); got[len(got)-1] != busy {
		t.Errorf("while slots are taken the processors are %d, want %d", got[len(got)-1], busy)
	}
}

// A password is the same password however its text is encoded: it is
// hashed and compared in Unicode's NFKC form (NIST SP 800-63B), so "é"
// typed as one character or as e and a combining accent, or letters
// typed full-width, match. A hash made before passwords were normalised
// still matches the text as it was typed then.
func TestHasher_PasswordsAreComparedInNFKC(t *testing.T) {
	h, err := NewHasher(4)
	if err != nil {
		t.Fatal(err)
	}
	const nfd = "Cre\u0300me bru\u0302le\u0301e fu\u0308r zwo\u0308lf Ga\u0308ste"
	const nfc = "Crème brûlée für zwölf Gäste"
	hash, err := h.Hash(t.Context(), nfd)
	if err != nil {
		t.Fatal(err)
	}
	for name, typed := range map[string]string{"decomposed": nfd, "composed": nfc} {
		if err := h.Check(t.Context(), hash, typed); err != nil {
			t.Errorf("the password typed %s: %v", name, err)
		}
	}
	wide, err := h.Hash(t.Context(), "ｃｏｒｒｅｃｔ ｈｏｒｓｅ ｂａｔｔｅｒｙ")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Check(t.Context(), wide, "correct horse battery"); err != nil {
		t.Errorf("a full-width password typed in ASCII: %v", err)
	}
	// A hash of the decomposed text as typed, made before.
	old, err := bcrypt.GenerateFromPassword([]byte(nfd), 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Check(t.Context(), string(old), nfd); err != nil {
		t.Errorf("an old hash with the password as it was typed then: %v", err)
	}
	if err := h.Check(t.Context(), hash, "Creme brulee fur zwolf Gaste"); !errors.Is(err, ErrBadPassword) {
		t.Errorf("the password without its accents: %v, want ErrBadPassword", err)
	}
	// The 72-byte limit is on the normalised form.
	// U+FDFA is 3 bytes, and 33 in NFKC: 20 bytes typed, 80 normalised.
	if err := CheckNewPassword("correct horse \ufdfa\ufdfa", "alice", ""); err == nil || !strings.Contains(err.Error(), "72 bytes") {
		t.Errorf("a password of 20 bytes as typed and 80 normalised: %v, want the 72-byte limit", err)
	}
}
