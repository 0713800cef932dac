// Command load measures Gatehouse the way an operator sizing it would.
// It builds and starts the real binary on a Redis of its own (both on
// 127.0.0.1 only) and reports:
//
//   - GET /auth/verify with a valid session and anonymously: requests/s
//     and p50/p99/p99.9 latency;
//   - full logins over new TLS connections with a client certificate:
//     logins/s, and the cost of one login as a ratio to one bcrypt
//     comparison at the portal's cost;
//   - /auth/verify p99 while a flood of failed logins (random users, from
//     many loopback addresses, so that each one reaches bcrypt) runs, as
//     a ratio to its p99 without the flood;
//   - sign-ins during that flood from known devices (a device cookie, a
//     certificate) and from an unknown one, as ratios to one bcrypt, and
//     the share of the flood refused as busy;
//   - Redis bytes per session, and verify latency with many live sessions.
//
// Run it from the repository root:
//
//	go run ./tests/load -duration 10s -concurrency 32
//	go run ./tests/load -sessions 1000000    # also fill Redis with a million sessions
//	go run ./tests/load -ratios 3 -duration 8s   # only the ratios: verify/healthz, embedded/Redis, nginx (over the verify socket and over TLS)
//	go run ./tests/load -ratios 3 -cluster       # the ratios, and verify on a Redis Cluster of three masters
//	go run ./tests/load -ratios 3 -oauth2-proxy /tmp/gobin/oauth2-proxy   # and OAuth2 Proxy's forward auth, for comparison
//	go run ./tests/load -ratios 3 -redis-socket   # Redis reached over its Unix socket, as on one host
//
// Every loop is bounded by -duration; nothing leaves 127.0.0.1.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"gatehouse/auth"
	"gatehouse/server"
	"gatehouse/store"
	"gatehouse/store/redisstore"
)

