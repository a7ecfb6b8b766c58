package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/daemon/store"
	"fxd.dev/fxd/isolation"
)

// caller is an authenticated request's identity and account.
type caller struct {
	identity string
	acct     isolation.Account
	// peer is the site that forwarded the call ("" for callers of this
	// site's endpoint); identity is then "user@peer".
	peer string
}

// resolveFunction finds the function a caller names: "name" for its own,
// "owner/name" for its own or one shared with it. Others' unshared
// functions are not found, so their existence does not leak.
func (d *Daemon) resolveFunction(c caller, ref string) (api.Function, error) {
	owner, name := c.acct.Name, ref
	if i := strings.IndexByte(ref, '/'); i >= 0 {
		owner, name = ref[:i], ref[i+1:]
	}
	f, err := d.store.GetFunction(owner, name)
	if err == nil && (owner == c.acct.Name || sharedWith(f, c.acct.Name) || f.Federated && c.peer != "") {
		return f, nil
	}
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return api.Function{}, err
	}
	return api.Function{}, &noFunctionError{ref}
}

// noFunctionError is a function the caller may not run here, or that
// does not exist; it is api.ErrNotFound either way.
type noFunctionError struct{ ref string }

func (e *noFunctionError) Error() string {
	return fmt.Sprintf("function %q: %v; fx functions lists the ones you can run", e.ref, api.ErrNotFound)
}

func (e *noFunctionError) Unwrap() error { return api.ErrNotFound }

func sharedWith(f api.Function, account string) bool {
	for _, a := range f.SharedWith {
		if a == account {
			return true
		}
	}
	return false
}

// newJob checks one task spec and makes its job, not yet stored.
func (d *Daemon) newJob(ctx context.Context, c caller, spec api.TaskSpec, now time.Time) (*job, error) {
	if err := d.checkInput(spec); err != nil {
		return nil, err
	}
	input := spec.InputBytes()
	fn, err := d.resolveFunction(c, spec.Function)
	if err != nil {
		return nil, err
	}
	if err := d.checkTaskData(ctx, c, spec.Data); err != nil {
		return nil, err
	}
	timeout := spec.Timeout
	if timeout == 0 {
		timeout = fn.Limits.Timeout
	}
	if timeout == 0 {
		timeout = api.Duration(d.cfg.Limits.DefaultTimeout)
	}
	if max := d.cfg.Limits.MaxTimeout.D(); time.Duration(timeout) > max {
		return nil, fmt.Errorf("timeout %s exceeds limits.max_timeout (%s): %w", time.Duration(timeout), max, api.ErrInvalid)
	}
	j := &job{
		task: api.Task{
			ID: newTaskID(now), Function: fn.Ref(), FunctionVersion: fn.Version, Owner: c.acct.Name,
			State: api.StateQueued, Timeout: timeout, ReceivedAt: now, Data: spec.Data,
		},
		fn: fn, acct: c.acct, timeout: time.Duration(timeout), done: make(chan struct{}),
	}
	if spec.Timeout != 0 || fn.Limits.Timeout != 0 {
		j.declared = j.timeout
	}
	if longest, ok := d.longestBlock(); ok && j.declared > longest {
		return nil, fmt.Errorf("timeout %s is longer than any block of this site's pools runs (%s), so no node could finish it; give a shorter timeout: %w",
			j.timeout, longest, api.ErrInvalid)
	}
	if len(input) <= inlineInputMax {
		j.input = input
		if j.input == nil {
			j.input = []byte{}
		}
	}
	return j, nil
}

// checkInput checks a task spec's input, wherever the task runs.
func (d *Daemon) checkInput(spec api.TaskSpec) error {
	if len(spec.Input) > 0 && len(spec.InputBase64) > 0 {
		return fmt.Errorf("give input or input_base64, not both: %w", api.ErrInvalid)
	}
	if n, max := len(spec.InputBytes()), int64(d.cfg.Limits.MaxInputBytes); int64(n) > max {
		return fmt.Errorf("input of %d bytes exceeds limits.max_input_bytes (%d); stage large data in a file and pass its path: %w", n, max, api.ErrTooLarge)
	}
	return nil
}

