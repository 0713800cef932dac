package server

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"gatehouse/store"
)

// A store error on the sign-in path may quote the name it looked up; the
// log gets the error with that name replaced by its hash, and the error
// keeps its kind (fail still answers 503 for an unreachable store).
func TestHideName_ReplacesTheNameAsTypedAndQuoted(t *testing.T) {
	const hash = "unknown:0123456789abcdef"
	tests := []struct {
		name, typed string
		err         error
	}{
		{"as typed", "Winter-Tulip-Harbour-1987!", fmt.Errorf("load account Winter-Tulip-Harbour-1987!: %w", store.ErrUnavailable)},
		{"quoted with %q", `p"a\ss`, fmt.Errorf("load account %q: %w", `p"a\ss`, store.ErrUnavailable)},
		{"quoted twice", "hunter2hunter2", fmt.Errorf("load account %q: read %q: %w", "hunter2hunter2", "hunter2hunter2", store.ErrUnavailable)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := hideName(tc.err, tc.typed, hash)
			if strings.Contains(got.Error(), strings.Trim(fmt.Sprintf("%q", tc.typed), `"`)) || strings.Contains(got.Error(), tc.typed) {
				t.Errorf("hideName(%q) = %q: the name is still there", tc.err, got)
			}
			if !strings.Contains(got.Error(), hash) {
				t.Errorf("hideName(%q) = %q, want the hash in its place", tc.err, got)
			}
			if !errors.Is(got, store.ErrUnavailable) {
				t.Errorf("hideName lost the error's kind: errors.Is(%v, store.ErrUnavailable) = false", got)
			}
		})
	}
}
