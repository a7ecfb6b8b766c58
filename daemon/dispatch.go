package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/daemon/store"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/runtimes"
	"fxd.dev/fxd/runtimes/images"
)

// inlineInputMax is the largest input kept in memory while a task waits;
// larger ones are read back from the store when the task starts.
const inlineInputMax = 64 << 10

// errDraining is the cancel cause of tasks stopped by a shutdown: they go
// back to queued in the store and run again after restart.
var errDraining = errors.New("daemon shutting down")

// job is one task the daemon is responsible for until it is final and
// stored. Its task field is guarded by dispatcher.mu.
type job struct {
	task    api.Task
	fn      api.Function
	acct    isolation.Account
	input   []byte // nil when it must be read from the store
	timeout time.Duration
	// declared is the timeout the task or its function gave, which the
	// block of a node that runs it must outlast; 0 when the timeout is
	// only the site's default, which declares nothing.
	declared time.Duration
	// image is the image a node runs the task in, resolved when it is
	// placed on one; nil for the host runtime.
	image *api.NodeImage
	// data are the entries the task reads, resolved (sources staged) in
	// the daemon's cache when it is first placed; nil until then.
	data []api.NodeData
	// dataPaths are the pinned entries' blob paths, in data's order, and
	// dataPins release them; dataErr is why data could not be resolved.
	dataPaths []string
	dataPins  []func()
	dataErr   error
	// outputRef and outputSize are the cache entry that keeps an output
	// too large for the task's record; set by its run goroutine.
	outputRef  string
	outputSize int64
	sync       bool // synchronous run: not in the store until it ends
	placing    bool // queued, and its run is placing it (staging data, waiting for a node); guarded by dispatcher.mu
	cancel     context.CancelCauseFunc
	done       chan struct{} // closed when task is final (and, unless sync, stored)
}

// tenant is one account's queue and running count.
type tenant struct {
	running int
	queue   []*job
}

// dispatcher queues tasks per tenant and runs them on the warm pools,
// at most quota.max_running at once per tenant.
type dispatcher struct {
	// keepOutput puts an output larger than limits.max_result_bytes in the
	// data cache for account and returns its digest.
	keepOutput func(account, taskID string, output []byte) (string, error)
	// resolveData stages the sources a task names in the daemon's cache,
	// as its account, and returns every entry it reads, pinned.
	resolveData func(ctx context.Context, j *job) ([]api.NodeData, error)
	// localityWait is how long a task that reads data waits for room on a
	// node that holds it ([batch] locality_wait).
	localityWait time.Duration
	store        *store.Store
	pools        *runtimes.Pools
	nodes        *nodeSet
	// images resolves the images of tasks sent to nodes; nil without
	// containers.
	images *images.Store
	// daemonNodeTasks lets tasks run on the daemon's own node when no
	// linked node has room ([batch] daemon_node_tasks).
	daemonNodeTasks bool
	metrics         *metrics
	log             zerolog.Logger
	base            context.Context // parent of every run; cancelled at the very end

	mu       sync.Mutex
	tenants  map[string]*tenant
	active   map[string]*job
	quotas   conf.Tenants
	limits   conf.Limits
	draining bool
	wg       sync.WaitGroup // running tasks

	// changed is closed, and cleared, at the next change of a task's
	// state (watch); nil while nobody watches.
	watchMu sync.Mutex
	changed chan struct{}
}

// watch returns a channel closed at the next change of any task's state:
// queued, running, or final and stored. Take it before looking at the
// states, so that no change falls between the look and the wait.
func (d *dispatcher) watch() <-chan struct{} {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	if d.changed == nil {
		d.changed = make(chan struct{})
	}
	return d.changed
}

// notify wakes the watchers of task states.
func (d *dispatcher) notify() {
	d.watchMu.Lock()
	if d.changed != nil {
		close(d.changed)
		d.changed = nil
	}
	d.watchMu.Unlock()
}

func (d *dispatcher) tenant(name string) *tenant {
	t := d.tenants[name]
	if t == nil {
		t = &tenant{}
		d.tenants[name] = t
	}
	return t
}

