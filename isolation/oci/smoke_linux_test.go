package oci

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation"
)

// mountSIF loop-mounts the primary squashfs partition of the SIF at img
// read-only on dir, and unmounts it (which frees the loop device, as mount
// -o loop sets autoclear) when the test ends.
func mountSIF(t *testing.T, img, dir string) {
	t.Helper()
	off, size := testenv.SIFRootfs(t, img)
	opts := "loop,ro,offset=" + strconv.FormatInt(off, 10) + ",sizelimit=" + strconv.FormatInt(size, 10)
	if out, err := exec.Command("mount", "-t", "squashfs", "-o", opts, img, dir).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "loop-mount a squashfs (needs the squashfs and loop kernel modules): "+strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
		if out, _ := exec.Command("losetup", "-j", img).Output(); len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("loop device of %s still attached after umount: %s", img, out)
		}
	})
}

// TestRuncRunsTenant runs a busybox SIF with runc under the spec NewSpec
// makes, as a throwaway account, and checks from inside what the spec
// promises. crun is not tried here: on this hybrid cgroup host it needs a
// private mount namespace without /sys/fs/cgroup/unified (a later slice).
func TestRuncRunsTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a container")
	}
	testenv.RequireCgroup(t)
	runc := testenv.RequireCommand(t, "runc")
	testenv.RequireCommand(t, "mount")
	img := testenv.BuildSIF(t,
		testenv.SIFFile("mnt/rw/.keep", 0o644, nil),
		testenv.SIFFile("mnt/ro/.keep", 0o644, nil))
	u := testenv.NewUser(t)

	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	mountSIF(t, img, rootfs)

	b := make([]byte, 4)
	rand.Read(b)
	id := "ocitest-" + hex.EncodeToString(b)
	parent := "fxdtest-oci-" + hex.EncodeToString(b)
	mem, pids := int64(64<<20), int64(32)
	script := strings.Join([]string{
		"echo uid=$(id -u) gid=$(id -g) groups=$(id -G)",
		"grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status | tr -d '\\t' | tr ':' '='",
		"echo pid=$$ cwd=$(pwd) host=$(hostname)",
		"touch /bin/x 2>/dev/null && echo rootfs=writable || echo rootfs=ro",
		"touch /tmp/t && echo tmp=ok tmpmode=$(stat -c %A /tmp)",
		"touch ./w && echo work=ok workmode=$(stat -c %a .)",
		"echo hi > /mnt/rw/f && echo rw=ok",
		"touch /mnt/ro/g 2>/dev/null && echo ro=writable || echo ro=ok",
		"cmp -s /dev/.fxd/fxd-shim /bin/busybox && echo shim=ok",
		"(echo x > /dev/.fxd/fxd-shim) 2>/dev/null && echo shim=writable",
		"echo memlimit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)",
	}, "; ")
	s := isolation.Spec{
		ID:      id,
		Account: isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home},
		Rootfs:  rootfs,
		Argv:    []string{"/bin/sh", "-c", script},
		Env:     []string{"PATH=/bin:/usr/bin", "HOME=" + u.Home},
		Limits:  specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &mem}, Pids: &specs.LinuxPids{Limit: &pids}},
	}
	site := Site{
		CgroupParent: parent,
		Shim:         testenv.BusyboxPath, // a static binary standing in for fxd-shim
		Binds: []Bind{
			{Source: "$HOME", Destination: "/mnt/rw"},
			{Source: "$HOME", Destination: "/mnt/ro", ReadOnly: true},
		},
	}
	g, err := NewSpec(s, site)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckMountpoints(rootfs, g); err != nil {
		t.Fatalf("CheckMountpoints(busybox image) = %v", err)
	}
	raw, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}

	state := t.TempDir() // runc --root: this test's containers only
	t.Cleanup(func() {
		// runs before the unmount (cleanups run last-in first-out)
		exec.Command(runc, "--root", state, "delete", "--force", id).Run()
		for _, h := range cgroupDirs(parent) {
			if _, err := os.Stat(filepath.Join(h, id)); err == nil {
				t.Errorf("cgroup %s/%s left after runc delete", h, id)
			}
		}
		testenv.RemoveCgroupParent(t, parent)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, runc, "--root", state, "run", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("runc run: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	t.Logf("runc run took %v", time.Since(start))
	got := map[string]string{}
	for _, f := range strings.Fields(stdout.String()) {
		if k, v, ok := strings.Cut(f, "="); ok {
			got[k] = v
		}
	}
	want := map[string]string{
		"uid": strconv.Itoa(int(u.UID)), "gid": strconv.Itoa(int(u.GID)),
		"CapEff": "0000000000000000", "CapPrm": "0000000000000000", "CapBnd": "0000000000000000",
		"NoNewPrivs": "1", "pid": "1", "cwd": DefaultWorkDir, "host": "fxd",
		"rootfs": "ro", "tmp": "ok", "work": "ok", "workmode": "700",
		"rw": "ok", "ro": "ok", "shim": "ok", "memlimit": strconv.FormatInt(mem, 10),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("in the container %s = %q, want %q", k, got[k], v)
		}
	}
	// runc 1.1.5 gives a tmpfs whose mount point exists in the image that
	// directory's mode, not the mode= option; BuildSIF's /tmp is 1777.
	if m := got["tmpmode"]; m != "drwxrwxrwt" {
		t.Errorf("in the container /tmp mode = %q, want drwxrwxrwt (world-writable, sticky)", m)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	if b, err := os.ReadFile(filepath.Join(u.Home, "f")); err != nil || string(b) != "hi\n" {
		t.Errorf("file written through the writable bind: %q, %v", b, err)
	}
}

// cgroupDirs lists the directories of the cgroup parent in every mounted
// hierarchy.
func cgroupDirs(parent string) []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent)
	return dirs
}
