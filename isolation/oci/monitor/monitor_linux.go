package monitor

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Command is the first argument that makes fxd-shim a container monitor
// (see Main).
const Command = "monitor"

// statusFD is the monitor's file descriptor for telling the executor
// whether the container started.
const statusFD = 3

// Main is the main of a container monitor, the host process that the
// Executor starts for each container (as "fxd-shim monitor"). Like
// containerd's shims and podman's conmon, it makes the container's first
// process its own child, so that its exit status is known and it is
// reaped:
//
//	fxd-shim monitor [-hide-cgroup2] -pid-file FILE -- RUNTIME ARGS...
//
// It becomes a child subreaper and runs RUNTIME ARGS (a "run -d" that
// writes the container's host PID to FILE), which hands the monitor's own
// stdin, stdout and stderr to the container and exits once it runs; the
// container's process, orphaned, becomes the monitor's child. The monitor
// then writes "started PID\n" to file descriptor 3 (or "error MESSAGE\n"
// when the runtime failed, and ends), points its standard streams at
// /dev/null, waits for the container's process and writes how it ended,
// "exited CODE\n" or "signaled NUMBER\n", before it ends itself. With -hide-cgroup2 the runtime runs in a
// private mount namespace without /sys/fs/cgroup/unified, which crun needs
// on hybrid cgroup hosts (see Executor). It returns the exit code for
// main.
func Main(args []string) int {
	var st unix.Stat_t
	if err := unix.Fstat(statusFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		fmt.Fprintln(os.Stderr, "fxd-shim monitor: no status pipe on fd 3; the monitor is started by fxd, not by hand")
		return 2
	}
	status := os.NewFile(statusFD, "status")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(status, "error "+format+"\n", a...)
		return 125
	}
	unix.CloseOnExec(statusFD)
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	hide := fs.Bool("hide-cgroup2", false, "run the runtime without /sys/fs/cgroup/unified")
	pidFile := fs.String("pid-file", "", "where the runtime writes the container's PID")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 || *pidFile == "" {
		return fail("usage: fxd-shim monitor [-hide-cgroup2] -pid-file FILE -- RUNTIME ARGS...")
	}
	argv := fs.Args()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail("become subreaper: %v", err)
	}
	rt, err := startRuntime(argv, *hide)
	if err != nil {
		return fail("%v", err)
	}
	pid := 0
	early := map[int]unix.WaitStatus{} // children reaped before the PID was known
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			if pid == 0 {
				return fail("wait for %s: %v", argv[0], err)
			}
			return 125 // the container's process is not ours: cannot happen
		}
		switch {
		case got == rt:
			if !ws.Exited() || ws.ExitStatus() != 0 {
				return fail("%s %s", argv[0], waitText(ws))
			}
			if pid, err = readPid(*pidFile); err != nil {
				return fail("%v", err)
			}
			fmt.Fprintf(status, "started %d\n", pid)
			quiet()
			if ws, ok := early[pid]; ok {
				return report(status, ws)
			}
		case got == pid:
			return report(status, ws)
		case pid == 0:
			early[got] = ws
		}
	}
}

// startRuntime starts the runtime, with -hide-cgroup2 from a thread that
// first moves into a mount namespace of its own. That thread then ends, so
// the monitor, which lives as long as the container, holds no copy of the
// host's mounts (which would keep file systems an admin unmounts busy).
func startRuntime(argv []string, hide bool) (int, error) {
	type result struct {
		pid int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // with hide, never unlocked: the thread ends with the goroutine
		if hide {
			if err := hideCgroup2(); err != nil {
				ch <- result{0, err}
				return
			}
		} else {
			defer runtime.UnlockOSThread()
		}
		pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
		if err != nil {
			err = fmt.Errorf("start %s: %w", argv[0], err)
		}
		ch <- result{pid, err}
	}()
	r := <-ch
	return r.pid, r.err
}

// hideCgroup2 moves this thread into a mount namespace of its own where
// /sys/fs/cgroup/unified is not mounted.
func hideCgroup2() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("new mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Unmount("/sys/fs/cgroup/unified", unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount /sys/fs/cgroup/unified: %w", err)
	}
	return nil
}

// readPid reads the PID a runtime wrote.
func readPid(file string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("read the container's pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s holds %q, want a pid", file, b)
	}
	return pid, nil
}

// quiet points the monitor's standard streams at /dev/null, so that the
// container's process holds the worker's pipes alone.
func quiet() {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	for fd := range 3 {
		unix.Dup3(null, fd, 0)
	}
	unix.Close(null)
}

// report writes how the container's process ended to the status pipe:
// "exited CODE" or "signaled NUMBER".
func report(status *os.File, ws unix.WaitStatus) int {
	if ws.Signaled() {
		fmt.Fprintf(status, "signaled %d\n", int(ws.Signal()))
	} else {
		fmt.Fprintf(status, "exited %d\n", ws.ExitStatus())
	}
	status.Close()
	return 0
}

func waitText(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "was killed by " + ws.Signal().String()
	}
	return "exited with status " + strconv.Itoa(ws.ExitStatus())
}
