package auth

import (
	_ "embed"
	"strings"
	"unicode/utf8"
)

//go:embed common-passwords.txt
var commonPasswordsText string

// commonPasswords is the blocklist, lower-cased. Built once from the
// embedded file; it is never modified afterwards.
var commonPasswords = func() map[string]bool {
	m := map[string]bool{}
	for _, line := range strings.Split(commonPasswordsText, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			m[strings.ToLower(line)] = true
		}
	}
	return m
}()

// weakReason says why a password that meets the length rule is still
// easy to guess, or returns "" when nothing is wrong with it. It checks
// the blocklist of common and breached passwords, repeated patterns
// ("abcabcabc…"), runs of consecutive characters ("123456…", "abcdef…"),
// and the username or the portal's name making up most of it.
func weakReason(password, username string) string {
	lower := strings.ToLower(password)
	if commonPasswords[lower] || commonPasswords[strings.Join(strings.Fields(lower), "")] {
		return "this password is on the list of common or breached passwords; choose another"
	}
	if isRepetition(lower) {
		return "this password repeats a short pattern; choose something less predictable"
	}
	if isSequence(lower) {
		return "this password is a run of consecutive characters; choose something less predictable"
	}
	rest := lower
	for _, w := range []string{strings.ToLower(username), "gatehouse"} {
		if utf8.RuneCountInString(w) >= 3 {
			rest = strings.ReplaceAll(rest, w, "")
		}
	}
	if utf8.RuneCountInString(rest) < 10 {
		return "this password is mostly your username or the portal's name; choose something else"
	}
	return ""
}

// isRepetition reports whether s is one short unit repeated.
func isRepetition(s string) bool {
	r := []rune(s)
	for unit := 1; unit <= len(r)/2 && unit <= 8; unit++ {
		if len(r)%unit != 0 {
			continue
		}
		same := true
		for i := unit; i < len(r); i++ {
			if r[i] != r[i-unit] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// isSequence reports whether every character follows the previous one
// by +1 or every one by -1 (digits wrap from 9 to 0).
func isSequence(s string) bool {
	r := []rune(s)
	if len(r) < 2 {
		return false
	}
	next := func(a, b rune, d rune) bool {
		if a+d == b {
			return true
		}
		return (d == 1 && a == '9' && b == '0') || (d == -1 && a == '0' && b == '9')
	}
	for _, d := range []rune{1, -1} {
		ok := true
		for i := 1; i < len(r); i++ {
			if !next(r[i-1], r[i], d) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
