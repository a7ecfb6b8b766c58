package oci

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fxd.dev/fxd/api"
)

func TestCheckMountpoints(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"proc", "dev", "sys", "tmp", "home/alice", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// an image symlink to a path the host has but the image lacks resolves
	// inside the image
	if err := os.Symlink("/usr/bin", filepath.Join(root, "scratch")); err != nil {
		t.Fatal(err)
	}
	g, err := buildSpec(testSpec(), testSite())
	if err != nil {
		t.Fatal(err)
	}
	err = checkMountpoints(root, g)
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "mount points /scratch are not in the image") {
		t.Errorf("checkMountpoints() = %v, want /scratch missing (and nothing else)", err)
	}
	if err := os.Remove(filepath.Join(root, "scratch")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "scratch"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkMountpoints(root, g); err != nil {
		t.Errorf("checkMountpoints() with every mount point = %v", err)
	}
}
