// Package auth is Gatehouse's domain: the factors a login presents
// (password, client certificate, TOTP), how each is verified, and the one
// login decision (Decide) that turns an account, its roles and the
// verified factors into effective roles, a next step and plain-words
// notices.
//
// It is pure Go: it imports no HTTP and no storage package, and takes the
// time as an argument, so every rule can be tested with a table.
package auth
