package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/tests/nginxconf"
)

// The ratios of SPEC "Performance", measured in one run with wrk (a load
// generator much lighter than Go's client, so that it takes less of the
// cores the portal needs): verify against the same portal's /healthz,
// the embedded store against Redis, and an app page behind nginx's
// auth_request (the configuration of docs/forward-auth.md) against the
// same nginx and app without it: nginx asks the portal over its verify
// socket (-nginx-socket, the configuration for one host) and, measured
// too, over TLS; and, as the floor, a server that does no work
// (nullauth.go). Each target is measured rounds times,
// the targets interleaved and their order rotated from round to round,
// and the medians are compared.

// target is one URL wrk loads, with the headers it sends.
type target struct {
	name    string
	url     string
	headers []string
}

// wrkResult is what one wrk run reports.
type wrkResult struct {
	rate     float64
	p50, p99 time.Duration
	non2xx   int
	// cpu is the CPU time wrk itself used, in seconds.
	cpu float64
}

func ratios(dir, bin string, redisPortal *portal, redisCookie, clusterURL, oauth2Proxy string, rounds, concurrency, nginxWorkers int, nginxSocket bool, duration time.Duration) error {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return errors.New("the ratios need wrk (apt-get install wrk)")
	}
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			return errors.New("the ratios need nginx (apt-get install nginx)")
		}
		nginx = "/usr/sbin/nginx"
	}

	// The same portal binary on the embedded store, beside the Redis one,
	// and with -cluster on a Redis Cluster too.
	emb, embCookie, stopEmb, err := startPortal(dir, bin, "embedded", "", redisPortal.cpus)
	if err != nil {
		return err
	}
	defer stopEmb()
	var cl *portal
	var clCookie string
	if clusterURL != "" {
		var stopCl func()
		if cl, clCookie, stopCl, err = startPortal(dir, bin, "cluster", clusterURL, redisPortal.cpus); err != nil {
			return err
		}
		defer stopCl()
	}

	// An app page: a few hundred bytes, answered at once.
	app, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	page := bytes.Repeat([]byte("<p>an internal app's page</p>\n"), 10)
	go http.Serve(app, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	}))
	defer app.Close()

	socket := ""
	if nginxSocket {
		socket = redisPortal.socket
	}
	site, stop, err := startNginx(dir, "nginx", nginx, redisPortal, app.Addr().String(), nginxWorkers, socket)
	if err != nil {
		return err
	}
	defer stop()
	if err := redisPortal.registerApp("bench-nginx", site+"/"); err != nil {
		return err
	}
	if err := checkThroughNginx(site, redisCookie, redisPortal.roots); err != nil {
		return err
	}
	// With the socket, the same nginx asking the portal over TLS, on a
	// site of its own.
	tlsSite := ""
	if nginxSocket {
		var stopTLS func()
		if tlsSite, stopTLS, err = startNginx(dir, "nginx-tls", nginx, redisPortal, app.Addr().String(), nginxWorkers, ""); err != nil {
			return err
		}
		defer stopTLS()
		if err := redisPortal.registerApp("bench-nginx-tls", tlsSite+"/"); err != nil {
			return err
		}
		if err := checkThroughNginx(tlsSite, redisCookie, redisPortal.roots); err != nil {
			return err
		}
	}

	original := "X-Original-URL: " + appURL + "some/page"
	// The floor: the same nginx configuration asking a server that does
	// no work (nullauth.go), on the portals' CPUs.
	nullSocket := filepath.Join(dir, "null-auth.sock")
	stopNull, err := startNullAuth(nullSocket, redisPortal.socket, []string{"Cookie: " + redisCookie, "X-Original-URL: " + site + "/some/page"}, redisPortal.cpus)
	if err != nil {
		return err
	}
	defer stopNull()
	nullSite, stopNullNginx, err := startNginx(dir, "nginx-null", nginx, redisPortal, app.Addr().String(), nginxWorkers, nullSocket)
	if err != nil {
		return err
	}
	defer stopNullNginx()
	// It lets everyone in: the app's page with or without the session.
	if err := checkAnswers(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: redisPortal.roots}}, nullSite+"/some/page", redisCookie, http.StatusOK, http.StatusOK); err != nil {
		return fmt.Errorf("through nginx and the do-nothing server: %w", err)
	}

	targets := []target{
		{"healthz", redisPortal.url + "/healthz", nil},
		{"verify, Redis", redisPortal.url + "/auth/verify", []string{"Cookie: " + redisCookie, original}},
		{"verify, embedded", emb.url + "/auth/verify", []string{"Cookie: " + embCookie, original}},
		{"nginx + auth_request", site + "/some/page", []string{"Cookie: " + redisCookie}},
		{"nginx alone", site + "/open/some/page", []string{"Cookie: " + redisCookie}},
		{"nginx + do-nothing auth", nullSite + "/some/page", []string{"Cookie: " + redisCookie}},
	}
	hop := "TLS"
	if nginxSocket {
		hop = "the verify socket"
		targets = append(targets, target{"nginx + auth_request (TLS)", tlsSite + "/some/page", []string{"Cookie: " + redisCookie}})
	}
	o2p := -1
	if oauth2Proxy != "" {
		authURL, o2pCookie, stopO2P, err := startOAuth2Proxy(dir, oauth2Proxy, redisPortal, redisPortal.store)
		if err != nil {
			return err
		}
		defer stopO2P()
		o2p = len(targets)
		targets = append(targets, target{"oauth2-proxy, Redis", authURL, []string{"Cookie: " + o2pCookie}})
	}
	if cl != nil {
		targets = append(targets, target{"verify, Redis Cluster", cl.url + "/auth/verify", []string{"Cookie: " + clCookie, original}})
	}
	fmt.Printf("\nratios: wrk -t1 -c%d -d%v, %d rounds, targets interleaved; nginx with %d worker processes, asking the portal over %s\n", concurrency, duration, rounds, nginxWorkers, hop)
	results := make([][]wrkResult, len(targets))
	for r := range rounds {
		for i := range targets {
			k := (i + r) % len(targets)
			before := cpuByName()
			pingsBefore := pingCalls(redisPortal.store)
			res, err := runWrk(wrk, targets[k], concurrency, duration)
			if err != nil {
				return err
			}
			after := cpuByName()
			after["wrk"] = before["wrk"] + res.cpu
			fmt.Printf("  round %d  %-22s %9.0f /s   p50 %-9v p99 %-9v non-2xx/3xx %d\n", r+1, targets[k].name, res.rate, res.p50, res.p99, res.non2xx)
			fmt.Printf("           CPU per request: %s\n", cpuPerRequest(before, after, res.rate*duration.Seconds()))
			if pingsBefore >= 0 && targets[k].name == "verify, Redis" {
				// The store cache's read barrier: one PING serves every
				// request that joined its round. While the instance holds
				// its lease the cache sends none for requests, only one a
				// second to renew the lease.
				requests := res.rate * duration.Seconds()
				if n := pingCalls(redisPortal.store) - pingsBefore; n >= 0 && requests > 0 {
					fmt.Printf("           read barrier: %d PINGs in all, %.4f a request\n", n, float64(n)/requests)
				}
			}
			// Every target is asked with a valid session: an error answer
			// would be measured as if it were the work.
			if res.non2xx > 0 {
				return fmt.Errorf("%s answered %d requests with an error status: the figures would not measure it", targets[k].name, res.non2xx)
			}
			results[k] = append(results[k], res)
		}
	}
	med := make([]wrkResult, len(targets))
	fmt.Println("\nmedians")
	for k, t := range targets {
		med[k] = median(results[k])
		fmt.Printf("  %-26s %9.0f /s   p50 %-9v p99 %v\n", t.name, med[k].rate, med[k].p50, med[k].p99)
	}
	health, vr, ve, withAuth, alone, floor := med[0], med[1], med[2], med[3], med[4], med[5]
	fmt.Println("\nratios (of the medians)")
	fmt.Printf("  %-32s %.2f\n", "verify (Redis) / healthz", vr.rate/health.rate)
	fmt.Printf("  %-32s %.2f\n", "verify (embedded) / healthz", ve.rate/health.rate)
	fmt.Printf("  %-32s %.2f (p99 %.2f: %v / %v)\n", "embedded / Redis, throughput", ve.rate/vr.rate, float64(ve.p99)/float64(vr.p99), ve.p99, vr.p99)
	fmt.Printf("  %-32s %.2f (asking the portal over %s)\n", "nginx with auth / nginx alone", withAuth.rate/alone.rate, hop)
	fmt.Printf("  %-32s %.2f (the floor: a forward-auth server that does no work, over a Unix socket)\n", "nginx + do-nothing auth / alone", floor.rate/alone.rate)
	fmt.Printf("  %-32s %.2f\n", "nginx with auth / do-nothing", withAuth.rate/floor.rate)
	if nginxSocket {
		overTLS := med[6]
		fmt.Printf("  %-32s %.2f\n", "nginx with auth (TLS) / alone", overTLS.rate/alone.rate)
		fmt.Printf("  %-32s %.2f\n", "verify socket / TLS, via nginx", withAuth.rate/overTLS.rate)
	}
	if o2p >= 0 {
		fmt.Printf("  %-32s %.2f (p99 %.2f: %v / %v)\n", "verify (Redis) / oauth2-proxy", vr.rate/med[o2p].rate, float64(vr.p99)/float64(med[o2p].p99), vr.p99, med[o2p].p99)
	}
	if cl != nil {
		vc := med[len(med)-1]
		fmt.Printf("  %-32s %.2f\n", "verify (Cluster) / healthz", vc.rate/health.rate)
		fmt.Printf("  %-32s %.2f (p99 %.2f: %v / %v)\n", "Cluster / Redis, throughput", vc.rate/vr.rate, float64(vc.p99)/float64(vr.p99), vc.p99, vr.p99)
	}
	return nil
}