// admit checks the tenant's queue quota for n more tasks.
func (d *dispatcher) admit(account string, n int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.draining {
		return fmt.Errorf("the daemon is shutting down; retry in a moment: %w", api.ErrUnavailable)
	}
	t := d.tenant(account)
	q := d.quotas.QuotaFor(account)
	if have := t.running + len(t.queue); have+n > q.MaxQueued {
		return fmt.Errorf("account %q has %d unfinished tasks and its quota is %d (tenants max_queued); wait for some to finish: %w", account, have, q.MaxQueued, api.ErrUnavailable)
	}
	return nil
}

// notStarted ends a synchronous run the daemon will not start because it
// is shutting down: the run is in no store to be recovered from, so it
// fails and its caller may retry.
var notStarted = runtimes.Result{State: api.StateFailed, ExitCode: -1,
	Error: "not started: the daemon is shutting down; run it again in a moment"}

// enqueue makes jobs active and starts those the tenant has room for.
// While draining, synchronous runs end at once (notStarted); queued ones
// wait in the store for the restart.
func (d *dispatcher) enqueue(jobs ...*job) {
	d.mu.Lock()
	var refused []*job
	for _, j := range jobs {
		d.active[j.task.ID] = j
		d.metrics.transition("", j.task.State)
		if d.draining && j.sync {
			refused = append(refused, j)
			continue
		}
		t := d.tenant(j.acct.Name)
		t.queue = append(t.queue, j)
	}
	for _, j := range jobs {
		d.startNextLocked(d.tenant(j.acct.Name))
	}
	d.mu.Unlock()
	d.notify()
	for _, j := range refused {
		d.finish(j, notStarted, nil)
	}
}

// dequeueLocked removes a job that has not started from its tenant's queue.
func (d *dispatcher) dequeueLocked(j *job) {
	t := d.tenant(j.acct.Name)
	if i := slices.Index(t.queue, j); i >= 0 {
		t.queue = slices.Delete(t.queue, i, i+1)
	}
}

func (d *dispatcher) startNextLocked(t *tenant) {
	for len(t.queue) > 0 && !d.draining {
		j := t.queue[0]
		if t.running >= d.quotas.QuotaFor(j.acct.Name).MaxRunning {
			return
		}
		t.queue[0] = nil
		t.queue = t.queue[1:]
		t.running++
		ctx, cancel := context.WithCancelCause(d.base)
		j.cancel = cancel
		// Until run has placed it, a cancel or a drain stops it through
		// its context: it may be staging data or waiting for a node.
		j.placing = true
		d.wg.Add(1)
		go d.run(ctx, j)
	}
}

// quotaFor returns account's quota as it is now (SIGHUP may change it).
func (d *dispatcher) quotaFor(account string) conf.Quota {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.quotas.QuotaFor(account)
}

// setQuotas applies new tenant quotas to tasks that start from now on,
// and starts queued tasks a raised max_running lets through.
func (d *dispatcher) setQuotas(q conf.Tenants) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.quotas = q
	for _, t := range d.tenants {
		d.startNextLocked(t)
	}
}

// lookup returns a copy of an active task.
func (d *dispatcher) lookup(id string) (api.Task, *job, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	j, ok := d.active[id]
	if !ok {
		return api.Task{}, nil, false
	}
	return j.task, j, true
}

// snapshot returns a copy of j's task as it is now.
func (d *dispatcher) snapshot(j *job) api.Task {
	d.mu.Lock()
	defer d.mu.Unlock()
	return j.task
}

// run executes one job on a worker and records its outcome.
func (d *dispatcher) run(ctx context.Context, j *job) {
	defer d.wg.Done()
	defer j.cancel(nil)
	n, err := d.place(ctx, j)
	if err != nil {
		d.unplace(ctx, j, err)
		return
	}
	now := time.Now()
	d.mu.Lock()
	j.placing = false
	prev := j.task.State
	j.task.State = api.StateRunning
	j.task.Attempts++
	// It leaves the queue now; when it begins on its worker comes with
	// the run's result.
	j.task.DispatchedAt = now
	running := j.task
	d.metrics.transition(prev, api.StateRunning)
	quota := d.quotas.QuotaFor(j.acct.Name)
	d.mu.Unlock()
	d.notify()

	record := d.persistRunning(j, running)
	res, lost := d.execute(ctx, j, quota, n)
	if lost {
		d.requeue(j, record, true)
		return
	}
	res = d.keepLargeOutput(j, res)
	// Stopped by the drain, not ended on its own just before it.
	if res.State == api.StateCancelled && errors.Is(context.Cause(ctx), errDraining) {
		if !j.sync {
			d.requeue(j, record, false)
			return
		}
		// The caller holds the connection and the task is in no store
		// to run again from: it fails, and the caller may retry.
		res = runtimes.Result{State: api.StateFailed, ExitCode: -1,
			Error: "stopped: the daemon shut down while the task ran (endpoint.drain_grace passed); run it again",
			Cold:  res.Cold, Worker: res.Worker, StartedAt: res.StartedAt}
	}
	d.finish(j, res, record)
}

