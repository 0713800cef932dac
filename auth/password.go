package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"
)

// BcryptCost is the work factor for new password hashes.
const BcryptCost = 12

// MaxPasswordBytes is bcrypt's input limit. bcrypt silently ignores bytes
// past it, so longer passwords are refused outright rather than truncated.
const MaxPasswordBytes = 72

// Password errors, checked with errors.Is.
var (
	// ErrBadPassword means the password does not match, or the account
	// does not exist: callers must not tell the two apart.
	ErrBadPassword = errors.New("invalid username or password")
	// ErrPasswordTooLong means the password is longer than bcrypt can
	// check.
	ErrPasswordTooLong = fmt.Errorf("password is longer than %d bytes", MaxPasswordBytes)
	// ErrBusy means every bcrypt slot stayed taken for BcryptQueueWait:
	// the caller should answer "busy, try again" rather than queue
	// without bound.
	ErrBusy = errors.New("too many password checks at once")
)

// BcryptQueueWait is how long a password check waits for a free bcrypt
// slot. A flood of logins then costs its senders 503s, not everyone else
// their CPU: anonymous bcrypt work never runs on more goroutines than
// there are cores.
const BcryptQueueWait = 3 * time.Second

// KnownDeviceSlots is how many bcrypt computations sign-ins from known
// devices may run beyond the one per core that anonymous work may use.
// While a flood keeps every core's slot busy, a known device's check
// still starts at once, and no anonymous check starts until it is done:
// a known device signs in within about one bcrypt (SPEC "Performance").
const KnownDeviceSlots = 1

// BcryptNice is the scheduling niceness of the threads that run bcrypt
// (Linux). Under a login flood bcrypt would otherwise take every core it
// is given; at a lower priority it still uses all idle CPU, but page
// loads and /auth/verify come first.
const BcryptNice = 10

// BcryptSlice is the time slice of the threads that run bcrypt (Linux
// 6.12 and later). A thread keeps its core for its slice even when one
// of higher priority wakes up meanwhile; at the kernel's default (1.4
// ms on two cores, more with more) a request that wakes behind bcrypt
// may wait that long, which is most of what a login flood adds to
// /auth/verify's p99. bcrypt loses only the cost of switching back.
const BcryptSlice = 100 * time.Microsecond

// Hasher hashes and checks passwords with bcrypt at a fixed cost.
// Anonymous work runs at most one computation per core at a time, on
// worker threads of lower priority (BcryptNice); checks for known
// devices (CheckKnown) are handed a slot before any anonymous waiter,
// may run KnownDeviceSlots more, and run at normal priority.
type Hasher struct {
	cost      int
	queueWait time.Duration
	// cores is how many computations anonymous work may run at once.
	cores int

	// mu guards the slot count and the two queues of waiters, oldest
	// first; a waiter's channel is closed when it is handed a slot.
	mu        sync.Mutex
	running   int
	known     []chan struct{}
	anonymous []chan struct{}

	// jobs feeds the bcrypt worker threads, started on first use.
	jobs        chan func()
	workersOnce sync.Once
	// runs counts bcrypt computations, for metrics and for tests that
	// prove which paths run bcrypt and which do not.
	runs atomic.Uint64

	// dummy is what CheckUnknown compares with (dummyHash).
	dummy string

	// setProcs, when set (WithProcessors), sets the Go runtime's number
	// of processors (runtime.GOMAXPROCS); procsMu orders its calls, and
	// procs is what it last set (0: never).
	setProcs func(int) int
	procsMu  sync.Mutex
	procs    int
}

// HasherOption changes how NewHasher sets up a Hasher.
type HasherOption func(*Hasher)

// WithProcessors has the Hasher give the Go runtime one processor (P)
// more per bcrypt slot while any computation runs, and take them back
// when none does, through setProcs (runtime.GOMAXPROCS). A computation
// holds a P for as long as it runs; the extra Ps leave the cores' worth
// of Ps to the requests, and the kernel, seeing the anonymous workers'
// lower priority, gives the requests the CPU first, so a login flood
// cannot starve /auth/verify. Keeping the extra Ps while no bcrypt runs
// would cost every request: with more Ps than cores the runtime wakes
// and parks more threads, and a thread the kernel preempts mid-request
// holds that request for a time slice (docs/benchmarks.md).
func WithProcessors(setProcs func(int) int) HasherOption {
	return func(h *Hasher) { h.setProcs = setProcs }
}

