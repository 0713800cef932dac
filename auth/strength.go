package auth

import (
	"strings"
	"unicode"

	"github.com/trustelem/zxcvbn"
	"github.com/trustelem/zxcvbn/match"
)

// MinPasswordScore is the least zxcvbn score (0 to 4) a new password
// must reach. 3 means at least 10^8 guesses by zxcvbn's estimate: a
// password alone can open a session, so it must hold up against
// unthrottled guessing too, not only against the sign-in throttle.
const MinPasswordScore = 3

// PortalName is the portal's own name, one of the words a new password
// must not lean on.
const PortalName = "gatehouse"

// passwordContext is what a guesser of this account's password tries
// first, beyond zxcvbn's dictionaries: the account's name and email and
// their parts (a name like "alice.smith", the address's local part and
// its domain's first label, often the company's name), and the portal's
// name.
func passwordContext(username, email string) []string {
	words := []string{PortalName}
	add := func(s string) {
		s = strings.ToLower(strings.TrimSpace(s))
		if len([]rune(s)) < 3 {
			return
		}
		for _, w := range words {
			if w == s {
				return
			}
		}
		words = append(words, s)
	}
	parts := func(s string) {
		add(s)
		for _, p := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			add(p)
		}
	}
	parts(username)
	if email != "" {
		add(email)
		local, domain, _ := strings.Cut(email, "@")
		parts(local)
		if label, _, _ := strings.Cut(domain, "."); label != "" {
			add(label)
		}
	}
	return words
}

// minOwnCharacters is how many characters of a new password must remain
// once the account's words (passwordContext) are taken out of it.
const minOwnCharacters = 10

// mostlyAccountWords reports whether password is little more than the
// account's words: NIST SP 800-63B asks to refuse context-specific words
// and their derivatives, and zxcvbn, which counts each such word as one
// guess, may still rate a password made of three of them and a few
// digits strong.
func mostlyAccountWords(password string, context []string) bool {
	rest := strings.ToLower(password)
	for _, w := range context {
		rest = strings.ReplaceAll(rest, w, "")
	}
	return len([]rune(rest)) < minOwnCharacters
}

// strengthProblem estimates how guessable password is with zxcvbn
// (its dictionaries of common passwords, words, names and keyboard
// patterns, plus the account's own words) and says in plain words why it
// is too easy, or returns "" when it scores MinPasswordScore or more and
// is not mostly the account's words.
// The words never quote the password: the answer is shown on screens
// and may be read over a shoulder.
func strengthProblem(password, username, email string) string {
	context := passwordContext(username, email)
	r := zxcvbn.PasswordStrength(password, context)
	if r.Score >= MinPasswordScore {
		if mostlyAccountWords(password, context) {
			return "this password is mostly your account's name, your email address or the portal's name; choose something of your own"
		}
		return ""
	}
	warning, suggestion := feedback(r.Sequence)
	msg := "this password is too easy to guess"
	if warning != "" {
		msg += ": " + warning
	}
	return msg + ". " + suggestion
}

// feedback explains a weak password from zxcvbn's match sequence: the
// longest pattern found is the one the warning is about (as in zxcvbn's
// own feedback), and the suggestion says what to do instead.
func feedback(seq []*match.Match) (warning, suggestion string) {
	suggestion = "Add another word or two; uncommon words, or a phrase of your own, are best"
	var longest *match.Match
	for _, m := range seq {
		if longest == nil || len(m.Token) > len(longest.Token) {
			longest = m
		}
	}
	if longest == nil {
		return "", suggestion
	}
	alone := len(seq) == 1
	switch longest.Pattern {
	case "dictionary":
		warning = dictionaryWarning(longest, alone)
		switch {
		case longest.Reversed:
			suggestion = "Words spelt backwards are not much harder to guess. " + suggestion
		case longest.L33t:
			suggestion = "Swapping letters for look-alikes (@ for a, 0 for o) does not help much. " + suggestion
		case longest.Token != strings.ToLower(longest.Token):
			suggestion = "Capital letters do not help much. " + suggestion
		}
	case "spatial":
		warning = "keys next to each other on the keyboard are easy to guess"
		if longest.Turns == 1 {
			warning = "a straight row of keys is easy to guess"
		}
	case "repeat":
		warning = "a repeated word or pattern is hardly harder to guess than the word once"
		if len([]rune(longest.BaseToken)) == 1 {
			warning = "a character repeated is easy to guess"
		}
		suggestion = "Avoid repeating words and characters. " + suggestion
	case "sequence":
		warning = "runs like abcd or 6543 are easy to guess"
	case "regex":
		if longest.RegexName == "recent_year" {
			warning = "recent years are easy to guess"
		}
	case "date":
		warning = "dates are easy to guess"
		suggestion = "Avoid dates and years that mean something to you. " + suggestion
	}
	return warning, suggestion
}

// dictionaryWarning explains a word zxcvbn found in one of its lists.
func dictionaryWarning(m *match.Match, alone bool) string {
	switch m.DictionaryName {
	case "user_inputs":
		return "it is built on your account's name, your email address or the portal's name"
	case "passwords":
		switch {
		case alone && m.Rank <= 100:
			return "it is one of the hundred most common passwords"
		case alone:
			return "it is a very common password"
		}
		return "it is built on a common password"
	case "english_wikipedia", "us_tv_and_film":
		if alone {
			return "a single common word is easy to guess"
		}
		return "it is built on common words"
	case "surnames", "male_names", "female_names":
		if alone {
			return "a name on its own is easy to guess"
		}
		return "common first names and surnames are easy to guess"
	}
	return ""
}
