package runtimes

import (
	"testing"

	"fxd.dev/fxd/isolation"
)

// realExecutor returns the executor the tests run on and whether it is the
// real one (cgroups, limits, OOM counts).
//
// TODO(integration): isolation/plain did not exist when this was written.
// Once it compiles, as root return it instead of groupExecutor:
//
//	testenv.RequireCgroup(t)
//	ex, err := plain.New(plain.Config{CgroupParent: "fxd-test"}, zerolog.New(zerolog.NewTestWriter(t)))
//	if err != nil { t.Fatalf("plain.New: %v", err) }
//	return ex, true
func realExecutor(t testing.TB) (isolation.Executor, bool) {
	return groupExecutor{}, false
}
