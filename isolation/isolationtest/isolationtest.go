// Package isolationtest is the conformance suite every isolation.Executor
// passes: real accounts, real cgroups, real processes.
package isolationtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation"
)

// Run runs the suite against executors made by newExec, which must place
// cgroups under the parent it is given. Every tree runs in rootfs, an
// image root with busybox's applets in /bin and /usr/bin/env (see
// testenv.BuildSIF), or on the host file system when rootfs is "".
func Run(t *testing.T, rootfs string, newExec func(t *testing.T, cgroupParent string) isolation.Executor) {
	testenv.RequireCgroup(t)
	// The executor's parent lies in one of the suite's own, so that an
	// executor that wrongly takes the ID ".." (BadIDRefused) reaches only
	// that, not the root cgroup, whose processes it would kill.
	top := fmt.Sprintf("fxdtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	parent := top + "/exec"
	t.Cleanup(func() { testenv.RemoveCgroupParent(t, top) })
	t.Cleanup(func() { testenv.RemoveCgroupParent(t, parent) })
	e := newExec(t, parent)
	u := testenv.NewUser(t)
	acct := isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Groups: []uint32{u.GID}, Home: u.Home}
	cases := []struct {
		name string
		fn   func(t *testing.T, e executor, a isolation.Account, parent string)
	}{
		{"RunsAsAccount", runsAsAccount},
		{"CleanEnvironment", cleanEnvironment},
		{"RootRefused", rootRefused},
		{"BadIDRefused", badIDRefused},
		{"MemoryLimit", memoryLimit},
		{"PidsLimit", pidsLimit},
		{"KillWholeTree", killWholeTree},
		{"CgroupRemovedAfterExit", cgroupRemoved},
		{"Stdio", stdio},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, executor{e, rootfs}, acct, parent) })
	}
}

// executor is the executor under test and the root file system its trees
// run in.
type executor struct {
	isolation.Executor
	rootfs string
}

func (e executor) spec(a isolation.Account, argv ...string) isolation.Spec {
	return isolation.Spec{ID: "t-" + rand.Text()[:12], Account: a, Rootfs: e.rootfs, Argv: argv, Env: a.Env()}
}

func start(t *testing.T, e executor, s isolation.Spec) isolation.Process {
	t.Helper()
	p, err := e.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("start %v: %v", s.Argv, err)
	}
	t.Cleanup(func() { p.Kill(); p.Wait() })
	return p
}

func output(t *testing.T, e executor, s isolation.Spec) (string, isolation.ExitStatus) {
	t.Helper()
	var out bytes.Buffer
	s.Stdout = &out
	p := start(t, e, s)
	st, err := p.Wait()
	if err != nil {
		t.Fatalf("wait %v: %v", s.Argv, err)
	}
	return out.String(), st
}

func runsAsAccount(t *testing.T, e executor, a isolation.Account, _ string) {
	s := e.spec(a, "/bin/sh", "-c", "id -u; id -g; id -G; pwd")
	dir := a.Home // the default on the host
	if e.rootfs != "" {
		s.Dir, dir = "/tmp", "/tmp" // images have no home directories
	}
	out, st := output(t, e, s)
	want := fmt.Sprintf("%d\n%d\n%d\n%s\n", a.UID, a.GID, a.GID, dir)
	if out != want || st.Code != 0 {
		t.Errorf("id = %q (exit %d), want %q", out, st.Code, want)
	}
}

func cleanEnvironment(t *testing.T, e executor, a isolation.Account, _ string) {
	// HOME is given: OCI runtimes add one when it is missing.
	s := e.spec(a, "/usr/bin/env")
	s.Env = []string{"ONLY=this", "HOME=/nonexistent"}
	out, _ := output(t, e, s)
	if out != "ONLY=this\nHOME=/nonexistent\n" {
		t.Errorf("env = %q, want exactly ONLY=this and HOME=/nonexistent", out)
	}
}

