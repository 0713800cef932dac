package server_test

// The OpenID Provider's codes and grants, when the store changes under
// an exchange or holds a record made by an older version.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/server"
	"gatehouse/store"
)

// replayWhileTokenIsWritten is a store on which, the next time an access
// token is written, the same code is presented again first (replay, set
// by the test, taken once). The code is marked spent before its token is
// made (AuthRequestByCode), so the replay lands after the first exchange
// has taken the code, marked it spent and checked its grant, and before
// it records its token for the code and looks for a replay's mark.
type replayWhileTokenIsWritten struct {
	store.Store
	replay *atomic.Pointer[func()]
}

func (s replayWhileTokenIsWritten) PutTicket(ctx context.Context, id string, data []byte, ttl time.Duration) error {
	// "oidc-token:" is the access token itself, not "oidc-token-of:".
	if strings.HasPrefix(id, "oidc-token:") {
		if replay := s.replay.Swap(nil); replay != nil {
			(*replay)()
		}
	}
	return s.Store.PutTicket(ctx, id, data, ttl)
}

// A code presented again while its first exchange is still making its
// token gives a token to neither: the replay finds no token to revoke
// yet, so the first exchange, finding the replay's mark once its token
// is recorded, withdraws it.
func TestOIDCToken_CodeReplayedWhileItsFirstExchangeMakesItsToken(t *testing.T) {
	replay := &atomic.Pointer[func()]{}
	p := newPortalWith(t, func(cfg *server.Config) {
		cfg.Store = replayWhileTokenIsWritten{Store: cfg.Store, replay: replay}
	})
	secret := oidcApp(t, p, "wiki", "employee")
	b := p.browser(p.AdminCert)
	b.login("admin", adminPassword)
	code := oidcSignIn(t, b, "wiki", verifierOne)

	// The replay runs on the portal's goroutine that writes the token:
	// it hands its answer over, and a failure to reach the portal,
	// rather than stop the test from there.
	type answer struct {
		tok oidcTokens
		err error
	}
	replays := make(chan answer, 1)
	presentAgain := func() {
		req := b.newRequest(http.MethodPost, "/oauth2/token", strings.NewReader(url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {oidcRedirect}, "code_verifier": {verifierOne},
		}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("wiki", secret)
		resp, err := b.client.Do(req)
		if err != nil {
			replays <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var a answer
		a.err = json.NewDecoder(resp.Body).Decode(&a.tok)
		replays <- a
	}
	replay.Store(&presentAgain)
	first, st := oidcExchange(t, b, "wiki", secret, code, verifierOne)

	var replayed answer
	select {
	case replayed = <-replays:
	default:
		t.Fatal("setup: the code was not presented again while the token was written")
	}
	if replayed.err != nil {
		t.Fatalf("setup: the code presented again: %v", replayed.err)
	}
	if replayed.tok.Error != "invalid_grant" {
		t.Errorf("the code presented again: %+v; want invalid_grant", replayed.tok)
	}
	if st == http.StatusOK {
		if _, resp := oidcUserinfo(t, b, first.AccessToken); resp.Status == http.StatusOK {
			t.Errorf("the first exchange of a code replayed meanwhile gave an access token that answers userinfo: %s", resp.Body)
		}
	}
	wantReplayAudited(t, p)
}

// A grant kept before grants held the certificate chain names a
// certificate but cannot show it: its code is refused with words that
// tell the person to sign in to the app again, rather than that the
// certificate no longer counts.
func TestOIDCToken_GrantWithoutItsCertificateChainAsksForANewSignIn(t *testing.T) {
	p := newPortal(t)
	secret := oidcApp(t, p, "wiki", "employee")
	b := p.browser(p.AdminCert)
	b.login("admin", adminPassword)
	code := oidcSignIn(t, b, "wiki", verifierOne)

	// The code names its request by the code's SHA-256; the request
	// holds the grant. Drop the chain from it, as an older version
	// stored it.
	ctx := t.Context()
	sum := sha256.Sum256([]byte(code))
	id, err := p.store.Ticket(ctx, "oidc-code:"+hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := p.store.Ticket(ctx, "oidc-request:"+string(id))
	if err != nil {
		t.Fatal(err)
	}
	var req map[string]any
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	grant, _ := req["grant"].(map[string]any)
	if grant["cert_serial"] == nil || grant["cert_chain"] == nil {
		t.Fatalf("setup: the grant names no certificate: %s", raw)
	}
	delete(grant, "cert_chain")
	if raw, err = json.Marshal(req); err != nil {
		t.Fatal(err)
	}
	if err := p.store.PutTicket(ctx, "oidc-request:"+string(id), raw, 10*time.Minute); err != nil {
		t.Fatal(err)
	}

	tok, st := oidcExchange(t, b, "wiki", secret, code, verifierOne)
	if st == http.StatusOK || tok.Error != "invalid_grant" || !strings.Contains(tok.ErrorDescription, "sign in to the app again") {
		t.Errorf("exchange of a code whose grant has no certificate chain: status %d, %+v; want invalid_grant asking to sign in to the app again", st, tok)
	}
}