// startPortal starts the portal binary on a store of its own (URL st;
// "" is the embedded store) in dir/name, sets it up as the load test's
// first portal is, and signs the bench user in. stop ends it.
func startPortal(dir, bin, name, st, cpus string) (p *portal, cookie string, stop func(), err error) {
	p = &portal{bin: bin, data: filepath.Join(dir, "data-"+name), store: st, cpus: cpus}
	if _, err := p.cli("", "init"); err != nil {
		return nil, "", nil, err
	}
	runDir := filepath.Join(dir, name)
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return nil, "", nil, err
	}
	srv, err := p.serve(runDir)
	if err != nil {
		return nil, "", nil, err
	}
	stop = func() { srv.Process.Signal(os.Interrupt); srv.Wait() }
	if err := p.setUp(); err != nil {
		stop()
		return nil, "", nil, err
	}
	if cookie, err = p.login(nil); err != nil {
		stop()
		return nil, "", nil, err
	}
	return p, cookie, stop, nil
}

// median takes each figure's median separately.
func median(rs []wrkResult) wrkResult {
	pick := func(f func(wrkResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return wrkResult{
		rate: pick(func(r wrkResult) float64 { return r.rate }),
		p50:  time.Duration(pick(func(r wrkResult) float64 { return float64(r.p50) })),
		p99:  time.Duration(pick(func(r wrkResult) float64 { return float64(r.p99) })),
	}
}

// runWrk loads t with wrk, one thread and concurrency connections.
func runWrk(wrk string, t target, concurrency int, duration time.Duration) (wrkResult, error) {
	args := []string{"-t1", "-c" + strconv.Itoa(concurrency), "-d" + strconv.Itoa(int(duration.Seconds())) + "s", "--latency"}
	for _, h := range t.headers {
		args = append(args, "-H", h)
	}
	cmd := exec.Command(wrk, append(args, t.url)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v\n%s", t.url, err, out)
	}
	// wrk has exited before the next reading of /proc: its own time.
	r := wrkResult{cpu: (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rate, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "50%":
			r.p50, _ = time.ParseDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.p99, _ = time.ParseDuration(f[1])
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx or 3xx responses:"):
			r.non2xx, _ = strconv.Atoi(f[len(f)-1])
		}
	}
	if r.rate == 0 {
		return r, fmt.Errorf("wrk %s: no rate in\n%s", t.url, out)
	}
	return r, nil
}

// startNginx runs nginx with the documented configuration in front of
// the portal, for the host "localhost" (the portal's own certificate
// serves it too), with /open/ passed to the app without auth_request as
// the baseline, its files in dir/name. nginx asks over the verify socket
// socket (the portal's, or nullauth.go's) when it is set, else over TLS
// to p. It returns the site's URL.
func startNginx(dir, name, bin string, p *portal, app string, workers int, socket string) (string, func(), error) {
	ndir := filepath.Join(dir, name)
	if err := os.MkdirAll(ndir, 0o700); err != nil {
		return "", nil, err
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	portalPort := p.url[strings.LastIndex(p.url, ":")+1:]
	params := nginxconf.Params{
		Dir:        ndir,
		Workers:    workers,
		Listen:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Hosts:      []string{"localhost"},
		Cert:       filepath.Join(p.data, "pki", "server.crt"),
		Key:        filepath.Join(p.data, "pki", "server.key"),
		App:        app,
		PortalAddr: "127.0.0.1:" + portalPort,
		PortalHost: "localhost:" + portalPort,
		PortalName: "localhost",
		CA:         filepath.Join(p.data, "pki", "ca.crt"),
		OpenPath:   "/open/",
	}
	params.PortalSocket = socket
	if os.Geteuid() == 0 {
		params.User = "root"
	}
	var conf bytes.Buffer
	if err := nginxconf.Write(&conf, params); err != nil {
		return "", nil, err
	}
	confFile := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(confFile, conf.Bytes(), 0o600); err != nil {
		return "", nil, err
	}
	errorLog := filepath.Join(ndir, "error.log")
	args := []string{"-p", ndir, "-c", confFile, "-e", errorLog,
		"-g", fmt.Sprintf("daemon off; pid %s; error_log %s warn;", filepath.Join(ndir, "nginx.pid"), errorLog)}
	if out, err := exec.Command(bin, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", params.Listen); err == nil {
			c.Close()
			return "https://localhost:" + strconv.Itoa(port), stop, nil
		}
	}
	stop()
	return "", nil, errors.New("nginx does not listen; see " + errorLog)
}

// checkThroughNginx makes sure the site answers the session with the app's
// page and an anonymous visitor with a redirect to the login page, so
// that wrk measures the right thing.
func checkThroughNginx(site, cookie string, roots *x509.CertPool) error {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	if err := checkAnswers(tr, site+"/some/page", cookie, http.StatusOK, http.StatusFound); err != nil {
		return fmt.Errorf("through nginx: %w", err)
	}
	return nil
}

// checkAnswers asks u once with cookie and once without, and expects the
// statuses withIt and without.
func checkAnswers(rt http.RoundTripper, u, cookie string, withIt, without int) error {
	for _, tc := range []struct {
		cookie string
		want   int
	}{{cookie, withIt}, {"", without}} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if tc.cookie != "" {
			req.Header.Set("Cookie", tc.cookie)
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			return fmt.Errorf("%s with cookie %t: status %d, want %d", u, tc.cookie != "", resp.StatusCode, tc.want)
		}
	}
	return nil
}

// pingCalls returns how many PINGs the Redis at storeURL has answered
// since it started (INFO commandstats), or -1 when it cannot tell: the
// store cache's read barrier is one PING a round.
func pingCalls(storeURL string) int64 {
	opt, err := redis.ParseURL(storeURL)
	if err != nil {
		return -1
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return -1
	}
	for line := range strings.Lines(info) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_ping:calls="); ok {
			n, err := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return 0
}
