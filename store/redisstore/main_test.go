package redisstore_test

import (
	"fmt"
	"os"
	"testing"

	"gatehouse/store/storetest"
)

// TestMain ends the output with the tests that did not run for want of
// redis-server (storetest.SkipSummary).
func TestMain(m *testing.M) {
	code := m.Run()
	fmt.Print(storetest.SkipSummary())
	os.Exit(code)
}