// NewHasher returns a Hasher that hashes at cost (bcrypt.MinCost to
// bcrypt.MaxCost) with one anonymous bcrypt slot per core (GOMAXPROCS).
func NewHasher(cost int, opts ...HasherOption) (*Hasher, error) {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("bcrypt cost %d out of range %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	h := &Hasher{cost: cost, cores: runtime.GOMAXPROCS(0), queueWait: BcryptQueueWait, jobs: make(chan func()), dummy: dummyHash(cost)}
	for _, o := range opts {
		o(h)
	}
	return h, nil
}

// fitProcs sets the runtime's processors for what runs now: the cores'
// worth while no computation runs, and one more per slot while any
// does (WithProcessors). It is called after a slot is taken, before the
// computation starts, and after one is given back; each call reads the
// count afresh, so calls that cross end on the right number.
func (h *Hasher) fitProcs() {
	if h.setProcs == nil {
		return
	}
	h.procsMu.Lock()
	defer h.procsMu.Unlock()
	h.mu.Lock()
	busy := h.running > 0
	h.mu.Unlock()
	want := h.cores
	if busy {
		want += h.Slots()
	}
	if want != h.procs {
		h.setProcs(want)
		h.procs = want
	}
}

// dummyHash is a well-formed bcrypt hash at cost that no password
// matches. Comparing with it costs one full bcrypt at that cost, which is
// all CheckUnknown needs, and making it costs nothing: it is written, not
// computed, so no bcrypt runs outside a slot.
func dummyHash(cost int) string {
	// "$2a$", two digits of cost, "$", then 22 characters of salt and 31
	// of hash in bcrypt's base64 alphabet.
	return fmt.Sprintf("$2a$%02d$%s", cost, strings.Repeat("GatehouseDummyHash.", 3)[:53])
}

// Slots is how many bcrypt computations may run at once: one per core,
// plus KnownDeviceSlots for known devices.
func (h *Hasher) Slots() int { return h.cores + KnownDeviceSlots }

// onWorker runs f on one of the bcrypt worker threads and waits for it.
// The caller holds an anonymous slot, and there are as many workers as
// those, so a worker is always free.
func (h *Hasher) onWorker(f func()) {
	h.workersOnce.Do(func() {
		for range h.cores {
			go h.worker()
		}
	})
	done := make(chan struct{})
	h.jobs <- func() { f(); close(done) }
	<-done
}

// run runs a bcrypt computation for which the caller holds a slot:
// anonymous work on a worker thread at lower priority, a known device's
// check on the caller's goroutine at normal priority. Under a flood, the
// workers' lower priority would leave a known device's check only the
// CPU that the flood's own requests leave over. Such checks are few (a
// person signing in on a device of theirs) and bounded by the slots.
func (h *Hasher) run(known bool, f func()) {
	if known {
		f()
		return
	}
	h.onWorker(f)
}

// Close stops the worker threads once they are idle. A Hasher is not
// used after Close.
func (h *Hasher) Close() {
	h.workersOnce.Do(func() {}) // no workers start after this
	close(h.jobs)
}

// worker runs bcrypt jobs on a thread of its own at lower priority, in
// short slices. The thread is never handed back to the Go runtime (the
// goroutine keeps it locked for good), so no other goroutine ever runs
// at that priority.
func (h *Hasher) worker() {
	runtime.LockOSThread()
	lowerThreadPriority(BcryptNice)
	for job := range h.jobs {
		job()
	}
}

// mayStart reports whether a computation of the class may start now.
// An anonymous one never brings the count above one per core, even when
// a known device's check runs meanwhile: that check then has a core to
// itself. The caller holds h.mu.
func (h *Hasher) mayStart(known bool) bool {
	if known {
		return h.running < h.cores+KnownDeviceSlots
	}
	return h.running < h.cores && len(h.known) == 0
}

// handOut gives free slots to waiters: every known device's waiter
// before any anonymous one, each class oldest first. The caller holds
// h.mu.
func (h *Hasher) handOut() {
	for {
		var w chan struct{}
		switch {
		case len(h.known) > 0 && h.mayStart(true):
			w, h.known = h.known[0], h.known[1:]
		case len(h.anonymous) > 0 && h.mayStart(false):
			w, h.anonymous = h.anonymous[0], h.anonymous[1:]
		default:
			return
		}
		h.running++
		close(w)
	}
}

// release gives a slot back and hands it on.
func (h *Hasher) release() {
	h.mu.Lock()
	h.running--
	h.handOut()
	h.mu.Unlock()
	h.fitProcs()
}

// acquire takes a bcrypt slot for a known device's check or an anonymous
// one, waiting at most h.queueWait, and returns the function that gives
// it back.
func (h *Hasher) acquire(ctx context.Context, known bool) (release func(), err error) {
	queue := &h.anonymous
	if known {
		queue = &h.known
	}
	h.mu.Lock()
	if len(*queue) == 0 && h.mayStart(known) {
		h.running++
		h.mu.Unlock()
		h.runs.Add(1)
		h.fitProcs()
		return h.release, nil
	}
	w := make(chan struct{})
	*queue = append(*queue, w)
	h.mu.Unlock()

	t := time.NewTimer(h.queueWait)
	defer t.Stop()
	var cause error
	select {
	case <-w:
		h.runs.Add(1)
		h.fitProcs()
		return h.release, nil
	case <-t.C:
	case <-ctx.Done():
		// Still ErrBusy for callers, but with the cause: a request its
		// client abandoned is not a sign of too many sign-ins.
		cause = ctx.Err()
	}
	defer h.fitProcs() // after the unlock below: a slot may be given back
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-w:
		// Handed a slot just as the wait ended: pass it on.
		h.running--
		h.handOut()
	default:
		*queue = slices.DeleteFunc(*queue, func(c chan struct{}) bool { return c == w })
	}
	if cause != nil {
		return nil, fmt.Errorf("%w: %w", ErrBusy, cause)
	}
	return nil, ErrBusy
}

