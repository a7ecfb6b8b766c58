package shim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// Serve runs the tasks of the Run frames read from r, one at a time, and
// writes a Result frame for each to w. It returns nil when r ends cleanly
// and an error when a frame is malformed or w fails. It makes the process
// a child subreaper, so that what a task leaves behind stays its
// descendant and is reported (Result.LeftBehind): Serve must own the
// process, as fxd-shim's main does.
func Serve(r io.Reader, w io.Writer) error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become subreaper: %w", err)
	}
	for {
		run, input, err := wire.ReadRun(r, MaxInput)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read task: %w", err)
		}
		res, out := Exec(run, input)
		res.LeftBehind = reapOrphans()
		if err := wire.WriteResult(w, res, out); err != nil {
			return fmt.Errorf("answer task: %w", err)
		}
	}
}

// Exec runs one task and reports how it ended with the stdout it kept.
func Exec(run wire.Run, input []byte) (wire.Result, []byte) {
	if len(run.Argv) == 0 || run.Argv[0] == "" {
		return wire.Result{ExitCode: -1, Error: "empty command; give the function a command"}, nil
	}
	path, err := lookPath(run.Argv[0], run.Env)
	if err != nil {
		return wire.Result{ExitCode: -1, Error: err.Error()}, nil
	}
	stdout := &capped{max: run.MaxOutput}
	stderr := &tail{}
	cmd := &exec.Cmd{
		Path:      path,
		Args:      run.Argv,
		Env:       run.Env,
		Dir:       run.Dir,
		Stdin:     bytes.NewReader(input),
		Stdout:    stdout,
		Stderr:    stderr,
		WaitDelay: waitDelay,
	}
	if len(input) == 0 {
		cmd.Stdin = nil // /dev/null: no pipe to feed
	}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	err = cmd.Run()
	res := wire.Result{
		Stderr:          stderr.String(),
		OutputBytes:     stdout.n,
		OutputTruncated: stdout.n > int64(len(stdout.b)),
	}
	if cmd.ProcessState == nil {
		res.ExitCode, res.Error = -1, err.Error()
		return res, nil
	}
	res.ExitCode = cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Signal = ws.Signal().String()
	}
	return res, stdout.b
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
