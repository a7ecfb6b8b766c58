package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckDevDir(t *testing.T) {
	base := t.TempDir()
	own := filepath.Join(base, "own")
	if err := os.Mkdir(own, 0o711); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(own, link); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(base, "theirs")
	if err := os.Mkdir(theirs, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, os.Geteuid()+1, -1); err != nil {
		t.Skipf("cannot give a dir to another uid here (needs root): %v", err)
	}
	for _, tc := range []struct {
		dir string
		ok  bool
	}{
		{filepath.Join(base, "missing"), true},
		{own, true},
		{link, false},
		{theirs, false},
	} {
		err := checkDevDir(tc.dir)
		if tc.ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "remove it") {
			t.Errorf("checkDevDir(%s) = %v, want ok=%v", filepath.Base(tc.dir), err, tc.ok)
		}
	}
}
