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

// maxUnstarted is how many attempts a task gets whose node could not
// start it (its image or data could not be fetched there).
const maxUnstarted = 3

// cancelWait is how long a cancelled task waits for its node to say it
// stopped before its slot is given up.
const cancelWait = 10 * time.Second

// runRemote runs j on node n, whose slot the caller took. lost says the
// node went away without a result: the task runs again elsewhere.
func (d *dispatcher) runRemote(ctx context.Context, n *node, j *job, input []byte, quota conf.Quota) (runtimes.Result, bool) {
	r := d.nodes.send(n, api.NodeTask{
		ID: j.task.ID, Attempt: j.task.Attempts, Function: j.fn, Account: j.acct.Name, UID: j.acct.UID,
		Limits: limitsFor(j.fn.Limits, quota), Input: input, Timeout: j.timeout, MaxOutput: d.maxOutput(),
		Image: j.image, Data: j.data, CacheQuota: int64(quota.CacheBytes),
	})
	select {
	case res := <-r.done:
		if res.Unstarted && j.task.Attempts < maxUnstarted {
			// The node could not get what the task needs (a fetch cut
			// short, a full disk): it runs again, maybe elsewhere.
			d.log.Warn().Str("task", j.task.ID).Str("node", n.name).Str("why", res.Error).Int("attempt", j.task.Attempts).Msg("task did not start on its node; running it again")
			return runtimes.Result{}, true
		}
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

// place picks where j runs: room on a linked node (n), or the daemon's
// own node (n nil), or, when [batch] daemon_node_tasks is false, it
// waits for room on a node (counted in the demand that makes the pools
// add blocks) with j still queued: then it returns errUnplaced if ctx
// ended the wait, and any other error when no node could ever run j.
// Synchronous runs stay on the daemon's node when it runs tasks: theirs
// is the low-latency path. A task that reads data goes to a node that
// holds it; failing that, to the daemon's node (whose cache staged it),
// or, when that takes no tasks, it waits up to [batch] locality_wait for
// room on a node that holds it before it goes to any node.
func (d *dispatcher) place(ctx context.Context, j *job) (*node, error) {
	if d.nodes == nil || j.sync && d.daemonNodeTasks {
		return nil, nil
	}
	nd, err := d.needOf(ctx, j)
	if ctx.Err() != nil {
		return nil, errUnplaced // cancelled, or drained, while it staged data
	}
	if err != nil {
		if d.daemonNodeTasks {
			return nil, nil // the daemon's node says the same, as it fails j
		}
		return nil, err
	}
	if d.daemonNodeTasks {
		// A node that holds the data, else the daemon's, which does.
		n, hit := d.nodes.take(nd, len(nd.data) > 0)
		d.placed(nd, n == nil || hit)
		return n, nil
	}
	return d.waitForNode(ctx, nd)
}

// waitForNode waits for room on a node for a task that needs nd: first on
// one that holds nd's data, for up to locality_wait while one is linked,
// then on any. Only the wait for any node counts as demand for blocks.
func (d *dispatcher) waitForNode(ctx context.Context, nd need) (*node, error) {
	counted := false
	defer func() {
		if counted {
			d.nodes.addWaiting(-1)
		}
	}()
	deadline := time.Now().Add(d.localityWait)
	expiry := time.NewTimer(d.localityWait)
	defer expiry.Stop()
	for ctx.Err() == nil {
		freed := d.nodes.freed()
		local := len(nd.data) > 0 && time.Now().Before(deadline) && d.nodes.held(nd)
		if n, hit := d.nodes.take(nd, local); n != nil {
			d.placed(nd, hit)
			return n, nil
		}
		var expire <-chan time.Time
		if local {
			expire = expiry.C
		} else if !counted {
			d.nodes.addWaiting(1)
			counted = true
		}
		select {
		case <-freed:
		case <-expire:
		case <-ctx.Done():
		}
	}
	return nil, errUnplaced
}

// placed counts where a task that reads data went.
func (d *dispatcher) placed(nd need, hit bool) {
	if len(nd.data) == 0 || d.metrics == nil {
		return
	}
	locality := "miss"
	if hit {
		locality = "hit"
	}
	d.metrics.placements.WithLabelValues(locality).Inc()
}

// needOf says what j asks of a node. It resolves its function's image
// (as the function's owner sees the repository) into j.image, and its
// data (staged in the daemon's cache as j's account) into j.data.
func (d *dispatcher) needOf(ctx context.Context, j *job) (need, error) {
	nd := need{kind: api.RuntimeKindHost, timeout: j.declared, queue: !d.daemonNodeTasks}
	if len(j.task.Data) > 0 {
		data, err := d.resolveData(ctx, j)
		if err != nil {
			return nd, err
		}
		for _, e := range data {
			nd.data = append(nd.data, e.Digest)
		}
	}
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
	j.placing = false
	d.releaseLocked(j)
	d.mu.Unlock()
	res := runtimes.Result{State: api.StateFailed, ExitCode: -1, Error: err.Error()}
	if errors.Is(err, errUnplaced) {
		if errors.Is(context.Cause(ctx), errDraining) {
			if !j.sync {
				j.releaseData() // it stays queued, for the next daemon
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
