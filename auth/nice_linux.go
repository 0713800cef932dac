package auth

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lowerThreadPriority sets the niceness of the calling OS thread (on
// Linux, priority is per thread) and shortens its time slice to
// BcryptSlice. Raising niceness needs no privilege, nor does a slice; a
// failure leaves the thread at normal priority or the kernel's slice,
// which is only slower to yield.
func lowerThreadPriority(nice int) {
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
	setThreadSlice(BcryptSlice)
}

// setThreadSlice asks the scheduler to run the calling thread in slices
// of d (sched_setattr's sched_runtime, which Linux 6.12 and later take
// as a normal thread's slice and older kernels ignore). The thread's
// policy and niceness stay as they are.
func setThreadSlice(d time.Duration) {
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil || attr.Policy != unix.SCHED_NORMAL {
		return
	}
	attr.Size = unix.SizeofSchedAttr
	attr.Flags = 0
	attr.Runtime = uint64(d)
	_ = unix.SchedSetAttr(0, attr, 0)
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

// threadSlice is the calling OS thread's time slice as the kernel
// reports it (0 where it reports none).
func threadSlice() time.Duration {
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return 0
	}
	return time.Duration(attr.Runtime)
}
