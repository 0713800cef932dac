package storetest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// skipped holds the tests NeedService skipped in this test binary. It is
// package state because a TestMain has no other way to learn, after
// m.Run, which tests skipped and why.
var skipped skipList

// skipList is, for each reason, the top-level tests that skipped for it
// (a subtest counts for its test: a contract suite is one test).
type skipList struct {
	mu       sync.Mutex
	byReason map[string]map[string]bool
}

func (l *skipList) add(test, reason string) {
	top, _, _ := strings.Cut(test, "/")
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byReason == nil {
		l.byReason = map[string]map[string]bool{}
	}
	if l.byReason[reason] == nil {
		l.byReason[reason] = map[string]bool{}
	}
	l.byReason[reason][top] = true
}

// SkipSummary says which tests NeedService skipped, by missing service,
// or is empty when none did. A TestMain prints it after m.Run, so that
// the end of the output says what did not run instead of leaving each
// skip among the passing tests:
//
//	code := m.Run()
//	fmt.Print(storetest.SkipSummary())
//	os.Exit(code)
func SkipSummary() string {
	skipped.mu.Lock()
	defer skipped.mu.Unlock()
	if len(skipped.byReason) == 0 {
		return ""
	}
	all := map[string]bool{}
	for _, tests := range skipped.byReason {
		maps.Copy(all, tests)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SKIPPED: %d test(s) did not run, or not in full, for want of a service (CI=true makes them fail instead):\n", len(all))
	for _, reason := range slices.Sorted(maps.Keys(skipped.byReason)) {
		tests := slices.Sorted(maps.Keys(skipped.byReason[reason]))
		fmt.Fprintf(&b, "  %s\n      skipped: %s\n", reason, strings.Join(tests, " "))
	}
	return b.String()
}
