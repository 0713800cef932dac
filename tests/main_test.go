// Package tests holds Gatehouse's end-to-end tests. They build the real
// gatehouse binary once, start it as a child process against a real
// redis-server, and talk to it over real TLS with client certificates
// made at run time. Nothing is mocked.
//
// A test that needs redis-server and cannot find it skips with a clear
// message, or fails under CI=true (see storetest.StartRedis); the skips
// are summed up at the end of the output (storetest.SkipSummary). With
// GATEHOUSE_TEST_REDIS set, that server is used instead; the tests then
// take turns on it.
package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"gatehouse/store/storetest"
)

// binDir is the temporary directory the gatehouse binary is built into.
// TestMain creates it and removes it when every test has finished.
var binDir string

// build remembers the one build of the binary shared by every test.
var build struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "create a directory for the binary: %v\n", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	// The last lines of the output say which tests did not run for want
	// of Redis, nginx, Docker…, instead of one SKIP line among hundreds.
	fmt.Print(storetest.SkipSummary())
	os.Exit(code)
}

// gatehouseBinary builds the gatehouse command from the module root (the
// parent of this directory) the first time it is called, and returns the
// path of the binary. Tests that skip before calling it cost no build.
func gatehouseBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			build.err = err
			return
		}
		out := filepath.Join(binDir, "gatehouse")
		cmd := exec.Command("go", "build", "-o", out, "gatehouse")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build gatehouse in %s: %v\n%s", root, err, b)
			return
		}
		build.path = out
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}
