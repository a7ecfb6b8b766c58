package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/cache"
	"fxd.dev/fxd/daemon/store"
)

// maxPollers bounds the status queries in flight to one peer; tasks
// accepted while all are busy join one at its next round.
const maxPollers = 16

// fwdTask is a task of this site's user forwarded to a peer, from its
// submission until it is final and stored. Its fields are guarded by
// fed.mu.
type fwdTask struct {
	task  api.Task // Site set; RemoteID once the peer accepted it
	input []byte   // nil when it must be read from the store
	// deadline is when it fails if its peer still cannot be reached.
	deadline time.Time
	ending   bool // finish has it: no other path may end it
	// fetchFails counts failed copies of its large output.
	fetchFails int
	done       chan struct{} // closed once final and stored
}

// forwarder sends one peer the tasks forwarded to it, in batches, and
// brings their states and results back. Its fields are guarded by fed.mu.
type forwarder struct {
	f    *fed
	l    *peerLink
	base context.Context // of pollers; nil until run
	wake chan struct{}   // unsent tasks or cancels to send

	unsent   []*fwdTask
	cancels  []string            // remote IDs the peer must cancel
	waiting  []*fwdTask          // accepted, in no poller yet
	byRemote map[string]*fwdTask // accepted, not final, by remote ID
	pollers  int
	polls    sync.WaitGroup // the pollers' goroutines; run waits for them
	closed   bool           // run has ended: no poller starts
	batch    int            // tasks per request; halved when the peer finds it too large
	// sendFail and pollFail are since when forwards and queries fail
	// (zero while they succeed), and why: a task fails at its deadline
	// only while its own kind of request cannot get through.
	sendFail, pollFail       time.Time
	sendFailErr, pollFailErr string
}

// failed records the outcome of a forward (send) or a query at now.
func failed(since *time.Time, why *string, err error, now time.Time) {
	if err == nil {
		*since, *why = time.Time{}, ""
		return
	}
	if since.IsZero() {
		*since = now
	}
	*why = err.Error()
}

func newForwarder(f *fed, l *peerLink) *forwarder {
	return &forwarder{f: f, l: l, wake: make(chan struct{}, 1), byRemote: map[string]*fwdTask{}, batch: f.d.cfg.Limits.MaxBatch}
}

func (fw *forwarder) signal() {
	select {
	case fw.wake <- struct{}{}:
	default:
	}
}

// pending counts the tasks forwarded to the peer that are not final.
func (fw *forwarder) pending() int {
	fw.f.mu.Lock()
	defer fw.f.mu.Unlock()
	return len(fw.unsent) + len(fw.byRemote)
}

// newForward checks one task spec bound for site and makes its forward,
// not yet stored.
func (f *fed) newForward(c caller, spec api.TaskSpec, site string, now time.Time) (*fwdTask, error) {
	d := f.d
	if err := d.checkInput(spec); err != nil {
		return nil, err
	}
	input := spec.InputBytes()
	if spec.Function == "" {
		return nil, fmt.Errorf("no function given: %w", api.ErrInvalid)
	}
	if max := d.cfg.Limits.MaxTimeout.D(); spec.Timeout.D() > max {
		return nil, fmt.Errorf("timeout %s exceeds limits.max_timeout (%s): %w", spec.Timeout.D(), max, api.ErrInvalid)
	}
	ft := &fwdTask{
		task: api.Task{ID: newTaskID(now), Function: spec.Function, Owner: c.acct.Name, State: api.StateQueued,
			Timeout: spec.Timeout, ReceivedAt: now, Data: spec.Data, Site: site},
		deadline: now.Add(f.cfg.RetryDeadline.D()),
		done:     make(chan struct{}),
	}
	if len(input) <= inlineInputMax {
		ft.input = append([]byte{}, input...)
	}
	return ft, nil
}

// admit checks account's queue quota for n more forwarded tasks; those
// run elsewhere, so they count apart from the tasks that run here.
func (f *fed) admit(account string, n int) error {
	q := f.d.disp.quotaFor(account)
	f.mu.Lock()
	defer f.mu.Unlock()
	if have := f.forwarded[account]; have+n > q.MaxQueued {
		return fmt.Errorf("account %q has %d forwarded tasks not finished and its quota is %d (tenants max_queued); wait for some to finish: %w", account, have, q.MaxQueued, api.ErrUnavailable)
	}
	return nil
}

