package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildShim builds the static fxd-shim (CGO_ENABLED=0, as it is shipped)
// into dir and returns its path. Tests call it from TestMain, once per
// package.
func BuildShim(dir string) (string, error) {
	return buildStatic(dir, "fxd-shim", "fxd.dev/fxd/cmd/fxd-shim")
}

// BuildUpper builds the static upper-casing servable (internal/testenv/upper)
// into dir and returns its path: the same program runs on the host and in
// a busybox image (SIFFile).
func BuildUpper(dir string) (string, error) {
	return buildStatic(dir, "upper", "fxd.dev/fxd/internal/testenv/upper")
}

func buildStatic(dir, name, pkg string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", name, err, b)
	}
	return out, nil
}
