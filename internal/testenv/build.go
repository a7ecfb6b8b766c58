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
	out := filepath.Join(dir, "fxd-shim")
	cmd := exec.Command("go", "build", "-o", out, "fxd.dev/fxd/cmd/fxd-shim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build fxd-shim: %v\n%s", err, b)
	}
	return out, nil
}
