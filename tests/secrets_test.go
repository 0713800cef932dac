package tests

import (
	"encoding/pem"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Log hygiene: every secret the end-to-end tests hand to a portal or get
// from it (passwords, TOTP and recovery codes, session cookie values,
// private keys) is noted here, and each server's log is searched for all
// of them once the server has stopped. So the whole suite, not one test,
// proves that no secret reaches the log.

var secrets struct {
	sync.Mutex
	set map[string]bool
}

// noteSecret remembers s as something no log may contain. Values shorter
// than six bytes are too common to search for.
func noteSecret(s string) {
	if len(s) < 6 {
		return
	}
	secrets.Lock()
	defer secrets.Unlock()
	if secrets.set == nil {
		secrets.set = map[string]bool{}
	}
	secrets.set[s] = true
}

// secretFields are the form fields that carry secrets.
var secretFields = []string{"password", "current", "new", "confirm", "code", "p12_password"}

// noteFormSecrets notes the secret fields of a form.
func noteFormSecrets(form url.Values) {
	for _, f := range secretFields {
		for _, v := range form[f] {
			noteSecret(v)
		}
	}
}

// noteKeyFile notes a PEM private key by its base64 lines: a key that
// reached a log would show at least one of them, escaped or not.
func noteKeyFile(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read key %s: %v", path, err)
	}
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if !strings.Contains(block.Type, "PRIVATE KEY") {
			continue
		}
		enc := string(pem.EncodeToMemory(block))
		for _, line := range strings.Split(enc, "\n") {
			if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
				noteSecret(line)
			}
		}
	}
}

// wantNoSecretsInLog fails t if log contains any noted secret. Digit-only
// secrets (TOTP codes) count only as whole tokens, so that a timestamp
// or port that happens to contain the same digits is not taken for one.
func wantNoSecretsInLog(t *testing.T, name, log string) {
	t.Helper()
	secrets.Lock()
	defer secrets.Unlock()
	for s := range secrets.set {
		found := false
		if strings.Trim(s, "0123456789") == "" {
			found = regexp.MustCompile(`(^|[^0-9A-Za-z])` + s + `([^0-9A-Za-z]|$)`).MatchString(log)
		} else {
			found = strings.Contains(log, s)
		}
		if found {
			t.Errorf("the log of %s contains a secret (%d bytes, starting %.4q)", name, len(s), s)
		}
	}
}