const (
	benchUser     = "bench"
	benchPassword = "a long passphrase for the load test"
	appURL        = "https://app.bench.test/"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "how long each measurement runs")
	concurrency := flag.Int("concurrency", 32, "concurrent /auth/verify clients")
	flood := flag.Int("flood", 16, "concurrent clients sending failed logins in the flood phase")
	sessions := flag.Int("sessions", 100_000, "live sessions to create for the memory measurement (10^5 by default; 10^6 for the large-store run)")
	keep := flag.Bool("keep", false, "leave the data directory and logs in place")
	rounds := flag.Int("ratios", 0, "measure only the ratios of SPEC \"Performance\" with wrk and nginx, in this many interleaved rounds")
	nginxWorkers := flag.Int("nginx-workers", 1, "nginx worker processes in the ratios' nginx")
	nginxSocket := flag.Bool("nginx-socket", true, "in the ratios, nginx + auth_request asks the portal over its verify socket (the configuration for one host); the same over TLS is measured too")
	portalCPUs := flag.String("portal-cpus", "", "run the portals and Redis on these CPUs only (taskset list, such as 1); with -proxy-cpus, the portal then has cores of its own")
	proxyCPUs := flag.String("proxy-cpus", "", "run this tool (the app), wrk and nginx on these CPUs only (taskset list, such as 0)")
	cluster := flag.Bool("cluster", false, "in the ratios, also measure verify on a Redis Cluster of three masters (on this machine)")
	oauth2Proxy := flag.String("oauth2-proxy", "", "in the ratios, also measure OAuth2 Proxy's /oauth2/auth with Redis sessions, from this binary (see tests/load/oauth2proxy.go)")
	redisSocket := flag.Bool("redis-socket", false, "the portals (and OAuth2 Proxy) reach Redis over its Unix socket (unix://…), as on a single host, instead of TCP on 127.0.0.1")
	nullAuth := flag.String(nullAuthFlag, "", "(used by the ratios) serve the do-nothing forward-auth server on this Unix socket")
	flag.Parse()
	if *nullAuth != "" {
		fmt.Fprintln(os.Stderr, "load:", serveNullAuth(*nullAuth))
		os.Exit(1)
	}
	if err := pin(os.Getpid(), *proxyCPUs); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	if *portalCPUs != "" || *proxyCPUs != "" {
		fmt.Printf("CPUs: portals and Redis on %q, this tool (the app), wrk and nginx on %q\n", *portalCPUs, *proxyCPUs)
	}
	if *cluster && *rounds == 0 {
		fmt.Fprintln(os.Stderr, "load: -cluster is a target of the ratios: use it with -ratios N")
		os.Exit(2)
	}
	if *oauth2Proxy != "" && *rounds == 0 {
		fmt.Fprintln(os.Stderr, "load: -oauth2-proxy is a target of the ratios: use it with -ratios N")
		os.Exit(2)
	}
	if err := run(*duration, *concurrency, *flood, *sessions, *rounds, *nginxWorkers, *nginxSocket, *cluster, *keep, *redisSocket, *portalCPUs, *oauth2Proxy); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, concurrency, flood, sessions, rounds, nginxWorkers int, nginxSocket, cluster, keep, redisSocket bool, portalCPUs, oauth2Proxy string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "gatehouse-load-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s/%s, %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version())

	bin := filepath.Join(dir, "gatehouse")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("build gatehouse (run from the repository root): %v\n%s", err, out)
	}
	var socketArgs []string
	sock := filepath.Join(dir, "redis.sock")
	if redisSocket {
		socketArgs = []string{"--unixsocket", sock, "--unixsocketperm", "700"}
	}
	rds, err := startRedis(dir, portalCPUs, socketArgs...)
	if err != nil {
		return err
	}
	defer rds.Process.Kill()
	storeURL := "redis://" + rds.addr + "/0"
	if redisSocket {
		storeURL = "unix://" + sock + "?db=0"
	}

	p := &portal{bin: bin, data: filepath.Join(dir, "data"), store: storeURL, cpus: portalCPUs}
	if _, err := p.cli("", "init"); err != nil {
		return err
	}
	srv, err := p.serve(dir)
	if err != nil {
		return err
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()

	if err := p.setUp(); err != nil {
		return err
	}

	// 1. The verify hot path, with a session and anonymously.
	cookie, err := p.login(nil)
	if err != nil {
		return err
	}
	if rounds > 0 {
		clusterURL := ""
		if cluster {
			nodes, url, err := startCluster(dir, portalCPUs)
			for _, n := range nodes {
				defer n.Process.Kill()
			}
			if err != nil {
				return err
			}
			clusterURL = url
		}
		return ratios(dir, bin, p, cookie, clusterURL, oauth2Proxy, rounds, concurrency, nginxWorkers, nginxSocket, duration)
	}
	withSession := func(req *http.Request) { req.Header.Set("Cookie", cookie) }
	anonymous := func(*http.Request) {}
	fmt.Printf("\n/auth/verify, %d clients, %v each (HTTP/1.1 keep-alive)\n", concurrency, duration)
	idle := p.verifyLoad(concurrency, duration, withSession, http.StatusOK)
	idle.print("valid session")
	p.verifyLoad(concurrency, duration, anonymous, http.StatusUnauthorized).print("anonymous")

	// 2. Logins over new TLS connections with a client certificate.
	one := bcryptCost()
	fmt.Printf("\nlogin over a new TLS connection with a client certificate (bcrypt cost %d: one comparison takes %v here)\n", auth.BcryptCost, one.Round(time.Millisecond))
	serial := p.loginLoad(1, duration)
	serial.print("1 client")
	fmt.Printf("  %-22s %.2f (mean login %v / one bcrypt %v; overhead beyond bcrypt %.1f%%)\n", "cost ratio", float64(serial.mean())/float64(one),
		serial.mean().Round(time.Millisecond), one.Round(time.Millisecond), 100*(float64(serial.mean())/float64(one)-1))
	p.loginLoad(runtime.NumCPU(), duration).print(fmt.Sprintf("%d clients", runtime.NumCPU()))

	// 3. Isolation: verify p99 while failed logins flood the portal. The
	// bench user's browser first signs in once without its certificate,
	// and keeps the device cookie for phase 3b.
	deviceCookie, err := p.deviceCookie()
	if err != nil {
		return err
	}
	// The yardsticks of phase 3b, taken just before the flood: one bcrypt
	// comparison, and a known device's sign-in without a flood.
	oneNow := bcryptCost()
	calm := measure(1, duration, func(int) (time.Duration, bool) {
		t0 := time.Now()
		status, err := p.signIn(nil, deviceCookie)
		return time.Since(t0), err == nil && status == http.StatusSeeOther
	})
	const probe = 8
	fmt.Printf("\n/auth/verify p99 with %d clients, without and with a flood of failed logins from %d clients\n", probe, flood)
	quiet := p.verifyLoad(probe, duration, withSession, http.StatusOK)
	quiet.print("no flood")
	stop := make(chan struct{})
	var floodDone sync.WaitGroup
	var floodCount, floodBusy, floodOther atomic.Int64
	for range flood {
		floodDone.Add(1)
		go func() {
			defer floodDone.Done()
			p.floodLogins(stop, &floodCount, &floodBusy, &floodOther)
		}()
	}
	time.Sleep(time.Second) // let the flood build up
	loud := p.verifyLoad(probe, duration, withSession, http.StatusOK)
	loud.print("during the flood")
	fmt.Printf("  %-22s %.2f (p99 %v / %v)\n", "flood ratio", float64(loud.pct(99))/float64(quiet.pct(99)), loud.pct(99), quiet.pct(99))

	// 3b. Sign-ins while the flood goes on: from known devices (a device
	// cookie, a certificate) and from an unknown one, one at a time over
	// new connections.
	fmt.Printf("\nsign-ins of the bench user during the flood, one at a time over new TLS connections\n")
	fmt.Printf("  %-22s one bcrypt %v; a sign-in with the device cookie, no flood: mean %v = %.2f bcrypt, max %v\n", "before the flood",
		oneNow.Round(time.Millisecond), calm.mean().Round(time.Millisecond), float64(calm.mean())/float64(oneNow), calm.pct(100).Round(time.Millisecond))
	for _, c := range []struct {
		name   string
		cert   *tls.Certificate
		cookie string
	}{
		{"known: device cookie", nil, deviceCookie},
		{"known: certificate", &p.benchCert, ""},
		{"unknown device", nil, ""},
	} {
		r := measure(1, duration, func(int) (time.Duration, bool) {
			t0 := time.Now()
			status, err := p.signIn(c.cert, c.cookie)
			return time.Since(t0), err == nil && status == http.StatusSeeOther
		})
		ratio := func(d time.Duration) float64 { return float64(d) / float64(oneNow) }
		fmt.Printf("  %-22s %3d signed in, %d refused (busy); in bcrypts: mean %.2f, p50 %.2f, p90 %.2f, max %.2f (mean %v)\n", c.name,
			len(r.latencies), r.errors, ratio(r.mean()), ratio(r.pct(50)), ratio(r.pct(90)), ratio(r.pct(100)), r.mean().Round(time.Millisecond))
	}
	close(stop)
	floodDone.Wait()
	busyShare := 0.0
	if n := floodCount.Load(); n > 0 {
		busyShare = 100 * float64(floodBusy.Load()) / float64(n)
	}
	fmt.Printf("  %-22s %d answers: %d refused as busy (503, %.0f%%), %d other\n", "the flood got", floodCount.Load(), floodBusy.Load(), busyShare, floodOther.Load())

	// 4. Memory per session, and verify with many live sessions.
	if sessions > 0 {
		if err := p.sessionsLoad(ctx, sessions, concurrency, duration, withSession); err != nil {
			return err
		}
	}
	if keep {
		fmt.Println("\nkept:", dir)
	}
	return nil
}

