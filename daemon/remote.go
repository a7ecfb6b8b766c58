package daemon

import (
	"context"
	"errors"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/runtimes"
)

// cancelWait is how long a cancelled task waits for its node to say it
// stopped before its slot is given up.
const cancelWait = 10 * time.Second

// runRemote runs j on node n, whose slot the caller took. lost says the
// node went away without a result: the task runs again elsewhere.
func (d *dispatcher) runRemote(ctx context.Context, n *node, j *job, input []byte, quota conf.Quota) (runtimes.Result, bool) {
	r := d.nodes.send(n, api.NodeTask{
		ID: j.task.ID, Attempt: j.task.Attempts, Function: j.fn, Account: j.acct.Name, UID: j.acct.UID,
		Limits: limitsFor(j.fn.Limits, quota), Input: input, Timeout: j.timeout, MaxOutput: int64(d.limits.MaxResultBytes),
	})
	select {
	case res := <-r.done:
		return resultOf(res), false
	case <-r.lost:
		return runtimes.Result{}, true
	case <-ctx.Done():
	}
	d.nodes.cancel(n, j.task.ID)
	t := time.NewTimer(cancelWait)
	defer t.Stop()
	select {
	case res := <-r.done:
		return resultOf(res), false
	case <-r.lost:
	case <-t.C:
		d.nodes.release(n, j.task.ID)
	}
	return runtimes.Result{State: api.StateCancelled, ExitCode: -1, Error: "cancelled; its node did not confirm the stop"}, false
}

// place picks where j runs: a slot on a linked node (n), or the daemon's
// own node (n nil), or, when [batch] daemon_node_tasks is false, it
// waits for a node slot (counted in the demand that makes the pools add
// blocks) with j still queued. placed is false when ctx ended the wait.
func (d *dispatcher) place(ctx context.Context, j *job) (n *node, placed bool) {
	if d.nodes == nil || j.sync {
		return nil, true
	}
	if n := d.nodes.take(j.fn.Runtime, j.declared); n != nil || d.daemonNodeTasks {
		return n, true
	}
	d.mu.Lock()
	j.placing = true
	d.mu.Unlock()
	d.nodes.addWaiting(1)
	defer func() {
		d.nodes.addWaiting(-1)
		d.mu.Lock()
		j.placing = false
		d.mu.Unlock()
	}()
	for ctx.Err() == nil {
		freed := d.nodes.freed()
		if n := d.nodes.take(j.fn.Runtime, j.declared); n != nil {
			return n, true
		}
		select {
		case <-freed:
		case <-ctx.Done():
		}
	}
	return nil, false
}

// unplace ends a run whose wait for a node was cut: a drain leaves the
// task queued, for the restart; a cancel ends it.
func (d *dispatcher) unplace(ctx context.Context, j *job) {
	d.mu.Lock()
	d.releaseLocked(j)
	d.mu.Unlock()
	if errors.Is(context.Cause(ctx), errDraining) {
		return
	}
	d.finish(j, runtimes.Result{State: api.StateCancelled, ExitCode: -1, Error: "cancelled before it started (it waited for a node)"}, nil)
}

// resultOf is a node's result as the pools give one.
func resultOf(r api.NodeResult) runtimes.Result {
	return runtimes.Result{State: r.State, ExitCode: r.ExitCode, Output: r.Output, Stderr: r.Stderr, Error: r.Error,
		Cold: r.Cold, Worker: r.Worker, StartedAt: r.StartedAt}
}
