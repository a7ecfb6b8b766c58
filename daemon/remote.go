package daemon

import (
	"context"
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

// resultOf is a node's result as the pools give one.
func resultOf(r api.NodeResult) runtimes.Result {
	return runtimes.Result{State: r.State, ExitCode: r.ExitCode, Output: r.Output, Stderr: r.Stderr, Error: r.Error,
		Cold: r.Cold, Worker: r.Worker, StartedAt: r.StartedAt}
}