// portal is the gatehouse under test.
type portal struct {
	bin, data, store string
	url              string
	// socket is the portal's verify socket (serve --verify-socket).
	socket string
	// cpus, when set, are the only CPUs the portal runs on (taskset).
	cpus          string
	roots         *x509.CertPool
	adminCert     tls.Certificate
	benchCert     tls.Certificate
	adminPassword string
	// client is the shared keep-alive client of the verify phases.
	client *http.Client
}

func (p *portal) cli(stdin string, args ...string) (string, error) {
	cmd := exec.Command(p.bin, append(args, "--data", p.data, "--store", p.store)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("gatehouse %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (p *portal) serve(dir string) (*exec.Cmd, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.socket = filepath.Join(dir, "verify.sock")
	cmd := exec.Command(p.bin, "serve", "--data", p.data, "--store", p.store, "--addr", addr, "--verify-socket", p.socket)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := pin(cmd.Process.Pid, p.cpus); err != nil {
		return nil, err
	}
	p.url = "https://localhost:" + strconv.Itoa(port)
	caPEM, err := os.ReadFile(filepath.Join(p.data, "pki", "ca.crt"))
	if err != nil {
		return nil, err
	}
	p.roots = x509.NewCertPool()
	p.roots.AppendCertsFromPEM(caPEM)
	p.client = &http.Client{Transport: p.transport(nil, true, ""), Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := p.client.Get(p.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd, nil
			}
		}
	}
	cmd.Process.Kill()
	return nil, errors.New("gatehouse serve did not become ready; see serve.log (run with -keep)")
}

// transport dials the portal's address whatever the host name, from
// source (a loopback address) when given.
func (p *portal) transport(cert *tls.Certificate, keepAlive bool, source string) *http.Transport {
	u, _ := url.Parse(p.url)
	target := net.JoinHostPort("127.0.0.1", u.Port())
	d := &net.Dialer{Timeout: 5 * time.Second}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	cfg := &tls.Config{RootCAs: p.roots, ServerName: "localhost"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Transport{
		DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", target) },
		TLSClientConfig:     cfg,
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: 1024,
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1, as nginx speaks to its upstream
	}
}

// setUp creates the bench user with a client certificate and registers
// the app, as an admin would.
func (p *portal) setUp() error {
	// The password of initial-admin.txt is a temporary one, to be
	// changed at the first sign-in: the admin gets its own here.
	p.adminPassword = "the load tool's admin passphrase, 2026"
	if _, err := p.cli(p.adminPassword+"\n", "user", "passwd", "admin", "--password-stdin"); err != nil {
		return err
	}
	var err error
	if p.adminCert, err = tls.LoadX509KeyPair(filepath.Join(p.data, "initial-admin.crt"), filepath.Join(p.data, "initial-admin.key")); err != nil {
		return err
	}
	if _, err := p.cli(benchPassword+"\n", "user", "add", benchUser, "--role", "employee", "--password-stdin"); err != nil {
		return err
	}
	prefix := p.data + "-" + benchUser
	if _, err := p.cli("a passphrase for the bench user's p12 file\n", "cert", "issue", benchUser, "--out", prefix, "--p12-password-stdin"); err != nil {
		// Older builds print the passphrase instead of reading it.
		if _, err2 := p.cli("", "cert", "issue", benchUser, "--out", prefix); err2 != nil {
			return err
		}
	}
	if p.benchCert, err = tls.LoadX509KeyPair(prefix+".crt", prefix+".key"); err != nil {
		return err
	}
	return p.registerApp("bench", appURL)
}

// registerApp registers an app for the employee role, as an admin with
// the certificate would.
func (p *portal) registerApp(name, appURL string) error {
	adminCookie, err := p.loginAs(&p.adminCert, "admin", p.adminPassword)
	if err != nil {
		return err
	}
	body := fmt.Sprintf(`{"url":%q,"roles":["employee"]}`, appURL)
	req, _ := http.NewRequest(http.MethodPut, p.url+"/api/admin/apps/"+name, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cookie", adminCookie)
	resp, err := (&http.Client{Transport: p.transport(&p.adminCert, false, "")}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("register the app: status %d", resp.StatusCode)
	}
	return nil
}

// login signs the bench user in over a new connection and returns the
// Cookie header value.
func (p *portal) login(cert *tls.Certificate) (string, error) {
	return p.loginAs(cert, benchUser, benchPassword)
}

func (p *portal) loginAs(cert *tls.Certificate, user, password string) (string, error) {
	c := &http.Client{Transport: p.transport(cert, false, ""), Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(p.url+"/login", url.Values{"username": {user}, "password": {password}})
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("login as %s: status %d", user, resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		if strings.Contains(ck.Name, "gatehouse") {
			return ck.Name + "=" + ck.Value, nil
		}
	}
	return "", fmt.Errorf("login as %s: no session cookie", user)
}

// deviceCookie signs the bench user in without a certificate and returns
// the device cookie that sign-in set, as a Cookie header value.
func (p *portal) deviceCookie() (string, error) {
	c := &http.Client{Transport: p.transport(nil, false, ""), Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(p.url+"/login", url.Values{"username": {benchUser}, "password": {benchPassword}})
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == server.DeviceCookieName {
			return ck.Name + "=" + ck.Value, nil
		}
	}
	return "", fmt.Errorf("sign-in as %s: status %d and no device cookie", benchUser, resp.StatusCode)
}

// signIn signs the bench user in over a new connection, presenting cert
// (none when nil) and sending cookie as the Cookie header (none when
// ""), and returns the status.
func (p *portal) signIn(cert *tls.Certificate, cookie string) (int, error) {
	c := &http.Client{Transport: p.transport(cert, false, ""), Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"username": {benchUser}, "password": {benchPassword}}
	req, _ := http.NewRequest(http.MethodPost, p.url+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// result is one measurement: latencies of the answers that had the
// wanted status, and the count of the others.
type result struct {
	elapsed   time.Duration
	latencies []time.Duration
	errors    int64
}

func (r *result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies)-1) * p / 100)
	return r.latencies[i]
}

func (r *result) mean() time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	var sum time.Duration
	for _, l := range r.latencies {
		sum += l
	}
	return sum / time.Duration(len(r.latencies))
}

func (r *result) print(name string) {
	rate := float64(len(r.latencies)) / r.elapsed.Seconds()
	fmt.Printf("  %-22s %9.0f /s   p50 %-9v p99 %-9v p99.9 %-9v (%d answers, %d unexpected)\n", name, rate,
		r.pct(50).Round(time.Microsecond), r.pct(99).Round(time.Microsecond), r.pct(99.9).Round(time.Microsecond), len(r.latencies), r.errors)
}

// measure runs workers calling do for duration and gathers the results.
func measure(workers int, duration time.Duration, do func(worker int) (time.Duration, bool)) *result {
	var mu sync.Mutex
	res := &result{}
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(duration)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var errs int64
			for time.Now().Before(deadline) {
				d, ok := do(w)
				if ok {
					lat = append(lat, d)
				} else {
					errs++
				}
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.latencies)
	return res
}

// verifyLoad asks /auth/verify as nginx's auth_request would.
func (p *portal) verifyLoad(workers int, duration time.Duration, prepare func(*http.Request), want int) *result {
	return measure(workers, duration, func(int) (time.Duration, bool) {
		req, _ := http.NewRequest(http.MethodGet, p.url+"/auth/verify", nil)
		req.Header.Set("X-Original-URL", appURL+"some/page")
		prepare(req)
		t0 := time.Now()
		resp, err := p.client.Do(req)
		if err != nil {
			return 0, false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(t0), resp.StatusCode == want
	})
}

// loginLoad signs in over a new TLS connection with the bench user's
// client certificate each time.
func (p *portal) loginLoad(workers int, duration time.Duration) *result {
	return measure(workers, duration, func(int) (time.Duration, bool) {
		t0 := time.Now()
		_, err := p.login(&p.benchCert)
		return time.Since(t0), err == nil
	})
}

// floodLogins sends failed logins for random users from random loopback
// addresses (so no throttle holds them back and each costs a bcrypt
// comparison) until stop is closed.
func (p *portal) floodLogins(stop <-chan struct{}, count, busy, other *atomic.Int64) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		source := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), rand.IntN(256), 1+rand.IntN(250))
		c := &http.Client{Transport: p.transport(nil, false, source), Timeout: 30 * time.Second}
		user := fmt.Sprintf("nobody-%d", rand.Int64())
		resp, err := c.PostForm(p.url+"/login", url.Values{"username": {user}, "password": {"wrong password " + user}})
		if err != nil {
			other.Add(1)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		count.Add(1)
		switch resp.StatusCode {
		case http.StatusUnauthorized:
		case http.StatusServiceUnavailable:
			busy.Add(1)
		default:
			other.Add(1)
		}
	}
}

