package runtimes

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/units"
)

// exchange runs talk (one request and its answer on w) and returns its
// error, or kills w's whole tree and returns an outcome when the task
// times out or ctx is done first. The worker is then to be discarded.
// talk runs on the caller's goroutine; a kill ends it by killing the tree
// and closing the worker's pipes, so that talk returns even if a process
// holding them outlived the kill.
func (p *Pools) exchange(ctx context.Context, w *worker, j Job, talk func() error) (error, *outcome) {
	const (
		running int32 = iota
		timedOut
		cancelled
		answered // talk ended first
	)
	var stop atomic.Int32
	killFor := func(why int32) func() {
		return func() {
			if stop.CompareAndSwap(running, why) {
				w.proc.Kill()
				w.stdin.Close()
				w.rd.Close()
			}
		}
	}
	if j.Timeout > 0 {
		t := time.AfterFunc(j.Timeout, killFor(timedOut))
		defer t.Stop()
	}
	unwatch := context.AfterFunc(ctx, killFor(cancelled))
	err := talk()
	unwatch()
	// Claim the outcome, so a kill cannot start after talk ended.
	if stop.CompareAndSwap(running, answered) {
		return err, nil
	}
	w.kill()
	if stop.Load() == timedOut {
		return nil, &outcome{res: Result{State: api.StateTimedOut, ExitCode: -1,
			Error: fmt.Sprintf("timed out after %v; its processes were killed. Raise the task's timeout or the function's limits.timeout", j.Timeout)}}
	}
	msg := "cancelled"
	if c := context.Cause(ctx); c != nil && c != context.Canceled {
		msg = "cancelled: " + c.Error()
	}
	return nil, &outcome{res: Result{State: api.StateCancelled, ExitCode: -1, Error: msg}}
}

// oomReason explains a task killed for memory.
func oomReason(j Job) string {
	if m := j.Limits.Memory; m != nil && m.Limit != nil && *m.Limit > 0 {
		return fmt.Sprintf("out of memory: the worker's memory limit (%s) was exceeded; raise limits.memory_bytes (within the account's quota) or use less memory", units.Bytes(*m.Limit))
	}
	return "out of memory: the worker's memory limit was exceeded; raise limits.memory_bytes (within the account's quota) or use less memory"
}

// oomKilled reports whether w's tree lost processes to the OOM killer
// since the last time it was asked.
func oomKilled(w *worker) bool {
	n, err := w.proc.OOMKills()
	if err != nil || n <= w.oomSeen {
		return false
	}
	w.oomSeen = n
	return true
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
	return fmt.Sprintf("output of %s exceeds the site's result limit (%s: limits.max_result_bytes, or max_cached_result_bytes for outputs kept in the data cache); write large results to shared storage and return their path", units.Bytes(size), units.Bytes(max))
}
