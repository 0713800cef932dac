package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store/storetest"
)

// Bounds on waiting for child processes. They are limits, not expected
// durations: a healthy portal is ready in well under a second.
const (
	readyTimeout   = 20 * time.Second
	readyPoll      = 50 * time.Millisecond
	stopTimeout    = 20 * time.Second
	commandTimeout = 2 * time.Minute
	// listenAttempts is how often serve is retried when the free port we
	// picked was taken by someone else before the portal could bind it.
	listenAttempts = 3
)

// portal is one running gatehouse server with its own data directory and
// its own Redis.
type portal struct {
	// URL is the portal's base URL, https://localhost:PORT. Clients made
	// by p.client connect to Addr whatever the host name resolves to.
	URL string
	// Addr is the address the server listens on, 127.0.0.1:PORT.
	Addr string
	// Data is the data directory (DATA in the spec).
	Data string
	// AdminPassword and AdminP12Password are the first admin's
	// credentials from DATA/initial-admin.txt.
	AdminPassword    string
	AdminP12Password string
	// Redis is the store the portal and the CLI use.
	Redis *storetest.Redis
	// StoreURL, when set, is the store instead (a Redis Cluster's URL).
	StoreURL string
	// Env is added to the environment of every gatehouse command.
	Env []string

	bin    string
	logDir string
	server *process
}

// externalRedis serialises tests when GATEHOUSE_TEST_REDIS names one
// shared server: each portal needs an empty store of its own.
var externalRedis sync.Mutex

// startPortal starts a portal the way an operator would: its own Redis,
// "gatehouse init" on a fresh data directory, then "gatehouse serve" on a
// free port of 127.0.0.1. It returns once GET /readyz answers 200, and
// stops everything when the test ends.
func startPortal(t *testing.T) *portal {
	t.Helper()
	p := initPortal(t)
	p.start(t)
	return p
}

// initPortal is the first half of startPortal: a Redis and a data
// directory made by "gatehouse init", but no server yet, so that a test
// can make files from the portal's CA (a CRL, say) before p.start.
func initPortal(t *testing.T, redisArgs ...string) *portal {
	t.Helper()
	p := newPortal(t, redisArgs...)
	p.cli(t, "", "init")
	return p
}

// start is the second half of startPortal: "gatehouse serve" with extra
// serve flags, then the first admin's credentials.
func (p *portal) start(t *testing.T, serveFlags ...string) {
	t.Helper()
	p.serve(t, serveFlags...)
	p.readAdminCredentials(t)
}

// newPortal prepares a portal's Redis and directories without running
// any gatehouse command.
func newPortal(t *testing.T, redisArgs ...string) *portal {
	t.Helper()
	r := storetest.StartRedis(t, redisArgs...)
	if r.External() {
		// Held until this test's cleanups have stopped its server.
		externalRedis.Lock()
		t.Cleanup(externalRedis.Unlock)
		flushRedis(t, r.URL)
	}
	dir := t.TempDir()
	return &portal{
		Data:   filepath.Join(dir, "data"),
		Redis:  r,
		bin:    gatehouseBinary(t),
		logDir: dir,
	}
}

// flushRedis empties the database an external test Redis gives us.
func flushRedis(t *testing.T, url string) {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("GATEHOUSE_TEST_REDIS: %v", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.FlushDB(t.Context()).Err(); err != nil {
		t.Fatalf("flush GATEHOUSE_TEST_REDIS: %v", err)
	}
}

// command returns "gatehouse ARGS… --data DATA --store URL" (flags may
// follow the positional arguments).
func (p *portal) command(ctx context.Context, args ...string) *exec.Cmd {
	full := append(slices.Clone(args), "--data", p.Data)
	switch {
	case p.StoreURL != "":
		full = append(full, "--store", p.StoreURL)
	case p.Redis != nil:
		full = append(full, "--store", p.Redis.URL)
	} // else the embedded store, DATA/gatehouse.db
	cmd := exec.CommandContext(ctx, p.bin, full...)
	cmd.Env = append(childEnv(), p.Env...)
	return cmd
}

// cli runs a gatehouse command against the portal's data directory and
// store, with stdin as its standard input, and returns its standard
// output. The test fails, showing the command's stderr, when the command
// fails.
func (p *portal) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := p.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	for _, line := range strings.Split(stdin, "\n") {
		noteSecret(strings.TrimSpace(line)) // passwords given on stdin
	}
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gatehouse %s: %v\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String()
}

