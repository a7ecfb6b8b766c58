package cgroup

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"fxd.dev/fxd/internal/testenv"
)

// Two daemons cannot hold one parent: each removes the leftover groups
// under it at start, which would kill the other's trees.
func TestClaimParentIsExclusive(t *testing.T) {
	testenv.RequireCgroup(t)
	parent := fmt.Sprintf("fxdtest-claim-%d", os.Getpid())
	t.Cleanup(func() { testenv.RemoveCgroupParent(t, parent) })
	first, err := ClaimParent(parent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ClaimParent(parent); !errors.Is(err, ErrParentHeld) {
		t.Errorf("second claim of %s = %v, want ErrParentHeld", parent, err)
	}
	first.Close()
	second, err := ClaimParent(parent)
	if err != nil {
		t.Fatalf("claim after the first was released: %v", err)
	}
	second.Close()
}
