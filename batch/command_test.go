package batch

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	out, err := Run(t.Context(), "in", "sh", "-c", "cat; echo out")
	if err != nil || string(out) != "inout\n" {
		t.Errorf("Run(cat) = %q, %v; want in and out", out, err)
	}
	_, err = Run(t.Context(), "", "sh", "-c", "echo 'sbatch: error: Batch job submission failed' >&2; exit 1")
	var ce *CommandError
	if !errors.As(err, &ce) || ce.ExitCode() != 1 || ce.Stderr != "sbatch: error: Batch job submission failed" ||
		!strings.HasPrefix(err.Error(), "sh -c echo") || !strings.HasSuffix(err.Error(), ": exit status 1: sbatch: error: Batch job submission failed") {
		t.Errorf("Run(failing) = %v, want a CommandError with exit 1 and the stderr", err)
	}
	_, err = Run(t.Context(), "", "fxd-no-such-scheduler-command")
	if !errors.As(err, &ce) || !errors.Is(err, exec.ErrNotFound) || ce.ExitCode() != -1 {
		t.Errorf("Run(missing) = %v, want a CommandError wrapping exec.ErrNotFound", err)
	}
	_, err = Run(t.Context(), "", "sh", "-c", "head -c 10000 /dev/zero | tr '\\0' x >&2; exit 2")
	if !errors.As(err, &ce) || len(ce.Stderr) > maxStderr+len("…") {
		t.Errorf("Run(chatty) kept %d bytes of stderr, want at most %d", len(ce.Stderr), maxStderr)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := Run(ctx, "", "sleep", "10"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run(sleep) past its deadline = %v, want context.DeadlineExceeded", err)
	}
}
