package cgroup

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	"golang.org/x/sys/unix"
)

// startV1 forks cmd from an OS thread that has joined the group in every
// v1 hierarchy, then moves the thread back where it was.
func (g *Group) startV1(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	tid := unix.Gettid()
	home, err := threadCgroups(tid)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	if err := g.v1.AddTask(cgroup1.Process{Pid: tid}); err != nil {
		// Some hierarchies may have taken the thread: put it back, or let
		// it die with the goroutine (it stays locked) if that fails too.
		if moveBack(g.v1, tid, home) == nil {
			runtime.UnlockOSThread()
		}
		return fmt.Errorf("enter cgroup %s: %w", g.path, err)
	}
	startErr := cmd.Start()
	if err := moveBack(g.v1, tid, home); err != nil {
		// Leave the thread locked: it exits with this goroutine, so no
		// daemon thread lives on inside the tenant's group.
		if startErr == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		return fmt.Errorf("leave cgroup %s after starting the process: %w", g.path, err)
	}
	runtime.UnlockOSThread()
	return startErr
}

// threadCgroups reads a thread's cgroup path per v1 controller.
func threadCgroups(tid int) (map[string]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/self/task/%d/cgroup", tid))
	if err != nil {
		return nil, fmt.Errorf("read thread cgroups: %w", err)
	}
	defer f.Close()
	paths := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[0] == "0" {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			paths[strings.TrimPrefix(c, "name=")] = parts[2]
		}
	}
	return paths, sc.Err()
}

// moveBack writes tid into its original cgroup in each hierarchy of g.
func moveBack(g cgroup1.Cgroup, tid int, home map[string]string) error {
	for _, s := range g.Subsystems() {
		p, ok := s.(interface{ Path(string) string })
		orig, known := home[string(s.Name())]
		if !ok || !known {
			continue
		}
		tasks := filepath.Join(p.Path(orig), "tasks")
		if err := os.WriteFile(tasks, []byte(strconv.Itoa(tid)), 0); err != nil {
			return fmt.Errorf("move thread %d back to %s: %w", tid, tasks, err)
		}
	}
	return nil
}
