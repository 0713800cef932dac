package auth

import "time"

// Limits on consecutive failures of one factor for one account (NIST SP
// 800-63B: at most 100 before the account is locked; delays well before).
const (
	// MaxConsecutiveFailures locks the factor until the help desk unlocks
	// it.
	MaxConsecutiveFailures = 100
	// FreeFailures may happen before delays start.
	FreeFailures = 5
	// MaxFailureDelay caps the delay between attempts.
	MaxFailureDelay = 15 * time.Minute
	// FailureMemory is how long a failure count lasts without new
	// failures.
	FailureMemory = 24 * time.Hour
)

// Limits on failed sign-ins from one client address, whatever the
// account: they slow down password spraying across many accounts. They
// never lock (many employees may share one office address), and they are
// looser than the per-account limits for the same reason.
const (
	AddressFreeFailures  = 30
	AddressMaxDelay      = 5 * time.Minute
	AddressFailureMemory = time.Hour
)

// FailureDelay is how long the next attempt on an account must wait
// after n consecutive failures: nothing before FreeFailures, then
// doubling from one second up to MaxFailureDelay.
func FailureDelay(n int) time.Duration { return backoff(n, FreeFailures, MaxFailureDelay) }

// AddressFailureDelay is FailureDelay for a client address.
func AddressFailureDelay(n int) time.Duration {
	return backoff(n, AddressFreeFailures, AddressMaxDelay)
}

func backoff(n, free int, limit time.Duration) time.Duration {
	if n < free {
		return 0
	}
	shift := n - free
	if shift > 20 {
		return limit
	}
	return min(time.Second<<shift, limit)
}

// Factors counted by the per-account throttle.
const (
	CounterPassword = "password"
	CounterTOTP     = "totp"
)

// FailureCounter names the count of consecutive failures of factor
// (CounterPassword, CounterTOTP) for user; HoldCounter names the marker
// that makes the next attempt wait.
func FailureCounter(factor, user string) string { return factor + ":" + user }

// HoldCounter names the marker of a running delay on counter.
func HoldCounter(counter string) string { return "hold:" + counter }

// BurstCounter names the count of attempts on counter begun within
// moments of each other (see server's throttle check): attempts sent
// together before the first delay all pass the check before the first
// of them has failed, so they are counted as they begin.
func BurstCounter(counter string) string { return "burst:" + counter }

// LockCounter names the marker of a lock on counter. It is set when the
// count reaches MaxConsecutiveFailures and, unlike the count, never
// expires: only an unlock clears it.
func LockCounter(counter string) string { return "lock:" + counter }

// LockForever is the lifetime given to a lock marker: in practice, until
// unlocked.
const LockForever = 100 * 365 * 24 * time.Hour

// FactorCounters are the counters of one factor of user: the count, its
// delay and its lock.
func FactorCounters(factor, user string) []string {
	c := FailureCounter(factor, user)
	return []string{c, HoldCounter(c), LockCounter(c)}
}

// AccountCounters are every counter an unlock clears for user.
func AccountCounters(user string) []string {
	return append(FactorCounters(CounterPassword, user), FactorCounters(CounterTOTP, user)...)
}