func rootRefused(t *testing.T, e executor, a isolation.Account, _ string) {
	root := a
	root.UID = 0
	if _, err := e.Start(context.Background(), e.spec(root, "/bin/true")); !errors.Is(err, api.ErrDenied) {
		t.Errorf("start as uid 0: err = %v, want denied", err)
	}
}

// badIDRefused: "." and ".." would make the tree's cgroup the parent or
// the parent's parent (the root cgroup for a top-level parent), "a/b" a
// grandchild.
func badIDRefused(t *testing.T, e executor, a isolation.Account, _ string) {
	for _, id := range []string{"..", ".", "", "a/b"} {
		s := e.spec(a, "/bin/true")
		s.ID = id
		p, err := e.Start(context.Background(), s)
		if err == nil {
			p.Wait()
		}
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("start with id %q: err = %v, want invalid", id, err)
		}
	}
}

func memoryLimit(t *testing.T, e executor, a isolation.Account, _ string) {
	s := e.spec(a, "/bin/sh", "-c", "head -c 200000000 /dev/zero | tail > /dev/null")
	limit := int64(32 << 20)
	s.Limits.Memory = &specs.LinuxMemory{Limit: &limit}
	_, st := output(t, e, s)
	if st.OOMKills == 0 {
		t.Errorf("200 MB in a 32 MiB group: exit %+v, want an OOM kill", st)
	}
}

func pidsLimit(t *testing.T, e executor, a isolation.Account, _ string) {
	s := e.spec(a, "/bin/sh", "-c", "for i in $(seq 100); do sleep 30 & done; wait")
	limit := int64(16)
	s.Limits.Pids = &specs.LinuxPids{Limit: &limit}
	var errb bytes.Buffer
	s.Stderr = &errb
	p := start(t, e, s)
	most := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n, err := p.Procs()
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, n)
	}
	p.Kill()
	p.Wait()
	if most > 16 {
		t.Errorf("%d processes under a pids limit of 16", most)
	}
	if !strings.Contains(strings.ToLower(errb.String()), "fork") {
		t.Errorf("stderr = %q, want the shell's fork failure at the limit", errb.String())
	}
}

func killWholeTree(t *testing.T, e executor, a isolation.Account, _ string) {
	p := start(t, e, e.spec(a, "/bin/sh", "-c", "setsid sleep 300 & (sleep 300 &) ; sleep 300"))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n, _ := p.Procs(); n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tree never had 3 processes")
		}
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	st, _ := p.Wait()
	if st.Signal != "killed" {
		t.Errorf("status after Kill = %+v, want killed", st)
	}
	if n, _ := p.Procs(); n != 0 {
		t.Errorf("%d processes left after Kill", n)
	}
}

func cgroupRemoved(t *testing.T, e executor, a isolation.Account, parent string) {
	s := e.spec(a, "/bin/true")
	_, st := output(t, e, s)
	if st.Code != 0 {
		t.Errorf("/bin/true exit %d", st.Code)
	}
	if dirs := groupDirs(parent, s.ID); len(dirs) > 0 {
		t.Errorf("cgroup dirs left after Wait: %v", dirs)
	}
}

func stdio(t *testing.T, e executor, a isolation.Account, _ string) {
	s := e.spec(a, "/bin/sh", "-c", "tr a-z A-Z; echo oops >&2; exit 3")
	var errb bytes.Buffer
	s.Stdin, s.Stderr = strings.NewReader("hello"), &errb
	out, st := output(t, e, s)
	if out != "HELLO" || errb.String() != "oops\n" || st.Code != 3 {
		t.Errorf("stdio = %q, stderr %q, exit %d; want HELLO, oops, 3", out, errb.String(), st.Code)
	}
}

func groupDirs(parent, id string) []string {
	var out []string
	for _, p := range []string{"/sys/fs/cgroup/*/" + parent + "/" + id, "/sys/fs/cgroup/" + parent + "/" + id} {
		ds, _ := filepath.Glob(p)
		out = append(out, ds...)
	}
	return out
}
