package shim

import (
	"errors"
	"fmt"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// forwarded are the signals Init passes on to its child. SIGKILL and
// SIGSTOP cannot be caught; the daemon kills a container's whole cgroup.
var forwarded = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGCONT}

// Init runs argv as its only child and returns the exit code to exit
// with. It is PID 1 of a servable's container, in the servable's place:
// the kernel gives PID 1 orphans to reap and delivers it only the signals
// it handles, which a servable, written for a shell's world, neither
// expects nor does. Init reaps every process that ends, passes the
// catchable signals on to the child, and returns when the child has ended:
// its exit status, or 128 plus the signal that killed it (said on stderr,
// since the container's status then only tells the number). The child has
// Init's stdin, stdout, stderr, environment and work dir; argv[0] is found
// on the environment's PATH.
//
// Outside a container (in tests) Init makes itself a child subreaper, so
// that it inherits its child's orphans there too.
func Init(argv []string) int {
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "fxd-shim init: no command; usage: fxd-shim init -- COMMAND [ARG...]")
		return 2
	}
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			fmt.Fprintf(os.Stderr, "fxd-shim init: become a subreaper: %v\n", err)
			return 1
		}
	}
	path, err := lookPath(argv[0], os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "fxd-shim init: %v\n", err)
		return 127
	}
	// Signals are caught before the child starts, so none is lost; the
	// child gets the default dispositions back at exec.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, append([]os.Signal{unix.SIGCHLD}, forwarded...)...)
	child, err := os.StartProcess(path, argv, &os.ProcAttr{Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "fxd-shim init: start %s: %v\n", argv[0], err)
		return 127
	}
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			if err := child.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
				fmt.Fprintf(os.Stderr, "fxd-shim init: pass %v on: %v\n", sig, err)
			}
			continue
		}
		if ws, done := reapAll(child.Pid); done {
			return exitCode(argv[0], ws)
		}
	}
	return 1 // not reached: sigs is never closed
}

// reapAll reaps every child that has ended and reports whether pid was
// one of them, with its status.
func reapAll(pid int) (status unix.WaitStatus, done bool) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil || got == 0: // ECHILD, or none ended
			return status, done
		case got == pid:
			status, done = ws, true
		}
	}
}

// exitCode is the exit code of a process that reports ws, as a shell
// gives it.
func exitCode(name string, ws unix.WaitStatus) int {
	if ws.Signaled() {
		fmt.Fprintf(os.Stderr, "fxd-shim init: %s killed by signal %d (%v)\n", name, int(ws.Signal()), ws.Signal())
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
