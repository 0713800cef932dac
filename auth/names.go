package auth

import (
	"fmt"
	"regexp"
	"strings"
)

// accountNamePattern: lower-case letters, digits and . _ - so that a
// name is unambiguous in certificates, headers and logs.
var accountNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// roleNamePattern: lower-case letters, digits, _ and -, starting with a
// letter (role names travel comma-separated in Remote-Roles).
var roleNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// CheckAccountName explains in plain words what is wrong with an account
// name, or returns nil.
func CheckAccountName(name string) error {
	if !accountNamePattern.MatchString(name) {
		return fmt.Errorf("account name %q: use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// CheckRoleName explains what is wrong with a role name, or returns nil.
func CheckRoleName(name string) error {
	if !roleNamePattern.MatchString(name) {
		return fmt.Errorf("role name %q: use 1-64 lower-case letters, digits, '_' or '-', starting with a letter", name)
	}
	return nil
}

// CheckEmail rejects what cannot be an email address (and what could
// break a header or a certificate); it does not try to be RFC 5322.
func CheckEmail(email string) error {
	at := strings.LastIndex(email, "@")
	if at < 1 || at == len(email)-1 || len(email) > 254 || strings.ContainsAny(email, " \t\r\n<>,;\"'\\") {
		return fmt.Errorf("email %q does not look like an address", email)
	}
	return nil
}

// passwordAlphabet leaves out characters that are easy to misread
// (0/O, 1/l/I).
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// RandomPassword returns 24 characters from passwordAlphabet (about 140
// bits): for first admins and temporary passwords, comfortably above the
// 15-character minimum.
func RandomPassword() string {
	b := make([]byte, 24)
	for i := range b {
		b[i] = passwordAlphabet[randIndex(len(passwordAlphabet))]
	}
	return string(b)
}
