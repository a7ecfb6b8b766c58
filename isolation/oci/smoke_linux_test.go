package oci

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"fxd.dev/fxd/api"
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
		// The kernel releases an autoclear loop device after the
		// unmount returns.
		var out []byte
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if out, _ = exec.Command("losetup", "-j", img).Output(); len(bytes.TrimSpace(out)) == 0 {
				return
			}
		}
		t.Errorf("loop device of %s still attached 2 s after umount: %s", img, out)
	})
}

// TestContainerIsolation runs a busybox image with each runtime through
// the executor, as a throwaway account, and checks from inside what
// NewSpec promises.
func TestContainerIsolation(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			rootfs, rt := containerSetup(t, name,
				testenv.SIFFile("mnt/rw/.keep", 0o644, nil),
				testenv.SIFFile("mnt/ro/.keep", 0o644, nil),
				testenv.SIFFile("mnt/site/.keep", 0o644, nil),
				// 1:3 (null) passes every runtime's device cgroup: only
				// nodev on the root keeps it shut
				testenv.SIFDevice("opt/null", 1, 3))
			testIsolation(t, rootfs, rt)
		})
	}
}

func testIsolation(t *testing.T, rootfs string, rt Runtime) {
	u := testenv.NewUser(t)
	b := make([]byte, 4)
	rand.Read(b)
	parent := "fxdtest-oci-" + hex.EncodeToString(b)
	t.Cleanup(func() { testenv.RemoveCgroupParent(t, parent) })
	site := Site{
		CgroupParent: parent,
		Shim:         testenv.BusyboxPath, // a static binary standing in for fxd-shim
		Binds: []Bind{
			{Source: "$HOME", Destination: "/mnt/rw"},
			{Source: "$HOME", Destination: "/mnt/ro", ReadOnly: true},
			{Source: t.TempDir(), Destination: "/mnt/site"}, // root's, mode 0755
		},
	}
	e := newExecutor(t, rt, site)
	mem := int64(64 << 20)
	script := strings.Join([]string{
		"echo uid=$(id -u) gid=$(id -g) groups=$(id -G)",
		"grep -E '^(CapEff|CapPrm|CapBnd|CapInh|CapAmb|NoNewPrivs)' /proc/self/status | tr -d '\\t' | tr ':' '='",
		"echo pid=$$ cwd=$(pwd) host=$(hostname)",
		"touch /bin/x 2>/dev/null && echo rootfs=writable || echo rootfs=ro",
		"touch /tmp/t && echo tmp=ok tmpmode=$(stat -c %A /tmp)",
		"touch ./w && echo work=ok workmode=$(stat -c %a .)",
		"echo hi > /mnt/rw/f && echo rw=ok",
		"touch /mnt/ro/g 2>/dev/null && echo ro=writable || echo ro=ok",
		"touch /mnt/site/g 2>/dev/null && echo site=writable || echo site=ok",
		"cmp -s /dev/.fxd/fxd-shim /bin/busybox && echo shim=ok",
		"(echo x > /dev/.fxd/fxd-shim) 2>/dev/null && echo shim=writable",
		"echo memlimit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)",
		"set -- /proc/[0-9]*; echo procs=$#",
		"awk '$5 == \"/\" { print \"rootopts=\" $6 }' /proc/self/mountinfo",
		"(echo x > /opt/null) 2>/dev/null && echo imagedev=opened || echo imagedev=refused",
	}, "; ")
	var stdout, stderr bytes.Buffer
	p, err := e.Start(context.Background(), isolation.Spec{
		ID:      "iso-" + hex.EncodeToString(b),
		Account: isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home},
		Rootfs:  rootfs,
		Argv:    []string{"/bin/sh", "-c", script},
		Env:     []string{"PATH=/bin:/usr/bin", "HOME=" + u.Home},
		Limits:  specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &mem}},
		Stdout:  &stdout,
		Stderr:  &stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(); err != nil || st.Code != 0 {
		t.Fatalf("container: %+v, %v\nstdout: %s\nstderr: %s", st, err, stdout.String(), stderr.String())
	}
	got := map[string]string{}
	for _, f := range strings.Fields(stdout.String()) {
		if k, v, ok := strings.Cut(f, "="); ok {
			got[k] = v
		}
	}
	none := "0000000000000000"
	want := map[string]string{
		"uid": strconv.Itoa(int(u.UID)), "gid": strconv.Itoa(int(u.GID)),
		"CapEff": none, "CapPrm": none, "CapBnd": none, "CapInh": none, "CapAmb": none,
		"NoNewPrivs": "1", "pid": "1", "cwd": testWorkDir, "host": "fxd",
		"rootfs": "ro", "tmp": "ok", "work": "ok", "workmode": "700",
		"rw": "ok", "ro": "ok", "site": "ok", "shim": "ok", "memlimit": strconv.FormatInt(mem, 10),
		// its own PID namespace: the shell alone
		"procs": "1",
	}
	// The root is read-only, and with runc, which keeps the flags of the
	// root it is given, neither setuid files nor device nodes in it work
	// (crun drops them: there the image store refuses device nodes).
	rootOpts := []string{"ro"}
	if rt.Name == "runc" {
		want["imagedev"] = "refused"
		rootOpts = append(rootOpts, "nosuid", "nodev")
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("in the container %s = %q, want %q", k, got[k], v)
		}
	}
	for _, opt := range rootOpts {
		if !slices.Contains(strings.Split(got["rootopts"], ","), opt) {
			t.Errorf("in the container / is mounted %q, want %s among its options", got["rootopts"], opt)
		}
	}
	// BuildSIF's /tmp is 1777, and so is the tmpfs mounted on it.
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