// submit stores the tasks durably in one commit, then queues them.
func (d *Daemon) submit(ctx context.Context, c caller, specs []api.TaskSpec) ([]string, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("no tasks given; send {\"tasks\": [{\"function\": \"name\", \"input\": …}]}: %w", api.ErrInvalid)
	}
	if max := d.cfg.Limits.MaxBatch; len(specs) > max {
		return nil, fmt.Errorf("%d tasks in one request exceed limits.max_batch (%d); split the batch: %w", len(specs), max, api.ErrTooLarge)
	}
	now := time.Now()
	var jobs []*job
	var fwds []*fwdTask
	recs := make([]store.Record, len(specs))
	ids := make([]string, len(specs))
	for i, s := range specs {
		t, err := d.newTask(ctx, c, s, now)
		if err != nil {
			if len(specs) > 1 {
				return nil, fmt.Errorf("tasks[%d]: %w", i, err)
			}
			return nil, err
		}
		if t.job != nil {
			jobs = append(jobs, t.job)
		} else {
			fwds = append(fwds, t.fwd)
		}
		ids[i] = t.task().ID
		recs[i] = store.Record{Task: t.task(), Identity: c.identity, Input: s.InputBytes()}
	}
	// Tasks that run here count against the queue here, forwarded ones
	// apart.
	if len(jobs) > 0 {
		if err := d.disp.admit(c.acct.Name, len(jobs)); err != nil {
			return nil, err
		}
	}
	if len(fwds) > 0 {
		if err := d.fed.admit(c.acct.Name, len(fwds)); err != nil {
			return nil, err
		}
	}
	if err := d.store.CreateTasks(ctx, recs); err != nil {
		return nil, fmt.Errorf("store tasks: %w", err)
	}
	d.disp.enqueue(jobs...)
	if len(fwds) > 0 {
		d.fed.enqueue(fwds...)
	}
	return ids, nil
}

// newTask is a task to run here (job) or at a peer site (fwd).
type newTask struct {
	job *job
	fwd *fwdTask
}

func (t newTask) task() api.Task {
	if t.job != nil {
		return t.job.task
	}
	return t.fwd.task
}

// newTask checks one task spec and makes its job, or its forward when it
// names a peer site.
func (d *Daemon) newTask(ctx context.Context, c caller, spec api.TaskSpec, now time.Time) (newTask, error) {
	site := spec.Site
	if site == "" || site == d.cfg.Site.Name {
		j, err := d.newJob(ctx, c, spec, now)
		if err == nil || spec.Site != "" {
			return newTask{job: j}, err
		}
		if site = d.offeredElsewhere(spec, err); site == "" {
			return newTask{}, err
		}
	} else {
		var err error
		if site, err = d.fed.route(spec); err != nil {
			return newTask{}, err
		}
	}
	ft, err := d.fed.newForward(c, spec, site, now)
	return newTask{fwd: ft}, err
}

// runSync runs one task on the low-latency path: dispatched before it is
// durable, answered as soon as it ends, stored just after.
func (d *Daemon) runSync(ctx context.Context, c caller, spec api.TaskSpec) (api.Task, error) {
	if spec.Site != "" && spec.Site != d.cfg.Site.Name {
		return d.runForwarded(ctx, c, spec)
	}
	if err := d.disp.admit(c.acct.Name, 1); err != nil {
		return api.Task{}, err
	}
	j, err := d.newJob(ctx, c, spec, time.Now())
	if err != nil && spec.Site == "" {
		if site := d.offeredElsewhere(spec, err); site != "" {
			spec.Site = site
			return d.runForwarded(ctx, c, spec)
		}
	}
	if err != nil {
		return api.Task{}, err
	}
	return d.runJob(ctx, j, spec.InputBytes()), nil
}

// runJob runs j on the synchronous path: dispatched before it is durable,
// answered when it ends, stored just after; cancelled if ctx ends first.
func (d *Daemon) runJob(ctx context.Context, j *job, input []byte) api.Task {
	j.sync = true
	j.input = input
	j.task.State = api.StateReceived
	d.disp.enqueue(j)
	select {
	case <-j.done:
	case <-ctx.Done():
		d.disp.cancel(j.task.ID)
		<-j.done
	}
	return d.disp.snapshot(j)
}

// offeredElsewhere returns the peer a task that names no site goes to,
// refused here with err because it names a function ("owner/name") the
// caller cannot run here, when a peer offers it; "" when none does.
// Whether the function exists here unshared does not matter, so that
// nothing tells.
func (d *Daemon) offeredElsewhere(spec api.TaskSpec, err error) string {
	var nf *noFunctionError
	if d.fed == nil || !errors.As(err, &nf) || !strings.Contains(spec.Function, "/") {
		return ""
	}
	spec.Site = api.SiteAny
	site, rerr := d.fed.route(spec)
	if rerr != nil {
		return ""
	}
	return site
}

