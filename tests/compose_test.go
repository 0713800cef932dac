package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/store/storetest"
)

// The repository's Dockerfile and docker-compose.yml, run for real with
// Docker: the image builds, the portal and Redis start, the first admin
// signs in with the certificate from the data volume, accounts and
// sessions survive a Redis restart and a whole "down" and "up", the portal
// runs as the unprivileged user, and "docker compose stop" is a clean
// SIGTERM shutdown.
//
// The base images are the compose file's defaults, or what GO_IMAGE,
// RUNTIME_IMAGE and REDIS_IMAGE name (the same variables docker compose
// reads). A machine without a registry can build local stand-ins with
// tests/docker/standins.sh; .ci/run does so when it cannot pull.

const (
	// composeTimeout bounds one docker command; building the image
	// (downloading modules, compiling) is the longest. A limit, not an
	// expectation.
	composeTimeout = 15 * time.Minute
	// composeCleanupTimeout is kept for removing the project at the end,
	// also when the test ran out of time.
	composeCleanupTimeout = 90 * time.Second
	// composeReadyTimeout bounds waiting for the portal to answer ready.
	composeReadyTimeout = 2 * time.Minute
	// maxImageBytes is what "a small image" means here: the static binary
	// and a distroless base, nothing else.
	maxImageBytes = 64 << 20
)

// composeDefaults are the base images docker-compose.yml names when the
// variables are unset; keep them in step with the file.
var composeDefaults = map[string]string{
	"GO_IMAGE":      "golang:1.26-bookworm",
	"RUNTIME_IMAGE": "gcr.io/distroless/static-debian12:nonroot",
	"REDIS_IMAGE":   "redis:7-bookworm",
}

// composeProject is one docker compose project made from the repository's
// compose file, with its own name, published port and image tag.
type composeProject struct {
	root  string // the repository: compose file and build context
	name  string
	image string
	addr  string // 127.0.0.1:PORT, published to the portal's 8443
	env   []string
}