// childEnv is this process's environment without any GATEHOUSE_*
// variable, so that a developer's settings cannot change what a test
// starts.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEHOUSE_") {
			env = append(env, kv)
		}
	}
	return env
}

// serve starts "gatehouse serve --addr ADDR FLAGS…" and waits until it
// is ready.
func (p *portal) serve(t *testing.T, flags ...string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		p.Addr = addr
		p.URL = "https://" + net.JoinHostPort("localhost", strconv.Itoa(port(addr)))
		args := append([]string{"serve", "--addr", addr}, flags...)
		name := fmt.Sprintf("serve-%d", attempt)
		var srv *process
		// Registered before the process's own cleanup, so it runs after
		// the server has stopped and written its last line.
		t.Cleanup(func() {
			if srv != nil {
				wantNoSecretsInLog(t, "gatehouse "+name, srv.output())
			}
		})
		srv = startProcess(t, p.command(context.Background(), args...), p.logDir, name)
		err := p.waitReady(t, srv)
		if err == nil {
			p.server = srv
			return
		}
		srv.stop(t)
		if errors.Is(err, errAddrInUse) && attempt < listenAttempts {
			t.Logf("port %s was taken, trying another: %v", addr, err)
			continue
		}
		// The process's output is logged by its cleanup.
		t.Fatalf("gatehouse serve did not become ready: %v", err)
	}
}

// errAddrInUse reports that the server could not bind the port we chose.
var errAddrInUse = errors.New("address already in use")

// waitReady polls GET /readyz until it answers 200, the process exits, or
// readyTimeout passes. The CA certificate the client needs may not exist
// yet (serve initialises an empty data directory itself), so the client
// is made once it does.
func (p *portal) waitReady(t *testing.T, srv *process) error {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var c *http.Client
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-srv.done:
			if strings.Contains(srv.output(), "address already in use") {
				return fmt.Errorf("%w: gatehouse serve exited: %v", errAddrInUse, srv.err)
			}
			return fmt.Errorf("gatehouse serve exited: %v", srv.err)
		default:
		}
		if c == nil {
			if pool, err := p.caPool(); err == nil {
				c = &http.Client{Transport: p.transport(pool, nil, nil), Timeout: 5 * time.Second}
				defer c.CloseIdleConnections()
			} else {
				last = err
			}
		}
		if c != nil {
			resp, err := c.Get(p.URL + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
				err = fmt.Errorf("GET /readyz: %s", resp.Status)
			}
			last = err
		}
		time.Sleep(readyPoll)
	}
	return fmt.Errorf("not ready within %v: %v", readyTimeout, last)
}

// readAdminCredentials reads DATA/initial-admin.txt, then gives the
// first admin its own password, as its first sign-in would
// (ownAdminPassword): p.AdminPassword is that one.
func (p *portal) readAdminCredentials(t *testing.T) {
	t.Helper()
	p.readAdminCredentialsFile(t)
	p.ownAdminPassword(t)
}

// readAdminCredentialsFile reads DATA/initial-admin.txt: p.AdminPassword
// is then its password, a temporary one.
func (p *portal) readAdminCredentialsFile(t *testing.T) {
	t.Helper()
	creds := readCredentials(t, filepath.Join(p.Data, "initial-admin.txt"))
	if creds["username"] != "admin" {
		t.Fatalf("initial-admin.txt: username %q, want admin", creds["username"])
	}
	p.AdminPassword, p.AdminP12Password = creds["password"], creds["p12-password"]
	noteSecret(p.AdminPassword)
	noteSecret(p.AdminP12Password)
	if p.AdminPassword == "" || p.AdminP12Password == "" {
		t.Fatalf("initial-admin.txt lacks a password or p12-password line: %v", creds)
	}
}

// firstAdminOwnPassword is the password the tests give the first admin.
const firstAdminOwnPassword = "the first admin's own passphrase, 2026"

// ownAdminPassword gives the first admin its own password with
// "gatehouse user passwd", unless it has one already (a second instance
// on the same store): the password of initial-admin.txt is a temporary
// one, to be changed at the first sign-in. It leaves no sign-in behind
// (in the metrics, say) the way a sign-in to change it would.
// TestServe_InitialisesEmptyDataDirOnFirstStart signs in with the
// file's password as a person does.
func (p *portal) ownAdminPassword(t *testing.T) {
	t.Helper()
	for line := range strings.Lines(p.cli(t, "", "user", "list")) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "admin" && strings.Contains(line, "must change password") {
			p.cli(t, firstAdminOwnPassword+"\n", "user", "passwd", "admin", "--password-stdin")
		}
	}
	p.AdminPassword = firstAdminOwnPassword
	noteSecret(firstAdminOwnPassword)
}