// sessionsLoad writes n sessions (as the portal writes them) into Redis,
// reports the bytes each costs, and measures verify again.
func (p *portal) sessionsLoad(ctx context.Context, n, workers int, duration time.Duration, withSession func(*http.Request)) error {
	st, err := redisstore.Open(ctx, p.store)
	if err != nil {
		return err
	}
	defer st.Close()
	opt, _ := redis.ParseURL(p.store)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	before, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	fmt.Printf("\nwriting %d live sessions (one user each, as PutSession writes them)…\n", n)
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	now := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				s := store.Session{ID: fmt.Sprintf("%043d", i), User: fmt.Sprintf("user%07d", i), Factors: []string{"password", "certificate"},
					CertFingerprint: "sha256:" + strings.Repeat("ab", 32), ClientAddr: "203.0.113.7",
					CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(12 * time.Hour)}
				if err := st.PutSession(ctx, s, 30*time.Minute); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	after, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	sample, _ := rdb.MemoryUsage(ctx, "gatehouse:session:"+fmt.Sprintf("%043d", 1)).Result()
	index, _ := rdb.MemoryUsage(ctx, "gatehouse:user-sessions:user0000001").Result()
	ordered, _ := rdb.MemoryUsage(ctx, "gatehouse:sessions-of:user0000001").Result()
	fmt.Printf("  written in %v\n", time.Since(t0).Round(time.Second))
	fmt.Printf("  %-22s %d bytes (used_memory delta / %d); MEMORY USAGE: record %d B + per-user index %d B + per-user ordered index (paging) %d B\n", "bytes per session",
		(after-before)/int64(n), n, sample, index, ordered)
	fmt.Printf("\n/auth/verify with %d live sessions, %d clients\n", n+1, workers)
	p.verifyLoad(workers, duration, withSession, http.StatusOK).print("valid session")
	return nil
}