func TestCompose_PortalWithRedis(t *testing.T) {
	// Not parallel: the image build takes both cores for a minute, and
	// the parallel tests wait until the sequential ones are done.
	c := newCompose(t)

	c.must(t, "build", "portal")
	size, err := strconv.ParseInt(dockerMust(t, "image", "inspect", "-f", "{{.Size}}", c.image), 10, 64)
	if err != nil {
		t.Fatalf("image size: %v", err)
	}
	t.Logf("image %s: %.1f MB", c.image, float64(size)/(1<<20))
	if size > maxImageBytes {
		t.Errorf("the image is %d bytes, want at most %d (a static binary on a distroless base)", size, maxImageBytes)
	}
	if u := dockerMust(t, "image", "inspect", "-f", "{{.Config.User}}", c.image); u != "65532:65532" {
		t.Errorf("the image runs as %q, want 65532:65532 (not root)", u)
	}
	if _, err := docker(t, "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", c.image, "-c", "true"); err == nil {
		t.Error("the image has a shell (/bin/sh ran); want a distroless base")
	} else if !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("running /bin/sh in the image failed, but not for want of a shell: %v", err)
	}

	c.must(t, "up", "-d")
	p := c.waitReady(t)
	id := c.must(t, "ps", "-a", "-q", "portal")

	// The portal process runs as the unprivileged user.
	procs := strings.Split(dockerMust(t, "top", id, "-o", "pid,uid,args"), "\n")[1:]
	if len(procs) == 0 {
		t.Error("docker top lists no process in the portal's container")
	}
	for _, line := range procs {
		if f := strings.Fields(line); len(f) < 2 || f[1] != "65532" {
			t.Errorf("a process in the portal's container does not run as uid 65532: %q", line)
		}
	}

	// The image's health check ("gatehouse health") reports healthy.
	c.waitHealthy(t, id)

	// Redis in the compose file keeps an append-only file: no warning.
	var ready struct {
		Status   string   `json:"status"`
		Warnings []string `json:"warnings"`
	}
	resp := p.client(t, nil).get(t, "/readyz")
	wantStatus(t, resp, http.StatusOK)
	decodeJSON(t, resp, &ready)
	if ready.Status != "ready" || len(ready.Warnings) != 0 {
		t.Errorf("/readyz = %+v, want ready without warnings (Redis has an append-only file)", ready)
	}

	// First sign-in with what the data volume holds, as the README says:
	// the file's password is a temporary one, changed at once.
	cert := p.adminCert(t)
	p.firstAdminSignIn(t, p.client(t, &cert))
	admin := p.adminSignIn(t)
	danaPassword := passphrase("dana")
	noteSecret(danaPassword)
	r := admin.jsonRequest(t, "POST", "/api/admin/users", map[string]any{
		"name": "dana", "roles": []string{"employee"}, "password": danaPassword})
	wantStatus(t, r, http.StatusCreated)
	// The gatehouse commands run in the portal's container, on the same
	// store, as the README shows.
	erinPassword := passphrase("erin")
	noteSecret(erinPassword)
	if _, err := c.runInput(t, erinPassword+"\n", "exec", "-T", "portal",
		"gatehouse", "user", "add", "erin", "--role", "employee", "--password-stdin"); err != nil {
		t.Fatalf("docker compose exec portal gatehouse user add: %v", err)
	}
	c.must(t, "exec", "-T", "portal", "gatehouse", "cert", "issue", "erin", "--out", "/tmp/erin")
	certDir := t.TempDir()
	for _, f := range []string{"erin.crt", "erin.key"} {
		c.must(t, "cp", "portal:/tmp/"+f, filepath.Join(certDir, f))
	}
	erinCert := loadCert(t, filepath.Join(certDir, "erin"))
	erin := p.signIn(t, &erinCert, "erin", erinPassword)
	if s := erin.session(t); !slices.Contains(s.Factors, "certificate") {
		t.Errorf("erin with the certificate issued in the container: factors %q, want the certificate among them", s.Factors)
	}
	dana := p.signIn(t, nil, "dana", danaPassword)
	danaCookie := dana.cookieValue(t)
	noteSecret(danaCookie)
	caBefore := readFile(t, filepath.Join(p.Data, "pki", "ca.crt"))

	// Redis restarts: the account and the session are still there.
	c.must(t, "restart", "redis")
	p = c.waitReady(t)
	if s := p.client(t, nil).sessionWithCookie(t, danaCookie); s.User != "dana" {
		t.Errorf("dana's session after a Redis restart: %+v", s)
	}

	// The whole stack goes down (volumes kept) and up again: same CA,
	// same keys (the session cookie still opens), same accounts.
	firstLogs := c.must(t, "logs", "--no-color", "portal") // gone with the container
	wantNoSecretsInLog(t, "compose portal (first container)", firstLogs)
	c.must(t, "down")
	c.must(t, "up", "-d")
	p = c.waitReady(t)
	p.AdminPassword = firstAdminOwnPassword // chosen at the first sign-in, kept in the store
	if caAfter := readFile(t, filepath.Join(p.Data, "pki", "ca.crt")); !bytes.Equal(caBefore, caAfter) {
		t.Error("the CA certificate changed across down and up: the data volume was not kept")
	}
	if s := p.client(t, nil).sessionWithCookie(t, danaCookie); s.User != "dana" {
		t.Errorf("dana's session after down and up: %+v", s)
	}
	p.signIn(t, nil, "dana", danaPassword)
	p.adminSignIn(t)

	// docker compose stop sends SIGTERM to the portal (PID 1): it shuts
	// down cleanly instead of being killed when the grace period ends.
	id = c.must(t, "ps", "-a", "-q", "portal")
	c.must(t, "stop", "portal")
	if code := dockerMust(t, "inspect", "-f", "{{.State.ExitCode}}", id); code != "0" {
		t.Errorf("the portal exited with %s on docker compose stop, want 0 (a clean SIGTERM shutdown)", code)
	}
	logs := c.must(t, "logs", "--no-color", "portal")
	if !strings.Contains(logs, `"msg":"shutting down"`) {
		t.Errorf("the portal's log does not show a shutdown on SIGTERM:\n%s", logs)
	}
	wantNoSecretsInLog(t, "compose portal (second container)", logs)
}

