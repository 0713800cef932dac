package tests

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gatehouse/store/storetest"
)

// Redis on the portal's own host, reached over its Unix socket
// (unix:///PATH?db=N): no TCP port at all, so nothing but the socket
// can have served the portal. checkStore runs the operator's day on it,
// the store cache's read barrier included; a socket that is not there
// is reported with the path and what to check.
func TestRedisOverUnixSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := startUnixRedis(t, dir)

	p := checkStore(t, dir, "unix://"+sock+"?db=0")

	missing := &portal{Data: p.Data, StoreURL: "unix://" + filepath.Join(dir, "elsewhere.sock") + "?db=0", bin: p.bin, logDir: t.TempDir()}
	stderr := missing.cliFails(t, "user", "list")
	if !strings.Contains(stderr, "elsewhere.sock") || !strings.Contains(stderr, "unixsocket") {
		t.Errorf("gatehouse user list on a socket that is not there: %q, want the path and Redis's unixsocket setting named", stderr)
	}
	if strings.Contains(strings.TrimSpace(stderr), "\n") {
		t.Errorf("gatehouse user list on a socket that is not there printed more than its one error (the Redis client's own lines?):\n%s", stderr)
	}
}

// startUnixRedis starts a redis-server that listens on a Unix socket in
// dir only (port 0: no TCP) and returns the socket's path.
func startUnixRedis(t *testing.T, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		storetest.NeedService(t, "redis-server is not installed (apt-get install redis-server): this test starts a Redis server on a Unix socket")
	}
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--dir", dir, "--save", "", "--appendonly", "yes", "--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server on a Unix socket: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("unix", sock, time.Second)
		if err == nil {
			c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return sock
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redis-server does not answer on %s: %v\n%s", sock, err, log)
		}
	}
}
