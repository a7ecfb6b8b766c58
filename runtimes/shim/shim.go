package shim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/runtimes/wire"
)

// MaxInput is the largest task input the shim accepts in one Run frame.
const MaxInput = 1 << 30

// StderrTail is how many bytes at the end of a task's stderr are kept.
const StderrTail = 4 << 10

// waitDelay bounds how long the shim waits, after a task's process exits,
// for processes it left behind to close its stdout and stderr.
const waitDelay = 200 * time.Millisecond

// InitCommand is the first argument that makes fxd-shim run Init:
// "fxd-shim init -- COMMAND [ARG...]".
const InitCommand = "init"

// Serve runs the tasks of the Run frames read from r, one at a time, and
// writes a Result frame for each to w. It returns nil when r ends cleanly
// and an error when a frame is malformed or w fails. It makes the process
// a child subreaper, so that what a task leaves behind stays its
// descendant and is reported (Result.LeftBehind), and the pipes of a task
// that left nothing behind serve the next one. Serve must own the process,
// as fxd-shim's main does, which also gives it its input (see Input) and
// runs it on one P.
func Serve(r io.Reader, w io.Writer) error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become subreaper: %w", err)
	}
	x := &runner{}
	defer x.close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		run, input, err := wire.ReadRun(br, MaxInput)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read task: %w", err)
		}
		res, out := x.exec(run, input)
		if err := wire.WriteResult(w, res, out); err != nil {
			return fmt.Errorf("answer task: %w", err)
		}
		// Let sysmon see this goroutine make progress, so that it does
		// not preempt it (see rawWait). With one P this is cheap: there
		// is no other thread to wake and the goroutine runs on at once.
		runtime.Gosched()
	}
}

// runner runs tasks one at a time, in a process that is the subreaper of
// every process its tasks start (Serve makes it one), so that when a task
// has exited leaving none behind, none of its descendants holds its pipes:
// runner then keeps them for the next task. Otherwise it sets
// Result.LeftBehind.
// (A process of the same account outside the worker could still open them
// through /proc/<pid>/fd and write into that account's later outputs;
// nothing crosses to another account.)
type runner struct {
	spare *pipes // pipes kept from the last task
	buf   []byte // what collect reads pipes into
}

func (x *runner) exec(run wire.Run, input []byte) (wire.Result, []byte) {
	if len(run.Argv) == 0 || run.Argv[0] == "" {
		return x.failed("empty command; give the function a command"), nil
	}
	path, err := lookPath(run.Argv[0], run.Env)
	if err != nil {
		return x.failed(err.Error()), nil
	}
	t, err := start(path, run.Argv, run.Env, run.Dir, input, x.spare)
	x.spare = nil // the task owns them now
	if err != nil {
		return x.failed(err.Error()), nil
	}
	stdout := &capped{max: run.MaxOutput}
	stderr := &tail{}
	if x.buf == nil {
		x.buf = make([]byte, 32<<10)
	}
	ws, err := t.collect(x.buf, stdout, stderr)
	ended := t.ended
	x.spare = t.close()
	res := wire.Result{
		Stderr:          stderr.String(),
		OutputBytes:     stdout.n,
		OutputTruncated: stdout.n > int64(len(stdout.b)),
		// A task that ended found no process left; else look again:
		// those it left may have exited meanwhile.
		LeftBehind: !ended && reapOrphans(),
	}
	if err != nil {
		res.ExitCode, res.Error = -1, err.Error()
		return res, nil
	}
	res.ExitCode = ws.ExitStatus()
	if ws.Signaled() {
		res.Signal = ws.Signal().String()
	}
	return res, stdout.b
}

// failed is the result of a task that could not start.
func (x *runner) failed(msg string) wire.Result {
	return wire.Result{ExitCode: -1, Error: msg, LeftBehind: reapOrphans()}
}

// close closes the pipes it kept.
func (x *runner) close() {
	if x.spare != nil {
		x.spare.close()
		x.spare = nil
	}
}

// reapOrphans reaps the task's descendants that have exited since it did
// and reports whether any still run.
func reapOrphans() bool {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
		case err != nil: // ECHILD: no children at all
			return false
		case pid == 0: // children, none exited
			return true
		}
	}
}

// lookPath finds file on the PATH of env (not the shim's own), as a shell
// would.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	pathEnv := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q: no such file on PATH %s; use an absolute path or fix PATH in the function's env", file, pathEnv)
}

// capped keeps the first max bytes written and counts all of them.
type capped struct {
	b   []byte
	max int64
	n   int64
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - int64(len(c.b)); room > 0 {
		c.b = append(c.b, p[:min(int64(len(p)), room)]...)
	}
	c.n += int64(len(p))
	return len(p), nil
}

// tail keeps the last StderrTail bytes written.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	if len(p) >= StderrTail {
		t.b = append(t.b[:0], p[len(p)-StderrTail:]...)
		return len(p), nil
	}
	if over := len(t.b) + len(p) - StderrTail; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	t.b = append(t.b, p...)
	return len(p), nil
}

func (t *tail) String() string { return strings.ToValidUTF8(string(t.b), "\uFFFD") }
