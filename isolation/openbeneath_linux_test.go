package isolation_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation"
)

// OpenBeneathAs opens files inside a root as the account, and refuses
// paths that leave the root through "..", absolute or relative symlinks,
// as well as files the account may not read.
func TestOpenBeneathAs(t *testing.T) {
	u := testenv.NewUser(t)
	a := isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID}
	base := t.TempDir()
	os.Chmod(base, 0o755)
	root := filepath.Join(base, "datasets")
	outside := filepath.Join(base, "secret")
	write := func(p, data string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	write(filepath.Join(root, "run1", "frames.h5"), "frames", 0o644)
	write(filepath.Join(root, "private.h5"), "root only", 0o600)
	write(outside, "outside", 0o644)
	links := map[string]string{
		"run1/abs-out": outside,                           // absolute, outside
		"run1/rel-out": "../../secret",                    // relative, outside
		"run1/inside":  "frames.h5",                       // stays inside
		"run1/abs-in":  filepath.Join(root, "private.h5"), // absolute, even to inside
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		rel      string
		want     string // the content read, or "" for an error
		wantKind error
	}{
		{"run1/frames.h5", "frames", nil},
		{"run1/inside", "frames", nil},
		{"../secret", "", api.ErrDenied},
		{"run1/../../secret", "", api.ErrDenied},
		{"run1/abs-out", "", api.ErrDenied},
		{"run1/rel-out", "", api.ErrDenied},
		{"run1/abs-in", "", api.ErrDenied},
		{"private.h5", "", api.ErrDenied},
		{"run1/none.h5", "", api.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.rel, func(t *testing.T) {
			f, err := isolation.OpenBeneathAs(a, root, tt.rel, unix.O_RDONLY)
			if tt.wantKind != nil {
				if !errors.Is(err, tt.wantKind) {
					t.Fatalf("OpenBeneathAs(%q) = %v, want %v", tt.rel, err, tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenBeneathAs(%q) = %v", tt.rel, err)
			}
			defer f.Close()
			if b, _ := io.ReadAll(f); string(b) != tt.want {
				t.Errorf("OpenBeneathAs(%q) read %q, want %q", tt.rel, b, tt.want)
			}
		})
	}
}
