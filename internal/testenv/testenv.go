// Package testenv tells tests what this machine can run and makes the real
// resources they need (local user accounts). A test that needs something
// absent skips with the reason on a developer machine and fails when
// CI=true, so CI never passes by skipping.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test with why, or fails it in CI.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("required in CI but unavailable: %s", why)
	}
	t.Skipf("skipped: %s", why)
}

// RequireRoot needs the test to run as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root (run the suite as root, as .ci/run does)")
	}
}

// RequireCgroup needs a writable cgroup hierarchy (v1 memory or v2 unified).
func RequireCgroup(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	for _, p := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup/cgroup.controllers"} {
		if _, err := os.Stat(p); err == nil {
			return
		}
	}
	Unavailable(t, "needs cgroups (v1 memory hierarchy or v2 unified) under /sys/fs/cgroup")
}

// RequireCommand needs name on PATH and returns its path.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, fmt.Sprintf("needs %s on PATH", name))
	}
	return p
}

// User is a real local account made for one test.
type User struct {
	Name string
	UID  uint32
	GID  uint32
	Home string
}

var userMu sync.Mutex // useradd and userdel lock /etc/passwd; serialize our calls

// NewUser creates a local account (useradd) with a home directory under a
// temp dir, and deletes it (userdel) when the test ends. It needs root.
func NewUser(t testing.TB) User {
	t.Helper()
	RequireRoot(t)
	RequireCommand(t, "useradd")
	b := make([]byte, 4)
	rand.Read(b)
	name := "fxdt" + hex.EncodeToString(b)
	home := filepath.Join(t.TempDir(), name)
	userMu.Lock()
	out, err := exec.Command("useradd", "--create-home", "--home-dir", home, "--shell", "/bin/sh", "--user-group", name).CombinedOutput()
	userMu.Unlock()
	if err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		userMu.Lock()
		defer userMu.Unlock()
		if out, err := exec.Command("userdel", "--force", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("look up new user %s: %v", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	// The temp dir is 0700 root; let the user reach its home.
	for d := filepath.Dir(home); strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return User{Name: name, UID: uint32(uid), GID: uint32(gid), Home: home}
}

// RemoveCgroupParent removes the (empty) cgroup directory parent from every
// hierarchy, v1 and v2, with the empty cgroups under it (parent may be a
// glob). One that still holds processes is an error.
func RemoveCgroupParent(t testing.TB, parent string) {
	t.Helper()
	for _, p := range []string{"/sys/fs/cgroup/*/" + parent, "/sys/fs/cgroup/" + parent} {
		dirs, _ := filepath.Glob(p)
		for _, d := range dirs {
			// child cgroups first (an agent killed with SIGKILL leaves its
			// workers' empty ones); a cgroup with processes is not removed
			var children []string
			filepath.WalkDir(d, func(path string, e fs.DirEntry, err error) error {
				if err == nil && e.IsDir() && path != d {
					children = append(children, path)
				}
				return nil
			})
			// Processes of a cancelled block may still be on their way out
			// (the scheduler signals them after scancel returns): give them
			// up to half a minute.
			deadline := time.Now().Add(30 * time.Second)
			for {
				for i := len(children) - 1; i >= 0; i-- {
					os.Remove(children[i])
				}
				err := os.Remove(d)
				if err == nil || os.IsNotExist(err) {
					break
				}
				if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
					t.Errorf("remove test cgroup parent: %v", err)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}

// StartHelper runs this test binary again as a child that runs only the
// test named name, with env added (the helper test returns at once
// unless env tells it to act), and returns it with its stdout, for
// crash tests that kill it. It fails the test if the child does not
// start; a child still running when the test ends is killed and waited
// for, and any is killed after a minute.
func StartHelper(t testing.TB, name string, env ...string) (*exec.Cmd, io.ReadCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", name, err)
	}
	timeout := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	t.Cleanup(func() {
		timeout.Stop()
		if cmd.ProcessState == nil { // not waited for by the test
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, out
}

// Site is what SiteConfig writes for a test daemon.
type Site struct {
	Name, StateDir, Socket, CgroupParent string
	DrainGrace                           string // like "5s"
	Endpoint                             string // more lines of [endpoint]
	Extra                                string // appended: more tables
}

// SiteConfig is the config of a test daemon: its own state dir, unix
// socket (mode 0666) and cgroup parent, UIDs from 1000, idle workers kept
// a minute, JSON logs at debug.
func SiteConfig(s Site) string {
	return fmt.Sprintf(`
[site]
name = %q
state_dir = %q

[endpoint]
socket = %q
socket_mode = "0666"
drain_grace = %q
%s

[auth]
min_uid = 1000

[workers]
cgroup_parent = %q
idle_timeout = "1m"

[log]
level = "debug"
format = "json"
%s`, s.Name, s.StateDir, s.Socket, s.DrainGrace, s.Endpoint, s.CgroupParent, s.Extra)
}