// unforwardLocked counts one task of account's forwards less. The caller
// holds f.mu.
func (f *fed) unforwardLocked(account string) {
	if f.forwarded[account]--; f.forwarded[account] <= 0 {
		delete(f.forwarded, account)
	}
}

// enqueue hands stored forwards to their peers' forwarders.
func (f *fed) enqueue(fts ...*fwdTask) {
	f.mu.Lock()
	woken := map[*forwarder]bool{}
	for _, ft := range fts {
		fw := f.links[ft.task.Site].fw
		f.tasks[ft.task.ID] = ft
		f.forwarded[ft.task.Owner]++
		if ft.task.RemoteID != "" {
			fw.byRemote[ft.task.RemoteID] = ft
			fw.waiting = append(fw.waiting, ft)
			fw.startPollerLocked()
			continue
		}
		fw.unsent = append(fw.unsent, ft)
		woken[fw] = true
	}
	f.mu.Unlock()
	for fw := range woken {
		fw.signal()
	}
}

// recovered takes back a forwarded task found unfinished at start, or
// says why it cannot go on.
func (f *fed) recovered(rec store.Record) error {
	if f == nil || f.links[rec.Task.Site] == nil {
		return fmt.Errorf("site %s is no longer a peer this site dials ([[federation.peer]] with a url)", rec.Task.Site)
	}
	ft := &fwdTask{task: rec.Task, deadline: rec.Task.ReceivedAt.Add(f.cfg.RetryDeadline.D()), done: make(chan struct{})}
	if len(rec.Input) <= inlineInputMax {
		ft.input = rec.Input
	}
	f.enqueue(ft)
	return nil
}