func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "used_memory:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("INFO memory has no used_memory")
}

// bcryptCost is the median time of one bcrypt comparison at the portal's
// cost on this machine.
func bcryptCost() time.Duration {
	hash, _ := bcrypt.GenerateFromPassword([]byte(benchPassword), auth.BcryptCost)
	var runs []time.Duration
	for range 7 {
		t0 := time.Now()
		bcrypt.CompareHashAndPassword(hash, []byte(benchPassword))
		runs = append(runs, time.Since(t0))
	}
	slices.Sort(runs)
	return runs[len(runs)/2]
}

type redisProcess struct {
	*exec.Cmd
	addr string
}

// startRedis starts a redis-server on a free port of 127.0.0.1 with its
// files in dir, on cpus (taskset list; "" for all), with extra arguments.
func startRedis(dir, cpus string, extra ...string) (*redisProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log")}
	cmd := exec.Command("redis-server", append(args, extra...)...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server (apt-get install redis-server): %w", err)
	}
	if err := pin(cmd.Process.Pid, cpus); err != nil {
		cmd.Process.Kill()
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			n, _ := c.Read(buf)
			c.Close()
			if bytes.HasPrefix(buf[:n], []byte("+PONG")) {
				return &redisProcess{cmd, addr}, nil
			}
		}
	}
	cmd.Process.Kill()
	return nil, errors.New("redis-server did not answer")
}

