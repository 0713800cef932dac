//go:build !linux

package auth

import "time"

// lowerThreadPriority is a no-op where thread priorities are not set
// this way; the bcrypt slot limit still bounds the work.
func lowerThreadPriority(int) {}

func threadNice() int { return 0 }

func threadSlice() time.Duration { return 0 }