// runningRecordDelay is how long a task runs before its running state is
// written to the store. Most tasks end sooner and are written once, final;
// the cost is that a crash within this time of a start re-runs the task
// under the same attempt number (docs/api.md says so).
const runningRecordDelay = 50 * time.Millisecond

// runningRecord is the pending write of a task's running state.
type runningRecord struct {
	timer *time.Timer
	done  chan struct{} // closed when the write has ended, if it began
}

// persistRunning writes the running state if the task is still running
// after runningRecordDelay.
func (d *dispatcher) persistRunning(j *job, t api.Task) *runningRecord {
	if j.sync {
		return nil
	}
	r := &runningRecord{done: make(chan struct{})}
	r.timer = time.AfterFunc(runningRecordDelay, func() {
		defer close(r.done)
		if err := d.store.UpdateTasks(context.Background(), []api.Task{t}); err != nil {
			d.log.Error().Err(err).Str("task", t.ID).Msg("store running state")
		}
	})
	return r
}

// wait cancels the running-state write, or waits for it to end if it has
// begun, so that states never go backwards in the store.
func (r *runningRecord) wait() {
	if r != nil && !r.timer.Stop() {
		<-r.done
	}
}

// execute runs j on a worker within quota, the tenant's quota when j
// started: on node n (whose slot place took), else on this node. lost
// says n went away without a result.
func (d *dispatcher) execute(ctx context.Context, j *job, quota conf.Quota, n *node) (res runtimes.Result, lost bool) {
	input := j.input
	if input == nil && !j.sync {
		var err error
		if input, err = d.store.GetInput(j.task.ID); err != nil {
			if n != nil {
				d.nodes.release(n, j.task.ID)
			}
			return runtimes.Result{State: api.StateFailed, Error: fmt.Sprintf("read task input: %v", err)}, false
		}
	}
	if n != nil {
		return d.runRemote(ctx, n, j, input, quota)
	}
	var data []runtimes.DataFile
	if len(j.task.Data) > 0 {
		files, err := d.taskData(ctx, j)
		if err != nil {
			state := api.StateFailed
			if ctx.Err() != nil {
				state = api.StateCancelled
			}
			return runtimes.Result{State: state, ExitCode: -1, Error: err.Error()}, false
		}
		data = files
	}
	return d.pools.Run(ctx, runtimes.Job{
		TaskID:    j.task.ID,
		Attempt:   j.task.Attempts,
		Function:  j.fn,
		Account:   j.acct,
		Limits:    limitsFor(j.fn.Limits, quota),
		Input:     input,
		Data:      data,
		Timeout:   j.timeout,
		MaxOutput: d.maxOutput(),
	}, quota.MaxWorkers), false
}

// finish records a final result: durably first for queued tasks; for the
// synchronous path the caller is answered first and the record follows.
func (d *dispatcher) finish(j *job, res runtimes.Result, running *runningRecord) {
	j.releaseData()
	now := time.Now()
	d.mu.Lock()
	prev := j.task.State
	t := &j.task
	t.State, t.ExitCode, t.Output, t.Stderr, t.Error = res.State, res.ExitCode, res.Output, res.Stderr, res.Error
	t.OutputRef, t.OutputSize = j.outputRef, j.outputSize
	t.Cold, t.Worker = res.Cold, res.Worker
	t.StartedAt = res.StartedAt // zero if it ended before it began
	t.FinishedAt = now
	t.ExpiresAt = now.Add(d.limits.ResultRetention.D())
	final := *t
	d.metrics.transition(prev, final.State)
	if prev == api.StateRunning {
		d.releaseLocked(j)
	}
	d.mu.Unlock()
	d.metrics.finished(final)

	if j.sync {
		close(j.done)
	}
	running.wait()
	var err error
	if j.sync {
		err = d.store.CreateTasks(context.Background(), []store.Record{{Task: final}})
	} else {
		err = d.store.UpdateTasks(context.Background(), []api.Task{final})
	}
	if err != nil {
		d.log.Error().Err(err).Str("task", final.ID).Msg("store task result")
	}
	d.mu.Lock()
	delete(d.active, final.ID)
	d.mu.Unlock()
	if !j.sync {
		close(j.done)
	}
	d.notify()
}

