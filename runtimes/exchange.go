package runtimes

import (
	"context"
	"fmt"
	"time"

	"fxd.dev/fxd/api"
)

// exchange runs talk (one request and its answer on w) and returns its
// error, or kills w's whole tree and returns an outcome when the task
// times out or ctx is done first. The worker is then to be discarded.
func (p *Pools) exchange(ctx context.Context, w *worker, j Job, talk func() error) (error, *outcome) {
	done := make(chan error, 1)
	go func() { done <- talk() }()
	var timeout <-chan time.Time
	if j.Timeout > 0 {
		t := time.NewTimer(j.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case err := <-done:
		return err, nil
	case <-timeout:
		w.kill()
		<-done
		return nil, &outcome{res: Result{State: api.StateTimedOut, ExitCode: -1,
			Error: fmt.Sprintf("timed out after %v; its processes were killed. Raise the task's timeout or the function's limits.timeout", j.Timeout)}}
	case <-ctx.Done():
		w.kill()
		<-done
		msg := "cancelled"
		if c := context.Cause(ctx); c != nil && c != context.Canceled {
			msg = "cancelled: " + c.Error()
		}
		return nil, &outcome{res: Result{State: api.StateCancelled, ExitCode: -1, Error: msg}}
	}
}

// oomReason explains a task killed for memory.
func oomReason(j Job) string {
	if m := j.Limits.Memory; m != nil && m.Limit != nil && *m.Limit > 0 {
		return fmt.Sprintf("out of memory: the worker's memory limit (%s) was exceeded; raise limits.memory_bytes (within the account's quota) or use less memory", bytesText(*m.Limit))
	}
	return "out of memory: the worker's memory limit was exceeded; raise limits.memory_bytes (within the account's quota) or use less memory"
}

// oomGrew reports whether w's tree lost processes to the OOM killer since
// before.
func oomGrew(w *worker, before int) bool {
	n, err := w.proc.OOMKills()
	return err == nil && n > before
}

// exitText describes how a process ended: "exit status 3" or "killed by
// signal killed".
func exitText(code int, signal string) string {
	if signal != "" {
		return "killed by signal " + signal
	}
	return fmt.Sprintf("exit status %d", code)
}

// tooLarge explains an output over the limit.
func tooLarge(size, max int64) string {
	return fmt.Sprintf("output of %s exceeds limits.max_result_bytes (%s); write large results to shared storage and return their path", bytesText(size), bytesText(max))
}
