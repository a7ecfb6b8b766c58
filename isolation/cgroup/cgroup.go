package cgroup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"fxd.dev/fxd/isolation"
)

// root is where the cgroup file systems are mounted.
const root = "/sys/fs/cgroup"

// Group is the cgroup of one process tree. Path is relative to each
// hierarchy's root, like "/fxd/w-12".
type Group struct {
	path string
	v1   cgroup1.Cgroup   // legacy or hybrid hosts
	v2   *cgroup2.Manager // unified hosts

	oomMu     sync.Mutex
	oomFile   *os.File // memory.oom_control or memory.events, kept open: read after every task
	oomClosed bool     // Delete closed it: not to be opened again
}

// Unified reports whether the host runs the unified v2 hierarchy only.
func Unified() bool { return cgroups.Mode() == cgroups.Unified }

// HybridControllers reports whether the host mounts cgroup v1 hierarchies
// beside a cgroup2 (/sys/fs/cgroup/unified) with controllers enabled, a
// layout crun refuses.
func HybridControllers() bool {
	if cgroups.Mode() != cgroups.Hybrid {
		return false
	}
	b, err := os.ReadFile(filepath.Join(root, "unified", "cgroup.controllers"))
	return err == nil && strings.TrimSpace(string(b)) != ""
}

// CheckParent refuses a cgroup parent that is not a clean path relative to
// each hierarchy's root ("fxd", "site/fxd"): one that would leave it.
func CheckParent(p string) error {
	if p == "" || filepath.IsAbs(p) || filepath.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") || strings.ContainsRune(p, 0) {
		return fmt.Errorf("cgroup parent %q: want a clean relative path like \"fxd\"", p)
	}
	return nil
}

// Available says why cgroups cannot be used here, or nil.
func Available() error {
	if cgroups.Mode() == cgroups.Unavailable {
		return errors.New("no cgroup file system under /sys/fs/cgroup; mount cgroup v1 or v2")
	}
	return nil
}

// New creates the group at path with the limits r in every hierarchy.
func New(path string, r *specs.LinuxResources) (*Group, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	g := &Group{path: path}
	capped := isolation.SwapCapped(*r)
	var err error
	if Unified() {
		g.v2, err = cgroup2.NewManager(root, path, cgroup2.ToResources(&capped))
	} else {
		// memsw is written apart (limitSwapV1): without swap accounting
		// the file is missing, and cgroup1 would fail on it.
		g.v1, err = cgroup1.New(cgroup1.StaticPath(path), r)
	}
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", path, err)
	}
	if !Unified() {
		g.limitSwapV1(capped)
	}
	return g, nil
}

// Load opens an existing group, for cleaning up after a previous run.
func Load(path string) (*Group, error) {
	g := &Group{path: path}
	var err error
	if Unified() {
		g.v2, err = cgroup2.Load(path)
	} else {
		g.v1, err = cgroup1.Load(cgroup1.StaticPath(path))
	}
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", path, err)
	}
	return g, nil
}

// Children lists the names of the groups directly under parent in any
// hierarchy.
func Children(parent string) ([]string, error) {
	pattern := filepath.Join(root, "*", parent, "*")
	if Unified() {
		pattern = filepath.Join(root, parent, "*")
	}
	dirs, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() || seen[filepath.Base(d)] {
			continue
		}
		seen[filepath.Base(d)] = true
		out = append(out, filepath.Base(d))
	}
	return out, nil
}

// limitSwapV1 writes r's memory+swap limit where the kernel has the knob
// (swap accounting on).
func (g *Group) limitSwapV1(r specs.LinuxResources) {
	if r.Memory == nil || r.Memory.Swap == nil {
		return
	}
	f := filepath.Join(g.dirV1("memory"), "memory.memsw.limit_in_bytes")
	os.WriteFile(f, []byte(strconv.FormatInt(*r.Memory.Swap, 10)), 0)
}

