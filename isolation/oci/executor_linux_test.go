package oci

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/isolation/cgroup"
	"fxd.dev/fxd/isolation/isolationtest"
)

// shimPath is fxd-shim, built once for the package's tests: the monitor.
var shimPath string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fxd-oci-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if shimPath, err = testenv.BuildShim(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// The executor passes the conformance suite with each runtime, in a
// busybox image.
func TestExecutor(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			rootfs, rt := containerSetup(t, name)
			isolationtest.Run(t, rootfs, func(t *testing.T, parent string) isolation.Executor {
				return newExecutor(t, rt, Site{CgroupParent: parent})
			})
		})
	}
}

// containerSetup needs root, cgroups and the runtime name, and returns a
// mounted busybox image root and the runtime.
func containerSetup(t *testing.T, name string, opts ...testenv.SIFOption) (string, Runtime) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts containers")
	}
	testenv.RequireCgroup(t)
	p := testenv.RequireCommand(t, name)
	rt, err := FindRuntime(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	mountSIF(t, testenv.BuildSIF(t, opts...), rootfs)
	return rootfs, rt
}

func newExecutor(t *testing.T, rt Runtime, site Site) *Executor {
	t.Helper()
	e, err := New(Config{Runtime: rt, Site: withDefaults(site), StateDir: filepath.Join(t.TempDir(), "state"), Monitor: shimPath},
		zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A container that cannot start fails Start with the runtime's reason and
// leaves nothing behind: no bundle, no runtime state, no cgroup.
func TestStartFails(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			rootfs, rt := containerSetup(t, name)
			u := testenv.NewUser(t)
			parent := "fxdtest-oci-" + rand.Text()[:8]
			t.Cleanup(func() { testenv.RemoveCgroupParent(t, parent) })
			e := newExecutor(t, rt, Site{CgroupParent: parent})
			a := isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home}
			_, err := e.Start(context.Background(), isolation.Spec{ID: "nobin", Account: a, Rootfs: rootfs, Argv: []string{"/no/such/program"}})
			if err == nil || !strings.Contains(err.Error(), "/no/such/program") {
				t.Errorf("start of a missing program: err = %v, want the runtime's reason naming it", err)
			}
			t.Logf("start of a missing program: %v", err)
			e2 := newExecutor(t, rt, Site{CgroupParent: parent, Binds: []Bind{{Source: "/tmp", Destination: "/scratch"}}})
			_, err = e2.Start(context.Background(), isolation.Spec{ID: "nomnt", Account: a, Rootfs: rootfs, Argv: []string{"/bin/true"}})
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "/scratch") {
				t.Errorf("start with a bind to a path missing in the image: err = %v, want invalid naming /scratch", err)
			}
			for _, dir := range []string{e.root, e.bundles, e2.root, e2.bundles} {
				if entries, _ := os.ReadDir(dir); len(entries) > 0 {
					t.Errorf("%s holds %d entries after failed starts, want none", dir, len(entries))
				}
			}
			if names, _ := cgroup.Children("/" + parent); len(names) > 0 {
				t.Errorf("cgroups %v left after failed starts", names)
			}
		})
	}
}

// The monitor runs as root: New refuses one that others could replace.
func TestMonitorMustBeRoots(t *testing.T) {
	testenv.RequireRoot(t)
	rt := Runtime{Name: "runc", Path: "/usr/sbin/runc"}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil { // writable by all, not sticky
		t.Fatal(err)
	}
	monitor := filepath.Join(dir, "fxd-shim")
	if err := os.WriteFile(monitor, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{Runtime: rt, Site: withDefaults(Site{CgroupParent: "x"}), StateDir: filepath.Join(t.TempDir(), "s"), Monitor: monitor}, zerolog.Nop())
	if !errors.Is(err, api.ErrDenied) || !strings.Contains(err.Error(), dir) {
		t.Errorf("New with a monitor in a world-writable dir = %v, want denied naming %s", err, dir)
	}
	if _, err := New(Config{Runtime: rt, Site: withDefaults(Site{CgroupParent: "x"}), StateDir: filepath.Join(t.TempDir(), "s"), Monitor: shimPath}, zerolog.Nop()); err != nil {
		t.Errorf("New with root's monitor = %v", err)
	}
}

// Cleanup, as a restarted daemon runs it, removes a container a previous
// executor left running: its process, runtime state, cgroup, staged root
// and binds, and bundle, without touching what the binds showed. The
// first executor still watches the container and removes it too as it
// dies, so this also proves that removal is idempotent.
func TestCleanup(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			rootfs, rt := containerSetup(t, name, testenv.SIFFile("mnt/home/.keep", 0o644, nil))
			u := testenv.NewUser(t)
			keep := filepath.Join(u.Home, "keep")
			if err := os.WriteFile(keep, []byte("mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			parent := "fxdtest-oci-" + rand.Text()[:8]
			t.Cleanup(func() { testenv.RemoveCgroupParent(t, parent) })
			site := withDefaults(Site{CgroupParent: parent, Binds: []Bind{{Source: "$HOME", Destination: "/mnt/home"}}})
			state := filepath.Join(t.TempDir(), "state")
			log := zerolog.New(zerolog.NewTestWriter(t))
			before, err := New(Config{Runtime: rt, Site: site, StateDir: state, Monitor: shimPath}, log)
			if err != nil {
				t.Fatal(err)
			}
			a := isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home}
			p, err := before.Start(context.Background(), isolation.Spec{ID: "left", Account: a, Rootfs: rootfs, Argv: []string{"/bin/sleep", "300"}})
			if err != nil {
				t.Fatal(err)
			}
			after, err := New(Config{Runtime: rt, Site: site, StateDir: state, Monitor: shimPath}, log)
			if err != nil {
				t.Fatal(err)
			}
			if err := after.Cleanup(); err != nil {
				t.Errorf("Cleanup = %v", err)
			}
			if st, _ := p.Wait(); st.Signal == "" {
				t.Errorf("the container left running ended %+v, want killed by Cleanup", st)
			}
			for _, dir := range []string{after.root, after.bundles} {
				if entries, _ := os.ReadDir(dir); len(entries) > 0 {
					t.Errorf("%s holds %d entries after Cleanup, want none", dir, len(entries))
				}
			}
			if names, _ := cgroup.Children("/" + parent); len(names) > 0 {
				t.Errorf("cgroups %v left after Cleanup", names)
			}
			if mi, err := os.ReadFile("/proc/self/mountinfo"); err != nil || strings.Contains(string(mi), state) {
				t.Errorf("mounts under %s left after Cleanup (%v):\n%s", state, err, mi)
			}
			if b, err := os.ReadFile(keep); err != nil || string(b) != "mine\n" {
				t.Errorf("the file the bind showed after Cleanup: %q, %v; want it untouched", b, err)
			}
		})
	}
}