// Runs is the number of bcrypt computations (hashes and comparisons,
// real or dummy) started so far.
func (h *Hasher) Runs() uint64 { return h.runs.Load() }

// NormalizePassword returns password in Unicode's NFKC form, the form
// in which passwords are hashed and compared (NIST SP 800-63B): "é"
// typed as one character or as e and a combining accent, or letters
// typed full-width, are then the same password. Text that is not valid
// UTF-8 is returned as it is.
func NormalizePassword(password string) string {
	if !utf8.ValidString(password) {
		return password
	}
	return norm.NFKC.String(password)
}

// Hash returns the bcrypt hash of password, normalised
// (NormalizePassword).
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	password = NormalizePassword(password)
	if len(password) > MaxPasswordBytes {
		return "", ErrPasswordTooLong
	}
	release, err := h.acquire(ctx, false)
	if err != nil {
		return "", err
	}
	defer release()
	var b []byte
	h.onWorker(func() { b, err = bcrypt.GenerateFromPassword([]byte(password), h.cost) })
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(b), nil
}

// Check compares password with hash. It returns ErrPasswordTooLong for
// input bcrypt would truncate (a password set as its first 72 bytes must
// not match the same bytes plus a suffix), ErrBusy when no bcrypt slot
// came free in time, and ErrBadPassword on mismatch.
func (h *Hasher) Check(ctx context.Context, hash, password string) error {
	return h.check(ctx, false, hash, password)
}

// CheckKnown is Check for a sign-in from a known device (a certificate
// bound to the account, or a device cookie): it is handed a bcrypt slot
// before any anonymous check, may use one beyond theirs, and runs at
// normal priority, so that a flood of anonymous sign-ins cannot keep the
// account's owner out.
func (h *Hasher) CheckKnown(ctx context.Context, hash, password string) error {
	return h.check(ctx, true, hash, password)
}

// check compares password, normalised, with hash; and when the text as
// typed is not in normal form, compares that too, as hashes made before
// passwords were normalised hold it. Every input takes the same path,
// a dummy comparison included, so the second comparison tells nothing
// about the account.
func (h *Hasher) check(ctx context.Context, known bool, hash, password string) error {
	forms := []string{NormalizePassword(password)}
	if forms[0] != password {
		forms = append(forms, password)
	}
	forms = slices.DeleteFunc(forms, func(f string) bool { return len(f) > MaxPasswordBytes })
	if len(forms) == 0 {
		return ErrPasswordTooLong
	}
	release, err := h.acquire(ctx, known)
	if err != nil {
		return err
	}
	defer release()
	for _, f := range forms {
		h.run(known, func() { err = bcrypt.CompareHashAndPassword([]byte(hash), []byte(f)) })
		if err == nil {
			return nil
		}
	}
	return ErrBadPassword
}

// CheckUnknown spends the time of one bcrypt comparison and returns
// ErrBadPassword. Call it when the account does not exist, so that an
// unknown user costs the same time as a wrong password and usernames
// cannot be probed by timing. It is Check against a hash no password
// matches, so it takes an anonymous slot, answers ErrBusy and refuses a
// password over MaxPasswordBytes exactly as Check does for an account
// that exists.
func (h *Hasher) CheckUnknown(ctx context.Context, password string) error {
	return h.check(ctx, false, h.dummy, password)
}

// MinPasswordLength is the least number of characters in a new password:
// a password alone can open a session, so NIST SP 800-63B-4 asks for 15.
const MinPasswordLength = 15

// CheckNewPassword applies the rules for a password being set for the
// account username (with email, which may be empty): at least
// MinPasswordLength characters, at most MaxPasswordBytes bytes, not the
// username, not on the blocklist of breached passwords, and a zxcvbn
// score of at least MinPasswordScore, with the account's name, email and
// the portal's name as words a guesser tries first. There are no
// composition rules (NIST SP 800-63B). The error is in plain words for
// the user, and never quotes the password.
func CheckNewPassword(password, username, email string) error {
	if !utf8.ValidString(password) {
		return errors.New("the new password is not valid text")
	}
	password = NormalizePassword(password)
	switch {
	case utf8.RuneCountInString(password) < MinPasswordLength:
		return fmt.Errorf("the new password must be at least %d characters long", MinPasswordLength)
	case len(password) > MaxPasswordBytes:
		return fmt.Errorf("the new password must be at most %d bytes long (it is %d)", MaxPasswordBytes, len(password))
	case !utf8.ValidString(password):
		return errors.New("the new password is not valid text")
	case strings.EqualFold(password, username):
		return errors.New("the new password must not be your username")
	case onBlocklist(password):
		return errors.New("this password is on the list of common or breached passwords; choose another")
	}
	if why := strengthProblem(password, username, email); why != "" {
		return errors.New(why)
	}
	return nil
}
