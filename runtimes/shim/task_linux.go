package shim

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pipes are a task's stdout and stderr: the shim's read ends
// (non-blocking; -1 once at their end) and the write ends that the task
// gets, which the shim holds too until the task's process has exited
// (-1 once closed). Holding them, the shim sees the exit once, on the
// pidfd, not also as the pipes' hang-up just before; and when the task
// left nothing behind, the pipes are empty and none of its processes
// holds them, so they can serve the next task (see runner for the limit).
type pipes struct{ r, w [2]int }

func newPipes() (*pipes, error) {
	p := &pipes{r: [2]int{-1, -1}, w: [2]int{-1, -1}}
	for i := range 2 {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			p.close()
			return nil, os.NewSyscallError("pipe2", err)
		}
		p.r[i], p.w[i] = fds[0], fds[1]
		if err := unix.SetNonblock(fds[0], true); err != nil {
			p.close()
			return nil, os.NewSyscallError("fcntl", err)
		}
	}
	return p, nil
}

// release closes the write ends: the pipes end when the last process
// holding them closes them.
func (p *pipes) release() {
	for i, fd := range p.w {
		if fd >= 0 {
			unix.Close(fd)
			p.w[i] = -1
		}
	}
}

func (p *pipes) close() {
	p.release()
	for i, fd := range p.r {
		if fd >= 0 {
			unix.Close(fd)
			p.r[i] = -1
		}
	}
}

// reusable reports whether p can serve another task, and makes it ready
// to: both pipes open at both ends, and the status flags a task may have
// set on its write ends (O_NONBLOCK, O_APPEND, O_DIRECT, O_ASYNC: the
// task's descriptors share them with the shim's) cleared. (A capacity set
// with F_SETPIPE_SZ stays: it changes when writers wait, not what they
// write, and only for the same account's tasks.)
func (p *pipes) reusable() bool {
	for i := range 2 {
		if p.r[i] < 0 || p.w[i] < 0 {
			return false
		}
		if _, err := unix.FcntlInt(uintptr(p.w[i]), unix.F_SETFL, 0); err != nil {
			return false
		}
	}
	return true
}

// task is one started command: its pid, a pidfd that polls readable when
// it exits, its stdin (the shim's write end, -1 once closed) and its
// stdout and stderr.
type task struct {
	pid, pidfd int
	stdin      int
	out        *pipes
	input      []byte // what is still to be written to stdin
	exited     bool
	status     unix.WaitStatus
	deadline   time.Time // for the pipes, once the process exited
	// ended is set when the process exited leaving no other process
	// behind: out was then read to its end and can serve again.
	ended bool
}

// devNull is /dev/null, opened once, the stdin of tasks without input.
var devNull = sync.OnceValues(func() (int, error) {
	return unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
})

// noPidfd is set once a command started only without CLONE_PIDFD (before
// Linux 5.2 the flag is ignored instead, and the pidfd stays -1); collect
// then looks for the process's exit every pollExit while its pipes are
// open.
var noPidfd atomic.Bool

// pollExit is how often collect looks for the process's exit when the
// kernel gives no pidfd.
const pollExit = 10 * time.Millisecond

// start fork/execs path with its stdin fed from input (/dev/null when
// empty) and its stdout and stderr on out, or on new pipes if out is
// nil. It starts neither goroutines nor threads: collect drives the pipes
// from the calling one. The task owns out from then on, even on error.
func start(path string, argv, env []string, dir string, input []byte, out *pipes) (*task, error) {
	t := &task{pid: -1, pidfd: -1, stdin: -1, out: out, input: input}
	if t.out == nil {
		var err error
		if t.out, err = newPipes(); err != nil {
			return nil, err
		}
	}
	stdin := -1 // the child's end
	if len(input) == 0 {
		null, err := devNull()
		if err != nil {
			t.close()
			return nil, &os.PathError{Op: "open", Path: "/dev/null", Err: err}
		}
		stdin = null
	} else {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.close()
			return nil, os.NewSyscallError("pipe2", err)
		}
		defer unix.Close(p[0])
		stdin, t.stdin = p[0], p[1]
		// Only the shim's end is non-blocking: the child's must block.
		if err := unix.SetNonblock(p[1], true); err != nil {
			t.close()
			return nil, os.NewSyscallError("fcntl", err)
		}
	}
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{uintptr(stdin), uintptr(t.out.w[0]), uintptr(t.out.w[1])},
		Sys:   &syscall.SysProcAttr{},
	}
	if !noPidfd.Load() {
		attr.Sys.PidFD = &t.pidfd
	}
	pid, _, err := syscall.StartProcess(path, argv, attr)
	if err != nil && attr.Sys.PidFD != nil {
		// The kernel (or a seccomp filter) may refuse CLONE_PIDFD:
		// if the command starts without, do without from now on.
		attr.Sys.PidFD = nil
		if pid, _, err = syscall.StartProcess(path, argv, attr); err == nil {
			noPidfd.Store(true)
		}
	}
	if err != nil {
		t.close()
		if dir != "" {
			// The child reports only an errno: say which step it was,
			// as os.StartProcess does.
			if _, serr := os.Stat(dir); serr != nil {
				pe := serr.(*os.PathError)
				pe.Op = "chdir"
				return nil, pe
			}
		}
		return nil, &os.PathError{Op: "fork/exec", Path: path, Err: err}
	}
	t.pid = pid
	if t.pidfd < 0 {
		t.out.release() // without a pidfd, the pipes' hang-up is the first sign of the exit
	}
	return t, nil
}