// runForwarded runs one task at a peer site on the synchronous path: the
// peer runs it as its own synchronous run and answers with its end, and
// only then is it stored here, as a synchronous run here is. A peer that
// cannot be reached is an error (unavailable) and nothing is stored.
func (d *Daemon) runForwarded(ctx context.Context, c caller, spec api.TaskSpec) (api.Task, error) {
	site, err := d.fed.route(spec)
	if err != nil {
		return api.Task{}, err
	}
	ft, err := d.fed.newForward(c, spec, site, time.Now())
	if err != nil {
		return api.Task{}, err
	}
	if err := d.fed.admit(c.acct.Name, 1); err != nil {
		return api.Task{}, err
	}
	return d.fed.runRemote(ctx, c, ft, spec.InputBytes())
}

// getTask returns a task the caller owns; others' tasks are not found.
func (d *Daemon) getTask(c caller, id string) (api.Task, error) {
	t, _, ok := d.disp.lookup(id)
	if !ok {
		t, _, ok = d.fed.lookup(id)
	}
	if !ok {
		var err error
		if t, err = d.store.GetTask(id); err != nil {
			return api.Task{}, notFoundTask(id, err)
		}
	}
	if t.Owner != c.acct.Name {
		return api.Task{}, notFoundTask(id, api.ErrNotFound)
	}
	return t, nil
}

func notFoundTask(id string, err error) error {
	if errors.Is(err, api.ErrNotFound) {
		return fmt.Errorf("task %s: %w; check the id, or it may have expired after limits.result_retention", id, api.ErrNotFound)
	}
	return fmt.Errorf("get task %s: %w", id, err)
}

// waitTasks returns the caller's tasks, waiting up to wait for all of
// them to be final.
func (d *Daemon) waitTasks(ctx context.Context, c caller, ids []string, wait time.Duration) ([]api.Task, error) {
	if max := d.cfg.Limits.MaxWait.D(); wait > max {
		wait = max
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	out := make([]api.Task, len(ids))
	for i, id := range ids {
		t, err := d.getTask(c, id)
		if err != nil {
			return nil, err
		}
		if !t.State.Final() && wait > 0 {
			if _, j, ok := d.disp.lookup(id); ok {
				select {
				case <-j.done:
					t = d.disp.snapshot(j)
				case <-timer.C:
					wait = 0
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			} else if _, ft, ok := d.fed.lookup(id); ok {
				select {
				case <-ft.done:
					if t, err = d.getTask(c, id); err != nil {
						return nil, err
					}
				case <-timer.C:
					wait = 0
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
		}
		out[i] = t
	}
	return out, nil
}

// cancelTask cancels the caller's task; a final task is a conflict.
func (d *Daemon) cancelTask(c caller, id string) (api.Task, error) {
	t, err := d.getTask(c, id)
	if err != nil {
		return api.Task{}, err
	}
	if !t.State.Final() && t.Site != "" {
		return d.cancelForwarded(c, id)
	}
	if !t.State.Final() {
		j, ok := d.disp.cancel(id)
		if ok {
			<-j.done
			return d.getTask(c, id)
		}
		// It ended between the look and the cancel.
		if t, err = d.getTask(c, id); err != nil {
			return api.Task{}, err
		}
	}
	return t, fmt.Errorf("task %s already ended (%s): %w", id, t.State, api.ErrConflict)
}

// longestBlock is the longest walltime of the pools' blocks, when tasks
// run only on them ([batch] daemon_node_tasks off); ok is false when the
// daemon's own node takes tasks too.
func (d *Daemon) longestBlock() (longest time.Duration, ok bool) {
	b := d.cfg.Batch
	if b.DaemonNodeTasks || len(b.Pool) == 0 {
		return 0, false
	}
	for _, p := range b.Pool {
		longest = max(longest, p.Walltime.D())
	}
	return longest, true
}

// forwardedCancelWait is how long a cancel of a forwarded task waits for
// the peer to report it ended.
const forwardedCancelWait = 10 * time.Second

// cancelForwarded cancels the caller's forwarded task and waits a while
// for its peer to report it ended; it may then still be running there,
// and the peer ends it once it hears of the cancel.
func (d *Daemon) cancelForwarded(c caller, id string) (api.Task, error) {
	d.fed.cancel(id)
	if _, ft, ok := d.fed.lookup(id); ok {
		select {
		case <-ft.done:
		case <-time.After(forwardedCancelWait):
		}
	}
	return d.getTask(c, id)
}
