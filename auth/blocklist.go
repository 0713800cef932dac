package auth

import (
	_ "embed"
	"strings"
)

//go:embed common-passwords.txt
var commonPasswordsText string

// commonPasswords is the blocklist, lower-cased: breached and commonly
// used passwords of 15 characters or more that zxcvbn rates strong
// (famous phrases, lines from films, jokes on "password"), so that only
// a list knows them. Built once from the embedded file; it is never
// modified afterwards.
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

// onBlocklist reports whether password is on the blocklist, ignoring
// case and spaces.
func onBlocklist(password string) bool {
	lower := strings.ToLower(password)
	return commonPasswords[lower] || commonPasswords[strings.Join(strings.Fields(lower), "")]
}
