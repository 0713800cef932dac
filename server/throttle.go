package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"gatehouse/auth"
)

// throttle counts consecutive failures under one store key and makes the
// next attempt wait once there were too many. The counts live in the
// store, so every portal instance sharing it sees the same ones.
type throttle struct {
	counter string
	delay   func(n int) time.Duration
	memory  time.Duration
	// lockAt, when not 0, locks after that many failures until unlocked,
	// or for lockFor when that is set.
	lockAt  int
	lockFor time.Duration
	// what names the attempts in messages: "sign-ins", "codes".
	what string
	// seen is the count check found (-1 before check), so that failed
	// can start the next delay before it counts.
	seen int
}

// accountThrottle limits consecutive failures of one factor of one
// account (an unknown username is counted the same way, so a throttle
// never tells whether an account exists).
func accountThrottle(factor, user string) throttle {
	what := map[string]string{auth.CounterPassword: "failed sign-ins", auth.CounterTOTP: "wrong codes"}[factor]
	return throttle{counter: auth.FailureCounter(factor, user), delay: auth.FailureDelay,
		memory: auth.FailureMemory, lockAt: auth.MaxConsecutiveFailures, what: what, seen: -1}
}

// addressThrottle limits failed sign-ins from the request's client
// address, whatever the account.
func (s *Server) addressThrottle(r *http.Request) throttle {
	return throttle{counter: "addr:" + addressKey(s.clientAddr(r)), delay: auth.AddressFailureDelay,
		memory: auth.AddressFailureMemory, what: "failed sign-ins from your network", seen: -1}
}

// addressKey is the unit the address throttle counts: the address for
// IPv4, its /64 network for IPv6 (one client usually holds a whole /64).
func addressKey(addr string) string {
	ip := net.ParseIP(addr)
	if ip == nil || ip.To4() != nil {
		return addr
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// check refuses an attempt while the throttle holds: 429 with
// Retry-After during a delay, 403 once locked. It runs before any
// password or code is looked at.
func (s *Server) check(ctx context.Context, th *throttle) error {
	n, err := s.store.Failures(ctx, th.counter)
	if err != nil {
		return err
	}
	th.seen = n
	locked := 0
	if th.lockAt > 0 {
		if locked, err = s.store.Failures(ctx, auth.LockCounter(th.counter)); err != nil {
			return err
		}
	}
	if th.lockAt > 0 && (n >= th.lockAt || locked > 0) {
		n = max(n, th.lockAt)
		return &Error{Status: http.StatusForbidden, Code: "locked",
			Message: fmt.Sprintf("locked after %d %s in a row; the help desk can unlock it", n, th.what)}
	}
	held, err := s.store.Failures(ctx, auth.HoldCounter(th.counter))
	if err != nil {
		return err
	}
	if held > 0 {
		wait := max(1, int(th.delay(n).Seconds()))
		return &Error{Status: http.StatusTooManyRequests, Code: "throttled", RetryAfter: wait,
			Message: fmt.Sprintf("too many %s; wait %s before the next try", th.what, humanSeconds(wait))}
	}
	if th.lockAt == 0 {
		return nil
	}
	if th.delay(n) == 0 {
		// Before the first delay attempts do not take turns (a person
		// may retry at once), but attempts sent together all pass this
		// check before the first of them has failed and been counted:
		// a burst of TOTP codes, which cost nothing to check, could go
		// far past th.lockAt. So attempts are counted as they begin
		// (forgotten attemptClaim after the last, and at a success), and
		// no more are let through than the lock leaves.
		k, err := s.store.AddFailure(ctx, auth.BurstCounter(th.counter), attemptClaim)
		if err != nil {
			return err
		}
		if n+k > th.lockAt {
			return errTooManyAtOnce
		}
		return nil
	}
	// Once delays apply, attempts on one account take turns: of several
	// sent at the same moment (the delay just ended) only one is checked,
	// so the delays and the lock at th.lockAt count every guess. Turns are
	// per account only: an address is shared by many people, and one
	// person's attempt must not hold back the others.
	took, err := s.store.Claim(ctx, fmt.Sprintf("attempt:%s:%d", th.counter, n), attemptClaim)
	if err != nil {
		return err
	}
	if !took {
		return &Error{Status: http.StatusTooManyRequests, Code: "throttled", RetryAfter: 1,
			Message: fmt.Sprintf("too many %s; another try is being checked, wait a moment", th.what)}
	}
	return nil
}

// errTooManyAtOnce refuses an attempt beyond what the lock leaves of a
// burst (check). On a known device's own throttle it is not a refusal:
// the device signs in as an unknown one (checkDevice).
var errTooManyAtOnce = &Error{Status: http.StatusTooManyRequests, Code: "too_many_at_once", RetryAfter: 1,
	Message: "too many sign-in attempts at once on this account; wait a moment and try again"}

// attemptClaim is how long one attempt holds its turn: longer than a
// password check can take (BcryptQueueWait and bcrypt itself).
const attemptClaim = 10 * time.Second

// failed counts one more failure and starts the delay it calls for. It
// counts even when the client has gone away meanwhile.
func (s *Server) failed(ctx context.Context, th *throttle) error {
	ctx = context.WithoutCancel(ctx)
	// The delay this failure calls for starts before the count grows, so
	// that no attempt checked in between finds the new count without it.
	held := time.Duration(0)
	if th.seen >= 0 {
		if held = th.delay(th.seen + 1); held > 0 {
			if _, err := s.store.AddFailure(ctx, auth.HoldCounter(th.counter), held); err != nil {
				return err
			}
		}
	}
	n, err := s.store.AddFailure(ctx, th.counter, th.memory)
	if err != nil {
		return err
	}
	if th.lockAt > 0 && n >= th.lockAt {
		// The count would fade after th.memory; the lock must not.
		lockFor := auth.LockForever
		if th.lockFor > 0 {
			lockFor = th.lockFor
		}
		if _, err := s.store.AddFailure(ctx, auth.LockCounter(th.counter), lockFor); err != nil {
			return err
		}
	}
	if d := th.delay(n); d > held { // other failures counted meanwhile
		if _, err := s.store.AddFailure(ctx, auth.HoldCounter(th.counter), d); err != nil {
			return err
		}
	}
	return nil
}

// succeeded clears the count: failures must be consecutive to add up.
func (s *Server) succeeded(ctx context.Context, th *throttle) error {
	for _, k := range []string{th.counter, auth.HoldCounter(th.counter), auth.BurstCounter(th.counter)} {
		if err := s.store.ResetFailures(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// humanSeconds writes a wait the way a person reads it.
func humanSeconds(n int) string {
	switch {
	case n == 1:
		return "1 second"
	case n < 120:
		return fmt.Sprintf("%d seconds", n)
	}
	return humanDuration(time.Duration(n) * time.Second)
}