// Two tenants' containers: neither sees the other's processes or work
// dir.
func TestContainersApart(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			rootfs, rt := containerSetup(t, name)
			testApart(t, rootfs, rt)
		})
	}
}

func testApart(t *testing.T, rootfs string, rt Runtime) {
	b := make([]byte, 4)
	rand.Read(b)
	parent := "fxdtest-oci-" + hex.EncodeToString(b)
	t.Cleanup(func() { testenv.RemoveCgroupParent(t, parent) })
	e := newExecutor(t, rt, Site{CgroupParent: parent})
	ua, ub := testenv.NewUser(t), testenv.NewUser(t)
	account := func(u testenv.User) isolation.Account {
		return isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home}
	}
	// A leaves a file in its work dir and sleeps.
	a, err := e.Start(context.Background(), isolation.Spec{
		ID: "a-" + hex.EncodeToString(b), Account: account(ua), Rootfs: rootfs,
		Argv: []string{"/bin/sh", "-c", "echo secret > secret-of-a; exec sleep 300"},
		Env:  []string{"PATH=/bin"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Kill(); a.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n, _ := a.Procs(); n == 1 {
			break // the shell has exec'd sleep: the file is written
		}
		if time.Now().After(deadline) {
			t.Fatal("A's container never settled to one process")
		}
	}
	var out bytes.Buffer
	p, err := e.Start(context.Background(), isolation.Spec{
		ID: "b-" + hex.EncodeToString(b), Account: account(ub), Rootfs: rootfs,
		Argv:   []string{"/bin/sh", "-c", "ps -o pid,user,args; ls -a .; find / -xdev -name '*-of-a' 2>/dev/null | sed 's/^/found /'; true"},
		Env:    []string{"PATH=/bin"},
		Stdout: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(); err != nil || st.Code != 0 {
		t.Fatalf("B's container: %+v, %v: %s", st, err, out.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "sleep") || strings.HasPrefix(line, "found ") || strings.Contains(line, "secret") {
			t.Errorf("B sees A's process or file: %q", line)
		}
	}
	if s := out.String(); !strings.Contains(s, "ps -o") {
		t.Errorf("B's ps did not list itself:\n%s", s)
	}
}

// With NetworkNone a container has a network namespace of its own with
// only the loopback device; by default it shares the host's.
func TestContainerNetwork(t *testing.T) {
	rootfs, rt := containerSetup(t, "crun")
	u := testenv.NewUser(t)
	parent := "fxdtest-oci-" + rand.Text()[:8]
	t.Cleanup(func() { testenv.RemoveCgroupParent(t, parent) })
	// Device names from /proc/net/dev: "  lo: 0 0 …", one per line after two headers.
	script := "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '"
	devices := func(network Network) string {
		e := newExecutor(t, rt, Site{CgroupParent: parent, Network: network})
		var out bytes.Buffer
		p, err := e.Start(context.Background(), isolation.Spec{
			ID: "net-" + rand.Text()[:8], Account: isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home},
			Rootfs: rootfs, Argv: []string{"/bin/sh", "-c", script}, Env: []string{"PATH=/bin"}, Stdout: &out,
		})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := p.Wait(); err != nil || st.Code != 0 {
			t.Fatalf("container: %+v, %v", st, err)
		}
		return strings.TrimSpace(out.String())
	}
	if got := devices(NetworkNone); got != "lo" {
		t.Errorf("network none: devices %q, want only lo", got)
	}
	host, _ := os.ReadFile("/proc/net/dev")
	if got := devices(NetworkHost); strings.Count(string(host), "\n")-2 != len(strings.Fields(got)) {
		t.Errorf("network host: devices %q, want the host's %d", got, strings.Count(string(host), "\n")-2)
	}
}

// A bind source reaches the container only as its account reaches it: a
// symlink the account plants in a shared directory, pointing into a
// directory it may not search, does not give it another user's files.
func TestBindSourceAsAccount(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			rootfs, rt := containerSetup(t, name, testenv.SIFFile("mnt/site/.keep", 0o644, nil))
			alice, bob := testenv.NewUser(t), testenv.NewUser(t)
			// bob's private dir (0700) holds a readable subdirectory
			private := filepath.Join(bob.Home, "private")
			pub := filepath.Join(private, "pub")
			if err := os.MkdirAll(pub, 0o755); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(pub, "f"), []byte("secret of bob\n"), 0o644)
			os.Chmod(private, 0o700)
			for _, p := range []string{private, pub, filepath.Join(pub, "f")} {
				os.Chown(p, int(bob.UID), int(bob.GID))
			}
			// alice's own link into bob's private dir: the site binds
			// $HOME/data, and alice made it a symlink. (In her home, not in
			// a sticky shared dir, where fs.protected_symlinks would stop
			// root from following it anyway and hide the bug.)
			link := filepath.Join(alice.Home, "data")
			if err := os.Symlink(pub, link); err != nil {
				t.Fatal(err)
			}
			os.Lchown(link, int(alice.UID), int(alice.GID))
			parent := "fxdtest-oci-" + rand.Text()[:8]
			t.Cleanup(func() { testenv.RemoveCgroupParent(t, parent) })
			e := newExecutor(t, rt, Site{CgroupParent: parent, Binds: []Bind{{Source: "$HOME/data", Destination: "/mnt/site"}}})
			var out bytes.Buffer
			p, err := e.Start(context.Background(), isolation.Spec{
				ID: "bind-" + rand.Text()[:8], Account: isolation.Account{Name: alice.Name, UID: alice.UID, GID: alice.GID, Home: alice.Home},
				Rootfs: rootfs, Argv: []string{"/bin/cat", "/mnt/site/f"}, Env: []string{"PATH=/bin"}, Stdout: &out,
			})
			if err == nil {
				p.Wait()
				t.Fatalf("start with a planted symlink: ran and printed %q, want a refusal", out.String())
			}
			if !errors.Is(err, api.ErrDenied) {
				t.Errorf("start with a planted symlink: %v, want denied", err)
			}
			t.Logf("refused as wanted: %v", err)
			// and a bind the account may reach works, with nothing left after
			own := filepath.Join(alice.Home, "own")
			os.Mkdir(own, 0o755)
			os.WriteFile(filepath.Join(own, "f"), []byte("mine\n"), 0o644)
			os.Chown(own, int(alice.UID), int(alice.GID))
			e = newExecutor(t, rt, Site{CgroupParent: parent, Binds: []Bind{{Source: "$HOME/own", Destination: "/mnt/site"}}})
			out.Reset()
			p, err = e.Start(context.Background(), isolation.Spec{
				ID: "bind-" + rand.Text()[:8], Account: isolation.Account{Name: alice.Name, UID: alice.UID, GID: alice.GID, Home: alice.Home},
				Rootfs: rootfs, Argv: []string{"/bin/cat", "/mnt/site/f"}, Env: []string{"PATH=/bin"}, Stdout: &out,
			})
			if err != nil {
				t.Fatal(err)
			}
			if st, err := p.Wait(); err != nil || st.Code != 0 || out.String() != "mine\n" {
				t.Errorf("own bind: %+v, %v, %q", st, err, out.String())
			}
			if b, err := os.ReadFile(filepath.Join(own, "f")); err != nil || string(b) != "mine\n" {
				t.Errorf("the bound dir after the container: %q, %v; want it untouched", b, err)
			}
		})
	}
}