// startCluster starts a Redis Cluster of three masters (no replicas) on
// 127.0.0.1, its nodes' files in dir/cluster-N, and returns its nodes
// (also when it fails: the caller stops them) and its store URL.
func startCluster(dir, cpus string) ([]*redisProcess, string, error) {
	var nodes []*redisProcess
	var addrs []string
	for i := range 3 {
		nodeDir := filepath.Join(dir, "cluster-"+strconv.Itoa(i))
		if err := os.MkdirAll(nodeDir, 0o700); err != nil {
			return nodes, "", err
		}
		n, err := startRedis(nodeDir, cpus, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(nodeDir, "nodes.conf"))
		if err != nil {
			return nodes, "", err
		}
		nodes = append(nodes, n)
		addrs = append(addrs, n.addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		return nodes, "", fmt.Errorf("redis-cli --cluster create (apt-get install redis-tools): %v\n%s", err, out)
	}
	for _, addr := range addrs {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		ok := false
		for deadline := time.Now().Add(30 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			info, err := rdb.ClusterInfo(context.Background()).Result()
			ok = err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3\r")
		}
		rdb.Close()
		if !ok {
			return nodes, "", fmt.Errorf("the Redis Cluster did not become ready (node %s)", addr)
		}
	}
	return nodes, "redis+cluster://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2], nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