// newCompose checks that Docker, the compose plugin and the base images
// are here (or skips, failing under CI=true), and returns a project with
// a unique name whose containers, volumes and image are removed when the
// test ends.
func newCompose(t *testing.T) *composeProject {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the compose test builds an image")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		storetest.NeedService(t, "docker is not installed (the compose test needs a Docker engine and the compose plugin)")
	}
	if _, err := docker(t, "info", "-f", "{{.ServerVersion}}"); err != nil {
		storetest.NeedService(t, "no Docker engine answers (start dockerd): "+lastLine(err.Error()))
	}
	if _, err := docker(t, "compose", "version"); err != nil {
		storetest.NeedService(t, "the docker compose plugin is missing: "+lastLine(err.Error()))
	}
	removeStaleProjects(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	name := composePrefix + hex.EncodeToString(suffix)
	c := &composeProject{
		root:  root,
		name:  name,
		image: "gatehouse-e2e:" + name,
		addr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
	}
	for _, kv := range childEnv() {
		if !strings.HasPrefix(kv, "COMPOSE_") {
			c.env = append(c.env, kv)
		}
	}
	for v, def := range composeDefaults {
		img := os.Getenv(v)
		if img == "" {
			img = def
		}
		if _, err := docker(t, "image", "inspect", img); err != nil {
			if _, err := docker(t, "pull", "-q", img); err != nil {
				storetest.NeedService(t, fmt.Sprintf("base image %s is not here and cannot be pulled (%s); "+
					"pull it, or build stand-ins with tests/docker/standins.sh PREFIX and set GO_IMAGE, RUNTIME_IMAGE and REDIS_IMAGE",
					img, lastLine(err.Error())))
			}
		}
		c.env = append(c.env, v+"="+img)
	}
	c.env = append(c.env, "GATEHOUSE_IMAGE="+c.image, "GATEHOUSE_PUBLISH="+c.addr)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), composeCleanupTimeout)
		defer cancel()
		if t.Failed() {
			out, _ := c.runContext(ctx, "", "logs", "--no-color")
			t.Logf("docker compose logs:\n%s", out)
		}
		if _, err := c.runContext(ctx, "", "down", "-v", "--remove-orphans"); err != nil {
			t.Errorf("docker compose down: %v", err)
		}
		dockerContext(ctx, "image", "rm", "-f", c.image)
	})
	return c
}

// composePrefix starts the name of every project this test makes.
const composePrefix = "gatehouse-e2e-"

// removeStaleProjects removes what earlier runs left behind when they
// were killed before their cleanup (a go test timeout, say): projects
// named gatehouse-e2e-* whose containers are older than any run lasts,
// with their volumes (which hold a CA key) and their images. Younger ones
// may belong to a run in progress and are left alone.
func removeStaleProjects(t *testing.T) {
	t.Helper()
	const staleAfter = 2 * time.Hour
	out, err := docker(t, "ps", "-a", "--filter", "label=com.docker.compose.project",
		"--format", `{{.Label "com.docker.compose.project"}}|{{.CreatedAt}}`)
	if err != nil {
		t.Fatalf("list compose containers: %v", err)
	}
	stale := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		name, created, ok := strings.Cut(line, "|")
		if !ok || !strings.HasPrefix(name, composePrefix) {
			continue
		}
		at, err := time.Parse("2006-01-02 15:04:05 -0700 MST", created)
		if err == nil && time.Since(at) > staleAfter {
			stale[name] = true
		}
	}
	for name := range stale {
		t.Logf("removing %s, left behind by an earlier run", name)
		if _, err := docker(t, "compose", "-p", name, "down", "-v", "--remove-orphans"); err != nil {
			t.Logf("docker compose -p %s down: %v", name, err)
		}
		docker(t, "image", "rm", "-f", "gatehouse-e2e:"+name)
	}
}

// commandContext bounds one docker command by composeTimeout and by the
// test's own deadline less composeCleanupTimeout: a test that runs out
// of time fails with the command's error, and its cleanup still has the
// time to remove what it made.
func commandContext(t *testing.T) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(composeTimeout)
	if d, ok := t.Deadline(); ok && d.Add(-composeCleanupTimeout).Before(deadline) {
		deadline = d.Add(-composeCleanupTimeout)
	}
	return context.WithDeadline(context.Background(), deadline)
}

// run runs "docker compose" on the project and returns its standard
// output; a failure's error carries the standard error.
func (c *composeProject) run(t *testing.T, args ...string) (string, error) {
	return c.runInput(t, "", args...)
}