// lookup returns a copy of a forwarded task that is not final yet.
func (f *fed) lookup(id string) (api.Task, *fwdTask, bool) {
	if f == nil {
		return api.Task{}, nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ft, ok := f.tasks[id]
	if !ok {
		return api.Task{}, nil, false
	}
	return ft.task, ft, true
}

// cancel cancels a forwarded task: at once if it was not sent yet, else
// by telling the peer, whose answer comes back through the queries.
func (f *fed) cancel(id string) {
	f.mu.Lock()
	ft, ok := f.tasks[id]
	if !ok {
		f.mu.Unlock()
		return
	}
	fw := f.links[ft.task.Site].fw
	if ft.task.RemoteID == "" {
		for i, u := range fw.unsent {
			if u == ft {
				fw.unsent = append(fw.unsent[:i:i], fw.unsent[i+1:]...)
				break
			}
		}
		t := ft.task
		t.State, t.ExitCode, t.Error = api.StateCancelled, -1, "cancelled before it was forwarded to site "+t.Site
		f.mu.Unlock()
		f.finish([]*fwdTask{ft}, []api.Task{t})
		return
	}
	fw.cancels = append(fw.cancels, ft.task.RemoteID)
	f.mu.Unlock()
	fw.signal()
}

// finish stores final states of forwards, then lets their waiters go. Of
// two paths that end one task at once (its result, its deadline), the
// first wins and the other's state is dropped.
func (f *fed) finish(all []*fwdTask, allFinal []api.Task) {
	now := time.Now()
	var fts []*fwdTask
	var final []api.Task
	f.mu.Lock()
	for i, ft := range all {
		if ft.ending || f.tasks[ft.task.ID] != ft {
			continue
		}
		ft.ending = true
		t := allFinal[i]
		t.ExpiresAt = now.Add(f.d.cfg.Limits.ResultRetention.D())
		if t.FinishedAt.IsZero() {
			t.FinishedAt = now
		}
		fts, final = append(fts, ft), append(final, t)
	}
	f.mu.Unlock()
	if len(fts) == 0 {
		return
	}
	if err := f.d.store.UpdateTasks(context.Background(), final); err != nil {
		f.log.Error().Err(err).Int("tasks", len(final)).Msg("store results of forwarded tasks")
	}
	f.mu.Lock()
	for i, ft := range fts {
		ft.task = final[i]
		delete(f.tasks, ft.task.ID)
		delete(f.links[ft.task.Site].fw.byRemote, ft.task.RemoteID)
		f.unforwardLocked(ft.task.Owner)
	}
	f.mu.Unlock()
	for _, ft := range fts {
		close(ft.done)
	}
	f.d.metrics.finishedForwarded(final)
}

// run sends unsent tasks and cancels until ctx ends, and fails those
// whose deadline passed while the peer could not be reached.
func (fw *forwarder) run(ctx context.Context) {
	fw.f.mu.Lock()
	fw.base = ctx
	fw.startPollerLocked()
	fw.f.mu.Unlock()
	defer func() {
		// No poller starts from now on; those running end with ctx.
		fw.f.mu.Lock()
		fw.closed = true
		fw.f.mu.Unlock()
		fw.polls.Wait()
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	failures := 0
	for {
		if err := fw.sendAll(ctx); err != nil {
			failures++
			fw.expire()
			pause := backoff(failures)
			if errors.Is(err, errPeerBusy) {
				// It answers, and takes tasks as its queues drain: ask
				// again soon.
				pause = min(pause, 2*time.Second)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			continue
		}
		failures = 0
		select {
		case <-ctx.Done():
			return
		case <-fw.wake:
		case <-tick.C:
			fw.expire()
		}
	}
}

// errPeerBusy is a peer's refusal of tasks for now (its queues are
// full, or it drains).
var errPeerBusy = errors.New("busy")

// maxForwardBytes bounds the inputs of one forward request (sent in
// base64, a third more), whatever the peer's limits.max_request_bytes.
const maxForwardBytes = 32 << 20

// sendAll sends the cancels, then forwards every unsent task in batches.
// An error means the peer could not take them now: retry later.
func (fw *forwarder) sendAll(ctx context.Context) error {
	f := fw.f
	f.mu.Lock()
	cancels := fw.cancels
	fw.cancels = nil
	f.mu.Unlock()
	if len(cancels) > 0 {
		if err := fw.l.client.PeerCancel(ctx, cancels); err != nil {
			f.mu.Lock()
			fw.cancels = append(fw.cancels, cancels...)
			failed(&fw.sendFail, &fw.sendFailErr, err, time.Now())
			f.mu.Unlock()
			fw.l.contact(err)
			return err
		}
	}
	for {
		batch := fw.takeBatch()
		if len(batch) == 0 {
			return nil
		}
		if err := fw.send(ctx, batch); err != nil {
			return err
		}
	}
}

// takeBatch takes the next unsent tasks for one forward: at most batch
// of them, with inputs of at most maxForwardBytes (but one task always),
// leaving out those that ended meanwhile (cancelled).
func (fw *forwarder) takeBatch() []*fwdTask {
	f := fw.f
	f.mu.Lock()
	defer f.mu.Unlock()
	var batch []*fwdTask
	bytes := 0
	n := 0
	for ; n < len(fw.unsent) && len(batch) < fw.batch; n++ {
		ft := fw.unsent[n]
		if ft.ending || f.tasks[ft.task.ID] != ft {
			continue
		}
		size := len(ft.input)
		if ft.input == nil {
			size = int(f.d.cfg.Limits.MaxInputBytes) // read at send: count the most it may be
		}
		if len(batch) > 0 && bytes+size > maxForwardBytes {
			break
		}
		bytes += size
		batch = append(batch, ft)
	}
	fw.unsent = fw.unsent[n:]
	return batch
}

// putBack returns tasks that did not go to the head of the unsent queue,
// those that ended meanwhile left out.
func (fw *forwarder) putBack(batch []*fwdTask) {
	fw.f.mu.Lock()
	defer fw.f.mu.Unlock()
	keep := make([]*fwdTask, 0, len(batch))
	for _, ft := range batch {
		if !ft.ending && fw.f.tasks[ft.task.ID] == ft {
			keep = append(keep, ft)
		}
	}
	fw.unsent = append(keep, fw.unsent...)
}

// send forwards one batch and applies the peer's answers.
func (fw *forwarder) send(ctx context.Context, batch []*fwdTask) error {
	f := fw.f
	req := api.ForwardRequest{Tasks: make([]api.ForwardedTask, 0, len(batch))}
	var unreadable []*fwdTask
	var unreadableTasks []api.Task
	sent := batch[:0:0]
	for _, ft := range batch {
		f.mu.Lock()
		t, input := ft.task, ft.input
		f.mu.Unlock()
		if input == nil {
			var err error
			if input, err = f.d.store.GetInput(t.ID); err != nil {
				t.State, t.ExitCode, t.Error = api.StateFailed, -1, fmt.Sprintf("not forwarded: its input cannot be read back from the task store: %v", err)
				unreadable, unreadableTasks = append(unreadable, ft), append(unreadableTasks, t)
				continue
			}
		}
		sent = append(sent, ft)
		req.Tasks = append(req.Tasks, api.ForwardedTask{ID: t.ID, User: t.Owner, ReceivedAt: t.ReceivedAt,
			Spec: api.TaskSpec{Function: t.Function, InputBase64: input, Timeout: t.Timeout, Data: t.Data}})
	}
	if len(unreadable) > 0 {
		f.finish(unreadable, unreadableTasks)
	}
	batch = sent
	if len(batch) == 0 {
		return nil
	}
	if err := fw.l.stillPeer(); err != nil {
		fw.putBack(batch)
		fw.recordSend(err)
		return err
	}
	results, err := fw.l.client.Forward(ctx, req)
	if errors.Is(err, api.ErrTooLarge) {
		if len(batch) > 1 {
			f.mu.Lock()
			fw.batch = max(len(batch)/2, 1)
			f.mu.Unlock()
			fw.putBack(batch)
			return nil // again at once, smaller
		}
		// One task the peer finds too large: it never will take it.
		t := batch[0].task
		t.State, t.ExitCode, t.Error = api.StateFailed, -1, fmt.Sprintf("site %s refused the task: %v", fw.l.name, err)
		f.finish(batch, []api.Task{t})
		return nil
	}
	if err == nil && len(results) != len(batch) {
		err = fmt.Errorf("site %s answered %d results for %d tasks", fw.l.name, len(results), len(batch))
	}
	fw.l.contact(err)
	fw.recordSend(err)
	if err != nil {
		fw.putBack(batch)
		if ctx.Err() == nil {
			fw.l.log.Warn().Err(err).Int("tasks", len(batch)).Msg("forward failed; retrying")
		}
		return err
	}
	var accepted, refused, retry []*fwdTask
	var acceptedTasks, refusedTasks []api.Task
	retryWhy := ""
	for i, r := range results {
		ft := batch[i]
		f.mu.Lock()
		t := ft.task
		f.mu.Unlock()
		switch {
		case r.Error == nil && r.ID != "":
			t.RemoteID = r.ID
			accepted, acceptedTasks = append(accepted, ft), append(acceptedTasks, t)
		case r.Error != nil && r.Error.Code == api.CodeUnavailable:
			retry = append(retry, ft) // the peer is full or draining: later
			retryWhy = r.Error.Message
		default:
			msg := "no reason given"
			if r.Error != nil {
				msg = r.Error.Message
			}
			t.State, t.ExitCode, t.Error = api.StateFailed, -1, fmt.Sprintf("site %s refused the task: %s", fw.l.name, msg)
			refused, refusedTasks = append(refused, ft), append(refusedTasks, t)
		}
	}
	if len(acceptedTasks) > 0 {
		fw.accepted(accepted, acceptedTasks)
	}
	if len(refused) > 0 {
		f.finish(refused, refusedTasks)
	}
	if len(retry) > 0 {
		// Behind the other tasks, so that one account at its quota there
		// does not hold up the rest; their deadline runs as for a peer
		// that cannot be reached.
		err := fmt.Errorf("site %s cannot take %d tasks now: %s: %w", fw.l.name, len(retry), retryWhy, errPeerBusy)
		fw.l.log.Info().Int("tasks", len(retry)).Str("why", retryWhy).Msg("peer cannot take tasks now; sending them again shortly")
		fw.recordSend(err)
		f.mu.Lock()
		fw.unsent = append(fw.unsent, retry...)
		f.mu.Unlock()
		return err
	}
	return nil
}

// recordSend records the outcome of a forward for the deadlines.
func (fw *forwarder) recordSend(err error) {
	fw.f.mu.Lock()
	failed(&fw.sendFail, &fw.sendFailErr, err, time.Now())
	fw.f.mu.Unlock()
}

// accepted takes in the tasks the peer accepted, with their remote IDs:
// stored first, so that a restart polls them again rather than sending
// them again (which the peer would find sent anyway), then polled.
func (fw *forwarder) accepted(accepted []*fwdTask, acceptedTasks []api.Task) {
	f := fw.f
	f.mu.Lock()
	var live []api.Task
	for i, ft := range accepted {
		if !ft.ending && f.tasks[ft.task.ID] == ft {
			live = append(live, acceptedTasks[i])
		}
	}
	f.mu.Unlock()
	if err := f.d.store.UpdateTasks(context.Background(), live); err != nil {
		f.log.Error().Err(err).Msg("store remote IDs of forwarded tasks")
	}
	f.mu.Lock()
	cancelled := false
	for i, ft := range accepted {
		if ft.ending || f.tasks[ft.task.ID] != ft {
			// Cancelled while on its way: the peer cancels it too.
			fw.cancels = append(fw.cancels, acceptedTasks[i].RemoteID)
			cancelled = true
			continue
		}
		ft.task = acceptedTasks[i]
		fw.byRemote[ft.task.RemoteID] = ft
		fw.waiting = append(fw.waiting, ft)
	}
	fw.startPollerLocked()
	f.mu.Unlock()
	if cancelled {
		fw.signal()
	}
}

// expire fails the tasks whose deadline passed while the peer could not
// be reached: unsent ones while forwards fail, accepted ones once queries
// have failed for a whole retry_deadline.
func (fw *forwarder) expire() {
	f := fw.f
	now := time.Now()
	var fts []*fwdTask
	var final []api.Task
	fail := func(ft *fwdTask, why string) {
		t := ft.task
		t.State, t.ExitCode, t.Error = api.StateFailed, -1, why
		fts, final = append(fts, ft), append(final, t)
	}
	f.mu.Lock()
	if !fw.sendFail.IsZero() {
		keep := fw.unsent[:0]
		for _, ft := range fw.unsent {
			if now.Before(ft.deadline) {
				keep = append(keep, ft)
				continue
			}
			fail(ft, fmt.Sprintf("not run: forwarding it to site %s has failed since %s (last error: %s); federation.retry_deadline (%s) passed",
				fw.l.name, fw.sendFail.Format(time.RFC3339), fw.sendFailErr, f.cfg.RetryDeadline.D()))
		}
		clear(fw.unsent[len(keep):])
		fw.unsent = keep
	}
	if !fw.pollFail.IsZero() {
		// A task the peer runs may outlast its deadline: it fails once the
		// peer has not answered for a whole retry_deadline too.
		cutoff := fw.pollFail.Add(f.cfg.RetryDeadline.D())
		for _, ft := range fw.byRemote {
			if now.Before(ft.deadline) || now.Before(cutoff) {
				continue
			}
			fail(ft, fmt.Sprintf("site %s accepted the task as %s but has not answered since %s (last error: %s); federation.retry_deadline (%s) passed, so it may have run there",
				fw.l.name, ft.task.RemoteID, fw.pollFail.Format(time.RFC3339), fw.pollFailErr, f.cfg.RetryDeadline.D()))
		}
	}
	f.mu.Unlock()
	if len(fts) > 0 {
		fw.l.log.Warn().Int("tasks", len(fts)).Msg("forwarded tasks failed: their peer stayed unreachable past federation.retry_deadline")
		f.finish(fts, final)
	}
}

// startPollerLocked starts a poller for the waiting tasks if fewer than
// maxPollers run. The caller holds fed.mu.
func (fw *forwarder) startPollerLocked() {
	if fw.base == nil || fw.closed || len(fw.waiting) == 0 || fw.pollers >= maxPollers {
		return
	}
	fw.pollers++
	fw.polls.Add(1)
	go func() {
		defer fw.polls.Done()
		fw.poll(fw.base)
	}()
}

// poll asks the peer about a set of accepted tasks until all are final,
// taking in waiting ones between rounds, then ends.
func (fw *forwarder) poll(ctx context.Context) {
	f := fw.f
	set := map[string]*fwdTask{}
	failures := 0
	for {
		f.mu.Lock()
		for len(fw.waiting) > 0 && len(set) < fw.batch {
			ft := fw.waiting[0]
			fw.waiting = fw.waiting[1:]
			set[ft.task.RemoteID] = ft
		}
		for id, ft := range set {
			if fw.byRemote[id] != ft { // finished elsewhere (cancelled, expired)
				delete(set, id)
			}
		}
		if len(set) == 0 || ctx.Err() != nil {
			fw.pollers--
			f.mu.Unlock()
			return
		}
		q := api.PeerQuery{Wait: api.Duration(f.cfg.PollWait), Tasks: make([]api.KnownState, 0, len(set))}
		for id, ft := range set {
			q.Tasks = append(q.Tasks, api.KnownState{ID: id, State: ft.task.State})
		}
		f.mu.Unlock()
		err := fw.l.stillPeer()
		var resp api.PeerQueryResponse
		if err == nil {
			resp, err = fw.l.client.PeerTasks(ctx, q)
		}
		if ctx.Err() != nil {
			continue // ends above
		}
		f.mu.Lock()
		failed(&fw.pollFail, &fw.pollFailErr, err, time.Now())
		if errors.Is(err, api.ErrTooLarge) && len(set) > 1 {
			// The peer's limits.max_batch is smaller: ask for fewer.
			fw.batch = max(len(set)/2, 1)
			for id, ft := range set {
				if len(set) <= fw.batch {
					break
				}
				delete(set, id)
				fw.waiting = append(fw.waiting, ft)
			}
			fw.startPollerLocked()
			f.mu.Unlock()
			continue
		}
		f.mu.Unlock()
		if err != nil {
			fw.l.contact(err)
			failures++
			select {
			case <-ctx.Done():
			case <-time.After(backoff(failures)):
			}
			continue
		}
		fw.l.contact(nil)
		failures = 0
		if fw.apply(ctx, set, resp.Tasks) {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// apply takes in the states the peer reported for tasks of set.
// It reports whether an output could not be copied now: the poller then
// pauses before it asks again.
func (fw *forwarder) apply(ctx context.Context, set map[string]*fwdTask, remote []api.Task) (retryLater bool) {
	f := fw.f
	var finals []*fwdTask
	var finalTasks []api.Task
	for _, rt := range remote {
		ft, ok := set[rt.ID]
		if !ok {
			continue
		}
		f.mu.Lock()
		t := ft.task
		f.mu.Unlock()
		merged := mergeRemote(t, rt)
		if merged.State.Final() && rt.OutputRef != "" {
			if err := fw.fetchOutput(ctx, &merged, rt); err != nil {
				f.mu.Lock()
				ft.fetchFails++
				fails := ft.fetchFails
				f.mu.Unlock()
				if ctx.Err() != nil {
					return false
				}
				if !permanent(err) && fails < maxFetchFails {
					fw.l.log.Warn().Err(err).Str("task", t.ID).Msg("fetch large output of forwarded task; retrying")
					retryLater = true
					continue // still the old state: the peer reports it again
				}
				merged.State, merged.ExitCode, merged.Output, merged.OutputRef = api.StateFailed, -1, nil, ""
				merged.Error = fmt.Sprintf("ran at site %s, but its output of %d bytes could not be copied here: %v", fw.l.name, rt.OutputSize, err)
			}
		}
		if merged.State.Final() {
			finals, finalTasks = append(finals, ft), append(finalTasks, merged)
			delete(set, rt.ID)
			continue
		}
		f.mu.Lock()
		ft.task = merged
		f.mu.Unlock()
	}
	// States short of final are kept in memory only: the store has the
	// remote ID, and after a restart the peer tells them again.
	if len(finals) > 0 {
		f.finish(finals, finalTasks)
	}
	return retryLater
}

// maxFetchFails is how often copying a forwarded task's large output may
// fail before the task fails.
const maxFetchFails = 5

// permanent says err will not go away by trying again: the output is too
// large for this site's limits, the owner's cache quota is full, or the
// bytes are not what the peer said.
func permanent(err error) bool {
	return errors.Is(err, api.ErrTooLarge) || errors.Is(err, api.ErrDenied) || errors.Is(err, api.ErrInvalid) || errors.Is(err, api.ErrNotFound)
}

// mergeRemote is t, this site's record of a forwarded task, with what the
// peer reported of it in rt. The ID, owner, site and retention stay this
// site's.
func mergeRemote(t, rt api.Task) api.Task {
	if rt.Function != "" {
		t.Function, t.FunctionVersion = rt.Function, rt.FunctionVersion
	}
	t.State, t.Attempts, t.ExitCode = rt.State, rt.Attempts, rt.ExitCode
	t.Output, t.OutputSize, t.Error, t.Stderr = rt.Output, rt.OutputSize, rt.Error, rt.Stderr
	t.Cold, t.Worker = rt.Cold, rt.Worker
	t.DispatchedAt, t.StartedAt, t.FinishedAt = rt.DispatchedAt, rt.StartedAt, rt.FinishedAt
	if rt.Worker != "" {
		t.Worker = t.Site + "/" + rt.Worker
	}
	return t
}

// fetchOutput copies the output the peer kept in its data cache into this
// site's, for the task's owner, as long as the task's result is kept.
func (fw *forwarder) fetchOutput(ctx context.Context, t *api.Task, rt api.Task) error {
	d := fw.f.d
	body, err := fw.l.client.PeerOutput(ctx, rt.ID)
	if err != nil {
		return err
	}
	defer body.Close()
	e, err := d.cache.Put(ctx, t.Owner, body, cache.PutOptions{
		Want: rt.OutputRef, Source: "output of task " + t.ID + " at site " + t.Site, Size: rt.OutputSize,
		MaxSize: int64(d.cfg.Limits.MaxCachedResultBytes), Quota: d.cacheQuota(t.Owner),
		KeepUntil: time.Now().Add(d.cfg.Limits.ResultRetention.D()),
	})
	if err != nil {
		return err
	}
	t.OutputRef, t.OutputSize = e.Digest, e.Size
	return nil
}

// runRemote runs ft at its peer on the peer's synchronous path, then
// stores its end here. A refusal by the peer (it maps the caller to no
// account, knows no such function, …) ends the task failed, as for a
// submitted one; a peer that cannot take it now is an error.
func (f *fed) runRemote(ctx context.Context, c caller, ft *fwdTask, input []byte) (api.Task, error) {
	l := f.links[ft.task.Site]
	t := ft.task
	if err := l.stillPeer(); err != nil {
		return api.Task{}, err
	}
	// It counts against the account's forwarded tasks while it runs.
	f.mu.Lock()
	f.forwarded[t.Owner]++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.unforwardLocked(t.Owner)
		f.mu.Unlock()
	}()
	// The peer's own timeout ends the task; without one given, this
	// site's longest lets the answer come back.
	runFor := cmp.Or(t.Timeout.D(), f.d.cfg.Limits.MaxTimeout.D())
	rt, err := l.client.PeerRun(ctx, api.ForwardedTask{ID: t.ID, User: t.Owner, ReceivedAt: t.ReceivedAt,
		Spec: api.TaskSpec{Function: t.Function, InputBase64: input, Timeout: t.Timeout, Data: t.Data}}, runFor)
	var refused *api.RemoteError
	switch {
	case err == nil:
		l.contact(nil)
		t = mergeRemote(t, rt)
		t.RemoteID = rt.ID
		if rt.OutputRef != "" {
			if err := l.fw.fetchOutput(ctx, &t, rt); err != nil {
				t.State, t.ExitCode, t.Output = api.StateFailed, -1, nil
				t.Error = fmt.Sprintf("ran at site %s, but its output of %d bytes could not be copied here: %v", l.name, rt.OutputSize, err)
			}
		}
	case ctx.Err() != nil:
		return api.Task{}, ctx.Err()
	case errors.As(err, &refused) && !errors.Is(err, api.ErrUnavailable):
		l.contact(nil)
		t.State, t.ExitCode, t.Error = api.StateFailed, -1, fmt.Sprintf("site %s refused the task: %s", l.name, refused.Message)
	default:
		if !errors.As(err, &refused) {
			l.contact(err)
		}
		return api.Task{}, fmt.Errorf("site %s cannot run the task now: %v; retry, or submit it (fx submit --site %s) to have it retried until federation.retry_deadline: %w",
			l.name, err, l.name, api.ErrUnavailable)
	}
	now := time.Now()
	if t.FinishedAt.IsZero() {
		t.FinishedAt = now
	}
	t.ExpiresAt = now.Add(f.d.cfg.Limits.ResultRetention.D())
	// Answered first, stored just after, as a synchronous run here; until
	// it is stored, lookups find it here.
	ft.task, ft.ending = t, true
	close(ft.done)
	f.mu.Lock()
	f.tasks[t.ID] = ft
	f.mu.Unlock()
	f.d.metrics.finishedForwarded([]api.Task{t})
	f.stores.Add(1)
	go func() {
		defer f.stores.Done()
		if err := f.d.store.CreateTasks(context.Background(), []store.Record{{Task: t, Identity: c.identity}}); err != nil {
			f.log.Error().Err(err).Str("task", t.ID).Msg("store forwarded synchronous run")
		}
		f.mu.Lock()
		delete(f.tasks, t.ID)
		f.mu.Unlock()
	}()
	return t, nil
}