// A Spec's own bind, as runtimes makes one for a task's data: a directory
// of the account's (0500) holding a file of root's, bound read-only into
// the work dir's tmpfs, where the runtime makes the mount point. The
// container reads it and cannot change it; a source the account may not
// reach is refused, as for the site's binds.
func TestSpecBind(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			rootfs, rt := containerSetup(t, name)
			alice, bob := testenv.NewUser(t), testenv.NewUser(t)
			os.Chmod(alice.Home, 0o700) // only she passes
			data := filepath.Join(alice.Home, "data")
			if err := os.Mkdir(data, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(data, "f"), []byte("data\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chmod(data, 0o500)
			os.Chown(data, int(alice.UID), int(alice.GID))
			parent := "fxdtest-oci-" + rand.Text()[:8]
			t.Cleanup(func() { testenv.RemoveCgroupParent(t, parent) })
			e := newExecutor(t, rt, Site{CgroupParent: parent})
			at := testWorkDir + "/data"
			run := func(u testenv.User) (string, error) {
				var out bytes.Buffer
				p, err := e.Start(context.Background(), isolation.Spec{
					ID: "sb-" + rand.Text()[:8], Account: isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home},
					Rootfs: rootfs, Env: []string{"PATH=/bin"}, Stdout: &out, Stderr: &out,
					Argv:  []string{"/bin/sh", "-c", "cat " + at + "/f; echo x > " + at + "/f || echo file=ro; touch " + at + "/g || echo dir=ro"},
					Binds: []isolation.Bind{{Source: data, Destination: at, ReadOnly: true}},
				})
				if err != nil {
					return "", err
				}
				p.Wait()
				return out.String(), nil
			}
			out, err := run(alice)
			if err != nil || !strings.HasPrefix(out, "data\n") || !strings.Contains(out, "file=ro") || !strings.Contains(out, "dir=ro") {
				t.Errorf("alice with her data bound: %q, %v; want it read, read-only", out, err)
			}
			if b, err := os.ReadFile(filepath.Join(data, "f")); err != nil || string(b) != "data\n" {
				t.Errorf("the bound file after the container: %q, %v; want it untouched", b, err)
			}
			if out, err := run(bob); !errors.Is(err, api.ErrDenied) {
				t.Errorf("bob with alice's data bound: %q, %v; want denied", out, err)
			}
		})
	}
}