// releaseLocked frees the job's running slot and starts the next task.
func (d *dispatcher) releaseLocked(j *job) {
	t := d.tenant(j.acct.Name)
	t.running--
	d.startNextLocked(t)
}

// requeue puts a running task back to queued in the store: one stopped
// by shutdown runs after the restart; with again (its node went away), it
// also goes back to the head of its tenant's queue and runs again now,
// elsewhere.
func (d *dispatcher) requeue(j *job, running *runningRecord, again bool) {
	d.mu.Lock()
	d.metrics.transition(j.task.State, api.StateQueued)
	j.task.State = api.StateQueued
	j.task.DispatchedAt = time.Time{}
	t := j.task
	if again {
		tn := d.tenant(j.acct.Name)
		tn.queue = slices.Insert(tn.queue, 0, j)
	}
	d.releaseLocked(j)
	d.mu.Unlock()
	d.notify()
	running.wait()
	if err := d.store.UpdateTasks(context.Background(), []api.Task{t}); err != nil {
		d.log.Error().Err(err).Str("task", t.ID).Msg("store requeued task")
	}
	if again {
		d.log.Warn().Str("task", t.ID).Int("attempt", t.Attempts).Msg("task requeued: its node went away")
	}
}

// cancel stops a task: a queued one ends at once, a running one when its
// worker is killed. It returns the task and whether it was still active.
func (d *dispatcher) cancel(id string) (*job, bool) {
	d.mu.Lock()
	j, ok := d.active[id]
	if !ok || j.task.State.Final() {
		d.mu.Unlock()
		return j, false
	}
	if j.task.State == api.StateRunning || j.placing {
		j.cancel(context.Canceled)
		d.mu.Unlock()
		return j, true
	}
	d.dequeueLocked(j)
	d.mu.Unlock()
	d.finish(j, runtimes.Result{State: api.StateCancelled, ExitCode: -1, Error: "cancelled before it started"}, nil)
	return j, true
}

// drain stops starting tasks, waits up to grace for running ones, then
// stops the rest, which return to queued.
func (d *dispatcher) drain(grace time.Duration) {
	d.mu.Lock()
	d.draining = true
	// Queued synchronous runs will not start: they end now, as enqueue
	// ends those that arrive from here on.
	var syncQueued []*job
	for _, t := range d.tenants {
		for _, j := range t.queue {
			if j.sync {
				syncQueued = append(syncQueued, j)
			}
		}
	}
	for _, j := range syncQueued {
		d.dequeueLocked(j)
	}
	// Tasks waiting for a node have not started either: they stay queued,
	// for the next daemon.
	for _, j := range d.active {
		if j.placing {
			j.cancel(errDraining)
		}
	}
	d.mu.Unlock()
	for _, j := range syncQueued {
		d.finish(j, notStarted, nil)
	}
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	d.mu.Lock()
	n := 0
	for _, j := range d.active {
		if j.task.State == api.StateRunning || j.placing {
			j.cancel(errDraining)
			n++
		}
	}
	d.mu.Unlock()
	d.log.Warn().Int("tasks", n).Dur("dur", grace).Msg("drain grace passed; running tasks stopped and requeued")
	<-done
}

// limitsFor merges a function's limits with the tenant quota: the
// function may ask for less than the quota, never more.
func limitsFor(l api.Limits, q conf.Quota) specs.LinuxResources {
	mem := int64(q.Memory)
	if l.MemoryBytes > 0 && l.MemoryBytes < mem {
		mem = l.MemoryBytes
	}
	cpus := q.CPUs
	if l.CPUs > 0 && l.CPUs < cpus {
		cpus = l.CPUs
	}
	pids := q.Pids
	if l.Pids > 0 && l.Pids < pids {
		pids = l.Pids
	}
	period := uint64(100000)
	quota := int64(cpus * float64(period))
	return specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &mem},
		CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period},
		Pids:   &specs.LinuxPids{Limit: &pids},
	}
}

// load counts the tasks running and those queued, of every tenant.
func (d *dispatcher) load() (running, queued int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.tenants {
		running += t.running
		queued += len(t.queue)
	}
	return running, queued
}