// firstAdminSignIn signs in on c with the password of initial-admin.txt
// (p.AdminPassword, read by readAdminCredentialsFile) as a person does
// the first time: the portal asks for the admin's own password, which
// p.AdminPassword then is, and the file's password opens nothing.
func (p *portal) firstAdminSignIn(t *testing.T, c *client) {
	t.Helper()
	temporary := p.AdminPassword
	wantRedirect(t, c.login(t, "admin", temporary), "/account/password")
	wantRedirect(t, c.post(t, "/account/password", url.Values{
		"current": {temporary}, "new": {firstAdminOwnPassword}, "confirm": {firstAdminOwnPassword}}), "/")
	if r := p.client(t, nil).login(t, "admin", temporary); r.Status != http.StatusUnauthorized {
		t.Errorf("the password of initial-admin.txt still signs in after the first sign-in changed it: %d", r.Status)
	}
	p.AdminPassword = firstAdminOwnPassword
	noteSecret(firstAdminOwnPassword)
}

// readCredentials parses "key: value" lines.
func readCredentials(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// serverStdout is what the running server has printed on stdout so far.
func (p *portal) serverStdout(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.server.stdout)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// process is a child process whose output goes to files, so that it can
// be read at any time and shown when a test fails.
type process struct {
	cmd            *exec.Cmd
	name           string
	stdout, stderr string
	done           chan struct{} // closed when the process has exited
	err            error         // Wait's result, once done is closed
	stopOnce       sync.Once
}

// startProcess starts cmd with its output in dir/NAME.stdout and
// dir/NAME.stderr. The process is stopped when the test ends, and its
// output is logged if the test failed.
func startProcess(t *testing.T, cmd *exec.Cmd, dir, name string) *process {
	t.Helper()
	pr := &process{
		cmd:    cmd,
		name:   name,
		stdout: filepath.Join(dir, name+".stdout"),
		stderr: filepath.Join(dir, name+".stderr"),
		done:   make(chan struct{}),
	}
	out, err := os.Create(pr.stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	errf, err := os.Create(pr.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd.Stdout, cmd.Stderr = out, errf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		pr.err = cmd.Wait()
		close(pr.done)
	}()
	t.Cleanup(func() {
		pr.stop(t)
		if t.Failed() {
			t.Logf("output of gatehouse %s:\n%s", name, pr.output())
		}
	})
	return pr
}

// stop sends SIGTERM, waits for a graceful exit, and kills the process
// if it does not exit within stopTimeout.
func (pr *process) stop(t *testing.T) {
	pr.stopOnce.Do(func() {
		select {
		case <-pr.done:
			return
		default:
		}
		pr.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-pr.done:
		case <-time.After(stopTimeout):
			t.Errorf("gatehouse %s did not exit within %v of SIGTERM; killing it", pr.name, stopTimeout)
			pr.cmd.Process.Kill()
			<-pr.done
		}
	})
}

// output is the process's stdout and stderr so far.
func (pr *process) output() string {
	stdout, _ := os.ReadFile(pr.stdout)
	stderr, _ := os.ReadFile(pr.stderr)
	return fmt.Sprintf("--- stdout ---\n%s--- stderr ---\n%s", stdout, stderr)
}

// wantStructuredLog checks that every line the process wrote to stderr
// is one JSON event (log/slog's), as log collectors expect: no line of
// plain text from a library between them.
func (pr *process) wantStructuredLog(t *testing.T) {
	t.Helper()
	stderr, _ := os.ReadFile(pr.stderr)
	for line := range strings.Lines(string(stderr)) {
		var event map[string]any
		if err := json.Unmarshal([]byte(line), &event); err != nil || event["msg"] == nil {
			t.Errorf("the server's log has a line that is not a JSON event: %q", line)
		}
	}
}

// wantLogsFree checks that the running server's log holds none of the
// secrets (passwords, codes, cookie values) a test used.
func (p *portal) wantLogsFree(t *testing.T, secrets ...string) {
	t.Helper()
	logs := p.server.output()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the server log contains a secret (%d bytes, starting %.3q)", len(s), s)
		}
	}
}
