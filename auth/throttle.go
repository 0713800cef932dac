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

// FailureDelay is how long the next attempt must wait after n
// consecutive failures: nothing before FreeFailures, then doubling from
// one second up to MaxFailureDelay.
func FailureDelay(n int) time.Duration {
	if n < FreeFailures {
		return 0
	}
	shift := n - FreeFailures
	if shift > 20 {
		return MaxFailureDelay
	}
	return min(time.Second<<shift, MaxFailureDelay)
}
