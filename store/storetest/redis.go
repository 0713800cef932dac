// Package storetest holds what tests of Gatehouse's storage need: the
// contract suite every store.Store backend must pass (Run), and a real
// redis-server started for one test (StartRedis).
package storetest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server process that belongs to one test. The test can
// stop and start it again on the same port and data directory.
type Redis struct {
	// URL is the redis:// URL of the server.
	URL string
	// Addr is host:port.
	Addr string

	t        testing.TB
	external bool
	bin      string
	dir      string
	port     int
	cmd      *exec.Cmd
	args     []string // the settings every start uses
	extra    []string // the test's own settings, after args
}

// NeedService skips the test with reason, or fails it when CI=true: in CI
// a missing service is a broken setup, not a reason to skip. The skip is
// remembered for SkipSummary.
func NeedService(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: required, not skipped)", reason)
	}
	skipped.add(t.Name(), reason)
	t.Skip(reason)
}

// StartRedis starts a redis-server on a free port of 127.0.0.1 for this
// test and stops it when the test ends. With GATEHOUSE_TEST_REDIS set to a
// redis:// URL, that server is used instead (it is flushed, so it must be
// one kept for tests) and Stop/Start are unavailable. Without either, the
// test skips, or fails under CI=true. Extra arguments go to redis-server
// (for example "--appendonly", "yes").
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	if url := os.Getenv("GATEHOUSE_TEST_REDIS"); url != "" {
		r := &Redis{URL: url, t: t, external: true}
		r.flush()
		return r
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		NeedService(t, "redis-server is not installed (apt-get install redis-server) and GATEHOUSE_TEST_REDIS is not set")
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	r := &Redis{
		t:    t,
		bin:  bin,
		dir:  t.TempDir(),
		port: port,
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
	}
	r.URL = "redis://" + r.Addr + "/0"
	r.args = []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--logfile", "",
	}
	r.extra = extra
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// flush empties the external test database so each test starts clean.
func (r *Redis) flush() {
	r.t.Helper()
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		r.t.Fatalf("GATEHOUSE_TEST_REDIS: %v", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		r.t.Fatalf("flush GATEHOUSE_TEST_REDIS: %v", err)
	}
}

// External reports whether the server came from GATEHOUSE_TEST_REDIS.
func (r *Redis) External() bool { return r.external }

// Start starts the server (again) and waits until it answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	if r.external {
		r.t.Fatal("cannot start an external Redis (GATEHOUSE_TEST_REDIS)")
	}
	if r.cmd != nil {
		return
	}
	cmd := exec.Command(r.bin, append(slices.Clone(r.args), r.extra...)...)
	cmd.Dir = r.dir
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ping(r.Addr) == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Stop()
	r.t.Fatalf("redis-server on %s did not answer PING within 10s", r.Addr)
}

// Restart stops the server and starts it again on the same port and
// directory with other extra arguments for redis-server (those given to
// StartRedis are dropped), as an operator who changed its settings would.
func (r *Redis) Restart(extra ...string) {
	r.t.Helper()
	r.Stop()
	r.extra = extra
	r.Start()
}

// Stop stops the server and waits for it to exit.
func (r *Redis) Stop() {
	if r.external {
		r.t.Fatal("cannot stop an external Redis (GATEHOUSE_TEST_REDIS)")
	}
	if r.cmd == nil {
		return
	}
	// SIGTERM lets Redis write its persistence files, as a real restart
	// would; SIGKILL only if it does not exit in time.
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

// ping sends PING over a raw connection and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected answer %q", line)
	}
	return nil
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
