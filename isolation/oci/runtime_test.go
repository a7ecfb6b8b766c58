package oci

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct{ out, name, version string }{
		{"crun version 1.8.1\ncommit: f8a0\nspec: 1.0.0\n", "crun", "1.8.1"},
		{"runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\n", "runc", "1.1.5+ds1"},
	} {
		r, err := parseVersion("/usr/bin/x", tc.out)
		if err != nil || r.Name != tc.name || r.Version != tc.version || r.Path != "/usr/bin/x" {
			t.Errorf("parseVersion(%q) = %+v, %v, want %s %s", tc.out, r, err, tc.name, tc.version)
		}
	}
	for _, out := range []string{"", "youki version 0.3.0\n", "crun 1.8.1\n", "Usage: foo\n"} {
		if _, err := parseVersion("/x", out); !errors.Is(err, api.ErrUnavailable) {
			t.Errorf("parseVersion(%q) err = %v, want ErrUnavailable", out, err)
		}
	}
}

// fakeBin writes an executable shell script named name into dir.
func fakeBin(t *testing.T, dir, name, script string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindRuntimeNone(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := FindRuntime(t.Context(), "")
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "no OCI runtime (crun or runc) found; install crun, or only the host runtime is offered") {
		t.Errorf("FindRuntime(\"\") with an empty PATH = %v, want the no-runtime message", err)
	}
	if _, err := FindRuntime(t.Context(), "/nonexistent/crun"); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "/nonexistent/crun") {
		t.Errorf("FindRuntime(/nonexistent/crun) = %v, want ErrUnavailable naming the path", err)
	}
}

// TestFindRuntimePrefersCrun uses stand-in binaries that answer --version
// like the real ones, so the PATH order is under the test's control.
func TestFindRuntimePrefersCrun(t *testing.T) {
	testenv.RequireCommand(t, "sh")
	dir := t.TempDir()
	runc := fakeBin(t, dir, "runc", `echo "runc version 1.1.5"`)
	t.Setenv("PATH", dir)
	if r, err := FindRuntime(t.Context(), ""); err != nil || r.Name != "runc" || r.Path != runc || r.Version != "1.1.5" {
		t.Errorf("FindRuntime(\"\") with runc only = %+v, %v", r, err)
	}
	crun := fakeBin(t, dir, "crun", `echo "crun version 1.8.1"; echo "commit: x"`)
	if r, err := FindRuntime(t.Context(), ""); err != nil || r.Name != "crun" || r.Path != crun || r.Version != "1.8.1" {
		t.Errorf("FindRuntime(\"\") with crun and runc = %+v, %v, want crun", r, err)
	}
	if r, err := FindRuntime(t.Context(), runc); err != nil || r.Name != "runc" {
		t.Errorf("FindRuntime(%s) = %+v, %v, want the configured runc", runc, r, err)
	}
	other := fakeBin(t, dir, "youki", `echo "youki version 0.3.0"`)
	if _, err := FindRuntime(t.Context(), other); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "only crun and runc") {
		t.Errorf("FindRuntime(%s) = %v, want refused", other, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := FindRuntime(ctx, runc); !errors.Is(err, context.Canceled) {
		t.Errorf("FindRuntime(canceled ctx, %s) = %v, want context.Canceled", runc, err)
	}
	broken := fakeBin(t, dir, "brokenrt", `exit 3`)
	if _, err := FindRuntime(t.Context(), broken); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "--version") {
		t.Errorf("FindRuntime(%s) = %v, want the --version failure", broken, err)
	}
}

// TestFindRuntimeInstalled asks the real crun and runc of this host.
func TestFindRuntimeInstalled(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			p := testenv.RequireCommand(t, name)
			r, err := FindRuntime(t.Context(), p)
			if err != nil || r.Name != name || r.Version == "" {
				t.Fatalf("FindRuntime(%s) = %+v, %v", p, r, err)
			}
			if _, err := exec.LookPath("crun"); err == nil {
				if r, err := FindRuntime(t.Context(), ""); err != nil || r.Name != "crun" {
					t.Errorf("FindRuntime(\"\") = %+v, %v, want crun (preferred)", r, err)
				}
			}
			t.Logf("%s", r)
		})
	}
}
