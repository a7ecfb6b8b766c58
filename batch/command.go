package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// CommandError is a scheduler command that failed: the command, how it
// ended and the start of what it said on stderr, which providers inspect
// ("Invalid job id specified") and people read in the log.
type CommandError struct {
	Command string // "squeue --jobs=12,13 ..."
	Err     error  // *exec.ExitError, exec.ErrNotFound, context.DeadlineExceeded, ...
	Stderr  string // trimmed, at most 2 KiB
}

func (e *CommandError) Error() string {
	msg := e.Command + ": " + e.Err.Error()
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// ExitCode is the command's exit status, or -1 when it did not exit.
func (e *CommandError) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// maxStderr bounds the stderr a CommandError keeps.
const maxStderr = 2 << 10

// Run runs the scheduler command name with args, no shell between, stdin
// on its standard input, and returns its standard output. It ends with
// ctx. A command that fails, or cannot start, comes back as a
// *CommandError.
func Run(ctx context.Context, stdin string, name string, args ...string) ([]byte, error) {
	out, _, err := RunStderr(ctx, stdin, name, args...)
	return out, err
}

// RunStderr is Run that returns the command's stderr too, for commands
// that answer there (sbatch --test-only).
func RunStderr(ctx context.Context, stdin string, name string, args ...string) (stdout, stderr []byte, err error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second // a child holding the pipes cannot hold us
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return out.Bytes(), errb.Bytes(), &CommandError{Command: commandLine(name, args), Err: err, Stderr: trimStderr(errb.Bytes())}
	}
	return out.Bytes(), errb.Bytes(), nil
}

// commandLine is name and args for a message, long ones shortened.
func commandLine(name string, args []string) string {
	return Clip(strings.Join(append([]string{name}, args...), " "), 200)
}

// trimStderr is b without surrounding space, at most maxStderr bytes, as
// valid UTF-8.
func trimStderr(b []byte) string {
	return Clip(string(bytes.TrimSpace(b)), maxStderr)
}
