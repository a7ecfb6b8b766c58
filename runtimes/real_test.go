package runtimes

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/isolation/plain"
)

// realExecutor returns the executor the tests run on and whether it is the
// real one (cgroups, limits, OOM counts). As root it is isolation/plain under
// a cgroup parent of the test's own; elsewhere it is groupExecutor, and the
// tests that need limits say they cannot run.
func realExecutor(t testing.TB) (isolation.Executor, bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		return groupExecutor{}, false
	}
	testenv.RequireCgroup(t)
	parent := fmt.Sprintf("fxd-test-runtimes-%d-%d", os.Getpid(), time.Now().UnixNano())
	ex, err := plain.New(plain.Config{CgroupParent: parent}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("plain.New: %v", err)
	}
	// No ex.Cleanup here: a worker cgroup Pools.Close leaked must make
	// RemoveCgroupParent fail the test, not be swept away.
	t.Cleanup(func() {
		testenv.RemoveCgroupParent(t, parent)
	})
	return ex, true
}