// dirV1 is the group's directory in one v1 hierarchy.
func (g *Group) dirV1(controller string) string {
	return filepath.Join(root, controller, g.path)
}

// dir is the directory whose cgroup.procs lists the tree.
func (g *Group) dir() string {
	if g.v2 != nil {
		return filepath.Join(root, g.path)
	}
	return g.dirV1("memory")
}

// Procs lists the PIDs now in the group.
func (g *Group) Procs() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(g.dir(), "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup.procs of %s: %w", g.path, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// OOMKills counts processes the kernel killed in the group for memory.
// The counter file stays open between calls (re-read from offset 0), as
// the daemon asks after every task.
func (g *Group) OOMKills() (int, error) {
	file, key := filepath.Join(g.dir(), "memory.oom_control"), "oom_kill"
	if g.v2 != nil {
		file = filepath.Join(g.dir(), "memory.events")
	}
	g.oomMu.Lock()
	defer g.oomMu.Unlock()
	if g.oomClosed {
		return 0, fmt.Errorf("read %s: %w", file, os.ErrNotExist)
	}
	if g.oomFile == nil {
		f, err := os.Open(file)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", file, err)
		}
		g.oomFile = f
	}
	var buf [512]byte
	n, err := g.oomFile.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read %s: %w", file, err)
	}
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			return strconv.Atoi(f[1])
		}
	}
	return 0, nil
}

func (g *Group) closeOOMFile() {
	g.oomMu.Lock()
	defer g.oomMu.Unlock()
	g.oomClosed = true
	if g.oomFile != nil {
		g.oomFile.Close()
		g.oomFile = nil
	}
}

// Kill sends SIGKILL to every process of the group and waits, at most
// 5 s, until none is left. Frozen first (v1) so nothing forks meanwhile.
func (g *Group) Kill() error {
	if g.v2 != nil {
		if err := g.v2.Kill(); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("kill cgroup %s: %w", g.path, err)
		}
		return g.waitEmpty()
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pids, err := g.Procs()
		if errors.Is(err, os.ErrNotExist) || (err == nil && len(pids) == 0) {
			return nil
		}
		if err != nil {
			return err
		}
		g.v1.Freeze()
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		g.v1.Thaw()
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("kill cgroup %s: processes still there after 5s", g.path)
}

func (g *Group) waitEmpty() error {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		pids, err := g.Procs()
		if errors.Is(err, os.ErrNotExist) || (err == nil && len(pids) == 0) {
			return nil
		}
	}
	return fmt.Errorf("cgroup %s: processes still there 5s after SIGKILL", g.path)
}

// Delete kills what is left and removes the group from every hierarchy.
func (g *Group) Delete() error {
	g.closeOOMFile()
	if err := g.Kill(); err != nil {
		return err
	}
	var err error
	if g.v2 != nil {
		err = g.v2.Delete()
	} else {
		err = g.v1.Delete()
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return fmt.Errorf("remove cgroup %s: %w", g.path, err)
	}
	return nil
}

// Start starts cmd with its first process already inside the group.
func (g *Group) Start(cmd *exec.Cmd) error {
	if g.v2 != nil {
		return g.startV2(cmd)
	}
	return g.startV1(cmd)
}

func (g *Group) startV2(cmd *exec.Cmd) error {
	fd, err := unix.Open(g.dir(), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", g.path, err)
	}
	defer unix.Close(fd)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	return cmd.Start()
}

// ErrParentHeld is returned by ClaimParent when another process holds the
// parent.
var ErrParentHeld = errors.New("cgroup parent held by another process")

// ClaimParent creates the parent group (in the memory hierarchy on v1,
// the one dir uses; the only one on v2) and takes an exclusive lock on it, so that two daemons
// cannot share a parent and remove each other's groups. The lock lasts
// until the returned file is closed or the process exits.
func ClaimParent(parent string) (*os.File, error) {
	dir := filepath.Join(root, parent)
	if !Unified() {
		dir = filepath.Join(root, "memory", parent)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", dir, ErrParentHeld)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return f, nil
}
