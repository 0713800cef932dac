package auth

import "syscall"

// lowerThreadPriority sets the niceness of the calling OS thread (on
// Linux, priority is per thread). Raising niceness needs no privilege; a
// failure leaves the thread at normal priority, which is only slower to
// yield.
func lowerThreadPriority(nice int) {
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
}

// threadNice is the niceness of the calling OS thread.
func threadNice() int {
	// The raw system call answers 20 - nice.
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	if err != nil {
		return 0
	}
	return 20 - p
}
