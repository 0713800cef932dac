package tests

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/auth"
	"gatehouse/store/redisstore"
)

// Bounds of the flood in TestLogin_KnownDevicesSignInDuringAFlood. They
// bound the test's run, they are not expectations: no assertion depends
// on how long anything takes.
const (
	// floodPerCore is how many flood clients run per core of this
	// machine: enough that the portal's bcrypt slots (one per core) stay
	// taken and its queue overflows into 503s.
	floodPerCore = 24
	// floodLimit ends the flood whatever happens.
	floodLimit = 90 * time.Second
	// knownTries is how many sign-ins each known device makes while the
	// flood runs.
	knownTries = 3
)

// floodPassword is the wrong password of every flood attempt.
const floodPassword = "not the password of anyone, flood"

// flood sends failed sign-ins for made-up users to a portal from many
// loopback source addresses (127.0.0.2 to 127.0.0.254), each over a new
// connection, so that no address throttle holds them back and each one
// costs a bcrypt comparison or a place in its queue.
type flood struct {
	p         *portal
	tlsConfig *tls.Config
	stop      chan struct{}
	wg        sync.WaitGroup
	// answers counts the flood's answers by status; busy is the 503s.
	mu      sync.Mutex
	answers map[int]int
	busy    chan struct{} // closed at the first 503
	once    sync.Once
	sent    atomic.Int64
}

// startFlood starts workers flood clients; the flood ends with the test,
// at stopFlood, or after floodLimit.
func startFlood(t *testing.T, p *portal, workers int) *flood {
	t.Helper()
	pool, err := p.caPool()
	if err != nil {
		t.Fatal(err)
	}
	noteSecret(floodPassword)
	f := &flood{p: p, tlsConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, stop: make(chan struct{}),
		answers: map[int]int{}, busy: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), floodLimit)
	for w := range workers {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-f.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				source := fmt.Sprintf("127.0.0.%d", 2+(w*7+i)%253)
				f.attempt(ctx, source, fmt.Sprintf("nobody-%d-%d", w, i))
			}
		}()
	}
	t.Cleanup(func() { f.stopFlood(); cancel() })
	return f
}

// attempt sends one failed sign-in for user from source.
func (f *flood) attempt(ctx context.Context, source, user string) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 10 * time.Second}
	tr := &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", f.p.Addr) },
		TLSClientConfig:   f.tlsConfig.Clone(),
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	body := url.Values{"username": {user}, "password": {floodPassword}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.p.URL+"/login", strings.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	f.sent.Add(1)
	resp, err := (&http.Client{Transport: tr, Timeout: requestTimeout}).Do(req)
	status := 0 // no answer
	if err == nil {
		resp.Body.Close()
		status = resp.StatusCode
	}
	f.mu.Lock()
	f.answers[status]++
	f.mu.Unlock()
	if status == http.StatusServiceUnavailable {
		f.once.Do(func() { close(f.busy) })
	}
}

// stopFlood ends the flood and waits for its clients.
func (f *flood) stopFlood() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	f.wg.Wait()
}

// summary is the flood's answers by status, for the log.
func (f *flood) summary() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprintf("%d sent; answers by status %v", f.sent.Load(), f.answers)
}

// While a flood of failed sign-ins from many addresses keeps every
// bcrypt slot taken (and anonymous sign-ins get 503), the account's
// owner on a known device, by its device cookie or by its certificate,
// is served ahead of the flood and signs in.
func TestLogin_KnownDevicesSignInDuringAFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("the flood takes the machine's cores for several seconds; skipped with -short")
	}
	p := startPortal(t)
	const password = "bob's long passphrase for the flood"
	p.addUser(t, "bob", password, "employee")
	cert, _, _ := p.issueCert(t, "bob")

	byCookie := p.signIn(t, nil, "bob", password)
	if c := byCookie.deviceCookie(t); c == "" {
		t.Fatal("no device cookie after bob signed in")
	}
	wantStatus(t, byCookie.post(t, "/logout", url.Values{}), http.StatusSeeOther)
	byCert := p.client(t, &cert)

	f := startFlood(t, p, floodPerCore*runtime.NumCPU())
	select {
	case <-f.busy:
	case <-time.After(floodLimit / 2):
		f.stopFlood()
		t.Fatalf("the flood never filled the portal's bcrypt queue (%s): the test would prove nothing", f.summary())
	}
	for _, tc := range []struct {
		name string
		c    *client
	}{
		{"device cookie", byCookie},
		{"certificate", byCert},
	} {
		for i := range knownTries {
			r := tc.c.login(t, "bob", password)
			if r.Status != http.StatusSeeOther {
				f.stopFlood()
				t.Fatalf("bob on a known device (%s), try %d during the flood: status %d, want 303; flood: %s; body:\n%.300s",
					tc.name, i+1, r.Status, f.summary(), r.Body)
			}
			wantStatus(t, tc.c.post(t, "/logout", url.Values{}), http.StatusSeeOther)
		}
	}
	f.stopFlood()
	t.Logf("flood: %s", f.summary())
}

// deviceCookie is the device cookie in the client's jar, or "".
func (c *client) deviceCookie(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(c.p.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range c.jar.Jar.Cookies(u) {
		if ck.Name == "__Host-gatehouse-device" {
			return ck.Value
		}
	}
	return ""
}

// A certificate device that failed its own limit is an unknown device,
// held by the account's lock, until "gatehouse user unlock" starts the
// account's devices afresh.
func TestCLI_UnlockGivesKnownDevicesAFreshCount(t *testing.T) {
	t.Parallel()
	p := startPortal(t)
	const password = "bob's long passphrase for the unlock"
	p.addUser(t, "bob", password, "employee")
	cert, _, _ := p.issueCert(t, "bob")
	st, err := redisstore.Open(t.Context(), p.Redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pin := auth.Fingerprint(leafOf(t, cert).RawSubjectPublicKeyInfo)
	device := auth.DeviceCounter("bob", 0, auth.CertificateDevice(&auth.CertInfo{KeyPin: pin}))
	lock := func() {
		t.Helper()
		if _, err := st.AddFailure(t.Context(), auth.LockCounter(auth.FailureCounter(auth.CounterPassword, "bob")), auth.LockForever); err != nil {
			t.Fatal(err)
		}
	}
	// Ten failures on the certificate, and the account locked for
	// unknown devices.
	for range auth.KnownDeviceMaxFailures {
		if _, err := st.AddFailure(t.Context(), device, auth.FailureMemory); err != nil {
			t.Fatal(err)
		}
	}
	lock()
	wantStatus(t, p.client(t, &cert).login(t, "bob", password), http.StatusForbidden)

	p.cli(t, "", "user", "unlock", "bob")
	lock() // a guesser locks it again at once
	wantRedirect(t, p.client(t, &cert).login(t, "bob", password), "/")
}