// runInput is run with stdin as the command's standard input.
func (c *composeProject) runInput(t *testing.T, stdin string, args ...string) (string, error) {
	ctx, cancel := commandContext(t)
	defer cancel()
	return c.runContext(ctx, stdin, args...)
}

func (c *composeProject) runContext(ctx context.Context, stdin string, args ...string) (string, error) {
	full := append([]string{"compose", "-f", filepath.Join(c.root, "docker-compose.yml"),
		"--project-directory", c.root, "-p", c.name}, args...)
	cmd := exec.CommandContext(ctx, "docker", full...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	return output(cmd)
}

// must is run that fails the test when the command fails.
func (c *composeProject) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("docker compose %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// waitReady waits until the portal answers GET /readyz with 200 on the
// published port, then copies its data directory (CA, first admin's
// credentials and certificate) out of the container, as the README
// tells an operator to, and returns a portal that tests can sign in to.
func (c *composeProject) waitReady(t *testing.T) *portal {
	t.Helper()
	_, port, _ := net.SplitHostPort(c.addr)
	p := &portal{URL: "https://localhost:" + port, Addr: c.addr}
	deadline := time.Now().Add(composeReadyTimeout)
	var last error
	for time.Now().Before(deadline) {
		if last = c.copyData(t, p); last == nil {
			last = p.ready()
		}
		if last == nil {
			// Copied again now that the portal is ready, so that
			// nothing it wrote during its first start is missed.
			if err := c.copyData(t, p); err != nil {
				t.Fatal(err)
			}
			p.readAdminCredentialsFile(t)
			return p
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the portal did not become ready on %s within %v: %v", c.addr, composeReadyTimeout, last)
	return nil
}

// waitHealthy waits until Docker's health check of container id passes.
func (c *composeProject) waitHealthy(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(composeReadyTimeout)
	status := ""
	for time.Now().Before(deadline) {
		status = dockerMust(t, "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}no health check{{end}}", id)
		if status == "healthy" || status == "no health check" || status == "unhealthy" {
			break
		}
		time.Sleep(time.Second)
	}
	if status != "healthy" {
		out, _ := docker(t, "inspect", "-f", "{{json .State.Health}}", id)
		t.Errorf("the portal's health check: %s, want healthy\n%s", status, out)
	}
}

// copyData copies the portal container's /data into a new directory and
// points p.Data at it.
func (c *composeProject) copyData(t *testing.T, p *portal) error {
	t.Helper()
	id, err := c.run(t, "ps", "-q", "portal")
	if err != nil || id == "" {
		return fmt.Errorf("the portal container is not running: %v %s", err, id)
	}
	dir := t.TempDir()
	if _, err := docker(t, "cp", id+":/data", dir); err != nil {
		return fmt.Errorf("docker cp /data: %v", err)
	}
	p.Data = filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(p.Data, "initial-admin.txt")); err != nil {
		return errors.New("the data volume has no initial-admin.txt yet")
	}
	return nil
}

// ready is one GET /readyz with the CA from p.Data.
func (p *portal) ready() error {
	pool, err := p.caPool()
	if err != nil {
		return err
	}
	tr := p.transport(pool, nil, nil)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := hc.Get(p.URL + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /readyz: %s", resp.Status)
	}
	return nil
}

// docker runs the docker command and returns its standard output; a
// failure's error carries the standard error.
func docker(t *testing.T, args ...string) (string, error) {
	ctx, cancel := commandContext(t)
	defer cancel()
	return dockerContext(ctx, args...)
}

func dockerContext(ctx context.Context, args ...string) (string, error) {
	return output(exec.CommandContext(ctx, "docker", args...))
}

// output runs cmd and returns its trimmed standard output. Only standard
// output is parsed (IDs, formats), so a warning on standard error cannot
// corrupt a value; it is kept for the error.
func output(cmd *exec.Cmd) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, strings.TrimSpace(stderr.String()+"\n"+stdout.String()))
	}
	return strings.TrimSpace(stdout.String()), err
}

// dockerMust is docker that fails the test when the command fails.
func dockerMust(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(t, args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// lastLine is the last line of s that is not blank: where docker puts
// the reason of a failure.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
