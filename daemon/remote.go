package daemon

import (
	"context"
	"errors"
	"fmt"
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
		Image: j.image,
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

// errUnplaced is place's error when ctx ended its wait for a node.
var errUnplaced = errors.New("not placed")

// place picks where j runs: a slot on a linked node (n), or the daemon's
// own node (n nil), or, when [batch] daemon_node_tasks is false, it
// waits for a node slot (counted in the demand that makes the pools add
// blocks) with j still queued: then it returns errUnplaced if ctx ended
// the wait, and any other error when no node could ever run j.
// Synchronous runs stay on the daemon's node when it runs tasks: theirs
// is the low-latency path.
func (d *dispatcher) place(ctx context.Context, j *job) (*node, error) {
	if d.nodes == nil || j.sync && d.daemonNodeTasks {
		return nil, nil
	}
	if len(j.task.Data) > 0 {
		// The data cache is the daemon's node's: nodes do not stage yet.
		if d.daemonNodeTasks {
			return nil, nil
		}
		return nil, fmt.Errorf("tasks that name data run on the daemon's node only, and this site keeps tasks off it ([batch] daemon_node_tasks = false); run it without --data: %w", api.ErrUnavailable)
	}
	nd, err := d.needOf(j)
	if err != nil {
		if d.daemonNodeTasks {
			return nil, nil // the daemon's node says the same, as it fails j
		}
		return nil, err
	}
	if n := d.nodes.take(nd); n != nil || d.daemonNodeTasks {
		return n, nil
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
		if n := d.nodes.take(nd); n != nil {
			return n, nil
		}
		select {
		case <-freed:
		case <-ctx.Done():
		}
	}
	return nil, errUnplaced
}

// needOf says what j asks of a node, and resolves its function's image
// (as the function's owner sees the repository) into j.image.
func (d *dispatcher) needOf(j *job) (need, error) {
	nd := need{kind: api.RuntimeKindHost, timeout: j.declared}
	j.image = nil
	if j.fn.Runtime == "" || j.fn.Runtime == api.RuntimeHost {
		return nd, nil
	}
	if d.images == nil {
		return nd, fmt.Errorf("runtime %q: this site runs no containers; use runtime %q: %w", j.fn.Runtime, api.RuntimeHost, api.ErrUnavailable)
	}
	img, err := d.images.Get(j.fn.Runtime, j.fn.Owner)
	if err != nil {
		return nd, fmt.Errorf("runtime of %s: %w", j.fn.Ref(), err)
	}
	j.image = &api.NodeImage{Digest: img.Digest, Size: img.Size}
	nd.kind, nd.arch = api.RuntimeKindSIF, img.Arch
	return nd, nil
}

// unplace ends a run that place did not place: a drain leaves the task
// queued, for the restart (a synchronous run, in no store, fails); a
// cancel ends it; any other err fails it.
func (d *dispatcher) unplace(ctx context.Context, j *job, err error) {
	d.mu.Lock()
	d.releaseLocked(j)
	d.mu.Unlock()
	res := runtimes.Result{State: api.StateFailed, ExitCode: -1, Error: err.Error()}
	if errors.Is(err, errUnplaced) {
		if errors.Is(context.Cause(ctx), errDraining) {
			if !j.sync {
				return
			}
			res = notStarted
		} else {
			res.State, res.Error = api.StateCancelled, "cancelled before it started (it waited for a node)"
		}
	}
	d.finish(j, res, nil)
}

// resultOf is a node's result as the pools give one.
func resultOf(r api.NodeResult) runtimes.Result {
	return runtimes.Result{State: r.State, ExitCode: r.ExitCode, Output: r.Output, Stderr: r.Stderr, Error: r.Error,
		Cold: r.Cold, Worker: r.Worker, StartedAt: r.StartedAt}
}