// collect feeds the task's stdin, reads its stdout into out and its stderr
// into errTail, and reaps it. It returns once the process has exited and
// its pipes are done, or waitDelay after it exited if processes it left
// behind still hold them. The shim being the subreaper of all the task's
// processes (see runner), a task that left no process behind ends at its
// exit, with its pipes left open for another task (ended). The caller
// closes the task.
func (t *task) collect(buf []byte, out, errTail io.Writer) (unix.WaitStatus, error) {
	since := time.Now()
	var fds [4]unix.PollFd
	for {
		if t.exited && t.stdin < 0 && t.out.r[0] < 0 && t.out.r[1] < 0 {
			return t.status, nil
		}
		timeout := time.Duration(-1)
		switch {
		case t.exited:
			if timeout = time.Until(t.deadline); timeout <= 0 {
				return t.status, nil
			}
		case t.pidfd < 0 && t.stdin < 0 && t.out.r[0] < 0 && t.out.r[1] < 0:
			if err := t.reap(0); err != nil {
				return t.status, err
			}
			continue
		case t.pidfd < 0:
			timeout = pollExit
		}
		n := 0
		add := func(fd int, ev int16) {
			if fd >= 0 {
				fds[n] = unix.PollFd{Fd: int32(fd), Events: ev}
				n++
			}
		}
		add(t.out.r[0], unix.POLLIN)
		add(t.out.r[1], unix.POLLIN)
		add(t.stdin, unix.POLLOUT)
		if !t.exited {
			add(t.pidfd, unix.POLLIN)
		}
		if _, err := poll(fds[:n], timeout, since); err != nil && !errors.Is(err, unix.EINTR) {
			t.kill()
			return t.status, os.NewSyscallError("ppoll", err)
		}
		for _, p := range fds[:n] {
			if p.Revents == 0 {
				continue
			}
			switch int(p.Fd) {
			case t.out.r[0]:
				t.out.r[0] = drain(t.out.r[0], buf, out)
			case t.out.r[1]:
				t.out.r[1] = drain(t.out.r[1], buf, errTail)
			case t.stdin:
				t.feed()
			case t.pidfd:
				if err := t.reap(unix.WNOHANG); err != nil {
					return t.status, err
				}
				if !t.exited {
					break
				}
				// When no process it started is left (they have all closed
				// their ends), what the pipes hold is all there is.
				// Otherwise they end when the last of them closes its ends.
				t.ended = !reapOrphans()
				if !t.ended {
					t.out.release()
				}
				t.out.r[0] = drain(t.out.r[0], buf, out)
				t.out.r[1] = drain(t.out.r[1], buf, errTail)
				if t.ended {
					return t.status, nil
				}
			}
		}
		if !t.exited && t.pidfd < 0 {
			if err := t.reap(unix.WNOHANG); err != nil {
				return t.status, err
			}
		}
	}
}

// drain reads what fd holds into w. It returns fd, or -1 once it has
// closed fd at its end (or when fd is -1).
func drain(fd int, buf []byte, w io.Writer) int {
	for fd >= 0 {
		n, err := unix.Read(fd, buf)
		switch {
		case n > 0:
			w.Write(buf[:n])
			if n < len(buf) {
				return fd
			}
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			return fd
		default: // end of file, or an error: nothing more will come
			unix.Close(fd)
			return -1
		}
	}
	return fd
}

// feed writes what it can of the task's input to its stdin, and closes
// stdin once all is written or the task no longer reads it.
func (t *task) feed() {
	for len(t.input) > 0 {
		n, err := unix.Write(t.stdin, t.input)
		if n > 0 {
			t.input = t.input[n:]
			continue
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return
		}
		break // EPIPE: nobody reads it any more
	}
	unix.Close(t.stdin)
	t.stdin, t.input = -1, nil
}

// reap waits for the task's process with options (0 or WNOHANG) and, once
// it has exited, records its status and starts the pipes' deadline.
func (t *task) reap(options int) error {
	for {
		pid, err := unix.Wait4(t.pid, &t.status, options, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return os.NewSyscallError("wait4", err)
		case pid == t.pid:
			t.exited = true
			t.deadline = time.Now().Add(waitDelay)
			if t.pidfd >= 0 {
				unix.Close(t.pidfd)
				t.pidfd = -1
			}
		}
		return nil
	}
}

// kill kills and reaps the task's process, after a failure of the shim.
func (t *task) kill() {
	if !t.exited && t.pid > 0 {
		unix.Kill(t.pid, unix.SIGKILL)
		t.reap(0)
	}
}

// close closes the shim's descriptors of the task, and returns its pipes
// when they can serve another task.
func (t *task) close() *pipes {
	for _, fd := range []*int{&t.stdin, &t.pidfd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	out := t.out
	t.out = nil
	if out != nil && t.ended && out.reusable() {
		return out
	}
	if out != nil {
		out.close()
	}
	return nil
}
