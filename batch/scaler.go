package batch

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/internal/atomicfile"
)

// Nodes is the daemon's side of the strategy: the demand for node slots,
// what the nodes of each block are doing, and their credentials.
type Nodes interface {
	// Waiting is how many tasks wait for a slot on a node that this pool
	// should answer: the tasks beyond the room of the linked nodes, less
	// the slots other pools' blocks on their way will bring.
	Waiting() int
	// Use says what the nodes of block are doing.
	Use(block string) Use
	// Mint returns a credential that admits the nodes of block for ttl.
	Mint(block string, ttl time.Duration) (string, error)
	// Started says when block's walltime ends: its nodes get only tasks
	// that can end before.
	Started(block string, ends time.Time)
	// Drain stops giving block's nodes tasks; they leave when theirs end.
	Drain(block string)
	// Ended forgets block: its credential is revoked, its nodes gone.
	Ended(block string)
}

// Use is what the nodes of one block are doing.
type Use struct {
	Linked int // nodes linked now
	Slots  int // their task slots
	Busy   int // tasks they run
	Ran    int // tasks they have returned
	// IdleSince is since when none of its linked nodes has run a task;
	// zero while one does.
	IdleSince time.Time
}

// ScalerConfig is one pool's strategy.
type ScalerConfig struct {
	Pool conf.Pool
	// Interval is how often the scheduler is polled.
	Interval time.Duration
	// Lease is how long a block whose agents all left (or died) is kept
	// before it is cancelled, and so replaced if tasks wait.
	Lease time.Duration
	// Command is what each node of a block runs (the agent); Env is set
	// for it beside the block's own FXD_BLOCK and FXD_NODE_TOKEN.
	Command []string
	Env     map[string]string
	// StateFile keeps the pool's blocks across restarts of the daemon.
	StateFile string
	// Site, when set, is in the name of every block ("fxd-<site>-<pool>-N"),
	// so that two installations under one scheduler account never take
	// each other's jobs for their own (Finder looks blocks up by name).
	Site string
	// ScaleOut, when set, is held while the pool decides on a new block
	// and submits it; pools that share it see each other's blocks on
	// their way (Coming) and do not all answer the same demand.
	ScaleOut sync.Locker
}

// Block states the scaler reports, beside the scheduler's pending and
// running.
const (
	// stateSubmitting: recorded, and being submitted or its submit cut
	// short; no job id yet. Step settles it through the provider's Finder.
	stateSubmitting = "submitting"
	// stateDraining: its nodes take no more tasks and leave when theirs end.
	stateDraining = "draining"
	// stateCancelling: cancelled, not yet seen ended.
	stateCancelling = "cancelling"
	// stateDone: ended; kept for keepEnded so that people see how.
	stateDone = "done"
)

const (
	// linkTimeout is how long a running block's agents have to link
	// before the block is given up as broken.
	linkTimeout = 5 * time.Minute
	// keepEnded is how long an ended block stays in the list.
	keepEnded = 10 * time.Minute
	// maxBackoff bounds the wait after scheduler commands fail.
	maxBackoff = 5 * time.Minute
	// credentialSlack is how much longer than its walltime a block's
	// credential lasts: the block may pend that long in the queue. The
	// credential is revoked when the block ends.
	credentialSlack = 7 * 24 * time.Hour
)

// Scaler keeps one pool's blocks: it submits blocks when tasks wait for
// nodes, shaped to the scheduler's free windows; polls them; drains those
// near their end; and gives back those idle for the pool's idle_timeout,
// never below min_blocks. Scheduler failures are logged with the
// command's stderr and retried with backoff. Its methods are safe for
// concurrent use.
type Scaler struct {
	c     ScalerConfig
	prov  Provider
	nodes Nodes
	log   zerolog.Logger

	mu      sync.Mutex
	state   scalerState
	retryAt time.Time     // no scheduler command before
	backoff time.Duration // the last wait after a failure
	slots   int           // task slots per node, once a node has linked
	saved   []byte        // the state last written to c.StateFile
	coming  atomic.Int64  // Coming's answer, set by each step
	now     func() time.Time

	// settleAt and settleBackoff are retryAt and backoff for settling
	// blocks without a job id: a Finder that fails holds off only that.
	settleAt      time.Time
	settleBackoff time.Duration
}

// NewScaler returns the strategy for c.Pool's blocks from prov, with the
// blocks that c.StateFile recorded.
func NewScaler(c ScalerConfig, prov Provider, nodes Nodes, log zerolog.Logger) (*Scaler, error) {
	if len(c.Command) == 0 {
		return nil, fmt.Errorf("pool %s: no command for its nodes", c.Pool.Name)
	}
	st, err := loadState(c.StateFile)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", c.Pool.Name, err)
	}
	s := &Scaler{c: c, prov: prov, nodes: nodes, state: st, now: time.Now,
		log: log.With().Str("component", "batch").Str("pool", c.Pool.Name).Logger()}
	s.countComing()
	if _, ok := prov.(Finder); !ok {
		s.log.Warn().Msg("this pool's provider cannot find jobs by name: if the daemon stops while it submits a block, " +
			"the scheduler may keep a job that fxd no longer knows; cancel by hand the jobs named " + s.namePrefix() + "-N that fxd blocks does not list")
	}
	return s, nil
}

// Run keeps the pool until ctx is done: it polls every interval, and
// looks at the demand when the channel wake returns is closed (tasks
// started to wait). The blocks stay when it returns: their agents dial
// the next daemon.
func (s *Scaler) Run(ctx context.Context, wake func() <-chan struct{}) {
	s.mu.Lock()
	first := len(s.state.live()) == 0
	for _, b := range s.state.live() {
		if !b.Started.IsZero() { // recorded by an earlier daemon
			s.nodes.Started(b.Name, b.Ends)
		}
	}
	s.mu.Unlock()
	if first {
		for range s.c.Pool.InitBlocks {
			s.mu.Lock()
			s.submit(ctx, s.now(), s.c.Pool.Nodes)
			s.mu.Unlock()
		}
	}
	t := time.NewTicker(s.c.Interval)
	defer t.Stop()
	s.Step(ctx, true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Step(ctx, true)
		case <-wake():
			s.Step(ctx, false)
		}
	}
}

// Step is one look at the pool: blocks recorded without a job id (their
// submit cut short) are settled first (resolve), those the scheduler
// cannot be asked about skipped; with poll, the scheduler is asked how
// its blocks are. Then blocks are drained, cancelled and submitted as the
// demand and the pool's bounds say.
func (s *Scaler) Step(ctx context.Context, poll bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.countComing()
	now := s.now()
	if now.Before(s.retryAt) {
		return
	}
	s.resolve(ctx, now)
	if poll && !s.poll(ctx, now) {
		return
	}
	for _, b := range s.state.live() {
		s.check(ctx, b, now)
	}
	s.scaleOut(ctx, now)
	s.state.forget(now.Add(-keepEnded))
	s.save()
}

// poll updates the blocks from the scheduler; false when it failed.
func (s *Scaler) poll(ctx context.Context, now time.Time) bool {
	live := slices.DeleteFunc(s.state.live(), func(b *blockRecord) bool { return b.Job == "" })
	if len(live) == 0 {
		return true
	}
	ids := make([]JobID, len(live))
	for i, b := range live {
		ids[i] = b.Job
	}
	st, err := s.prov.Poll(ctx, ids)
	if err != nil {
		s.failed(now, "poll its blocks", err)
		return false
	}
	s.succeeded()
	for _, b := range live {
		status, ok := st[b.Job]
		if !ok {
			status = Status{State: StateGone}
		}
		s.update(b, status, now)
	}
	return true
}

// update takes in what the scheduler says of b.
func (s *Scaler) update(b *blockRecord, st Status, now time.Time) {
	switch st.State {
	case StatePending:
		b.Reason = st.Reason
	case StateRunning:
		if b.Started.IsZero() {
			// The job started at most an interval ago: its end is reckoned
			// from then, so that no task is promised time the block lacks.
			b.Started = now
			b.Ends = now.Add(b.Walltime - s.c.Interval)
			b.Hosts = st.Nodes
			b.Reason = ""
			if b.State == string(StatePending) {
				b.State = string(StateRunning)
			}
			s.nodes.Started(b.Name, b.Ends)
			s.log.Info().Str("block", b.Name).Str("job", string(b.Job)).Strs("hosts", b.Hosts).Msg("block running")
		}
	case StateDone, StateGone:
		b.State = stateDone
		b.Ended = now
		if b.Reason == "" || st.Reason != "" {
			b.Reason = strings.TrimSpace(b.Reason + " " + st.Reason)
		}
		if b.Reason == "" {
			b.Reason = "ended; the scheduler keeps no record of how"
		}
		b.Ran = s.nodes.Use(b.Name).Ran
		s.nodes.Ended(b.Name)
		s.log.Info().Str("block", b.Name).Str("job", string(b.Job)).Str("reason", b.Reason).Int("tasks", b.Ran).Msg("block ended")
	}
}

// check drains or cancels b, running, as its nodes' use says.
func (s *Scaler) check(ctx context.Context, b *blockRecord, now time.Time) {
	if b.State == stateCancelling {
		s.cancel(ctx, b, now, "") // until the scheduler says it ended
		return
	}
	if b.Started.IsZero() {
		return
	}
	u := s.nodes.Use(b.Name)
	b.Ran = u.Ran // kept for when it has ended
	if u.Linked > 0 {
		b.EverLinked, b.Unlinked = true, time.Time{}
		s.slots = max(1, u.Slots/u.Linked)
	}
	switch {
	case !b.EverLinked && now.Sub(b.Started) > linkTimeout:
		s.log.Error().Str("block", b.Name).Str("job", string(b.Job)).Dur("dur", linkTimeout).
			Msg("block's agents never linked; check [batch] node_command, daemon_url and daemon_ca, and the block's output in the pool's log_dir (set one to keep it)")
		s.cancel(ctx, b, now, "its agents never linked")
	case b.EverLinked && u.Linked == 0 && b.Unlinked.IsZero():
		b.Unlinked = now
	case b.EverLinked && u.Linked == 0 && now.Sub(b.Unlinked) > s.c.Lease:
		s.log.Warn().Str("block", b.Name).Str("job", string(b.Job)).Msg("block's agents left or died; cancelling it (tasks that wait get a new block)")
		s.cancel(ctx, b, now, "its agents left or died")
	case b.State == stateDraining && u.Busy == 0:
		s.cancel(ctx, b, now, "drained")
	case b.State != stateDraining && now.After(b.Ends.Add(-s.drainBefore(b))):
		s.log.Info().Str("block", b.Name).Time("ends", b.Ends).Msg("block near its end; draining it")
		b.State = stateDraining
		s.nodes.Drain(b.Name)
	case u.Linked > 0 && u.Busy == 0 && !u.IdleSince.IsZero() && now.Sub(u.IdleSince) >= s.c.Pool.IdleTimeout.D() &&
		s.nodes.Waiting() == 0 && s.kept() > s.c.Pool.MinBlocks:
		s.nodes.Drain(b.Name)
		if s.nodes.Use(b.Name).Busy == 0 { // none taken since: nothing is cut
			s.cancel(ctx, b, now, fmt.Sprintf("idle for %s", s.c.Pool.IdleTimeout.D()))
		} else {
			b.State = stateDraining
		}
	}
}

// drainBefore is how long before its end b takes no more tasks.
func (s *Scaler) drainBefore(b *blockRecord) time.Duration {
	return min(max(2*s.c.Interval, time.Minute), b.Walltime/4)
}

// kept counts the blocks that serve, or will: neither draining nor
// cancelled.
func (s *Scaler) kept() int {
	n := 0
	for _, b := range s.state.live() {
		if b.State == stateSubmitting || b.State == string(StatePending) || b.State == string(StateRunning) {
			n++
		}
	}
	return n
}

// cancel cancels b's job, for why (given once; "" when retrying).
func (s *Scaler) cancel(ctx context.Context, b *blockRecord, now time.Time, why string) {
	if why != "" {
		b.State, b.Reason = stateCancelling, "cancelled: "+why
		s.nodes.Drain(b.Name)
	}
	if now.Before(s.retryAt) {
		return
	}
	if err := s.prov.Cancel(ctx, b.Job); err != nil {
		s.failed(now, "cancel block "+b.Name, err)
		return
	}
	s.succeeded()
	if why != "" {
		s.log.Info().Str("block", b.Name).Str("job", string(b.Job)).Str("reason", why).Msg("block cancelled")
	}
}

// scaleOut submits a block when the pool has fewer than min_blocks, or
// when tasks wait for nodes and no block is on its way (pending, or
// running with no agent linked yet), within max_blocks.
func (s *Scaler) scaleOut(ctx context.Context, now time.Time) {
	live, kept := len(s.state.live()), s.kept()
	if live >= s.c.Pool.MaxBlocks || now.Before(s.retryAt) {
		return
	}
	if s.c.ScaleOut != nil {
		s.c.ScaleOut.Lock()
		defer s.c.ScaleOut.Unlock()
	}
	waiting := s.nodes.Waiting()
	if kept < s.c.Pool.MinBlocks {
		s.submit(ctx, now, s.c.Pool.Nodes)
		return
	}
	if waiting == 0 {
		return
	}
	if slices.ContainsFunc(s.state.live(), onTheWay) {
		return // its slots may be enough
	}
	want := s.c.Pool.Nodes
	if s.slots > 0 {
		want = (waiting + s.slots - 1) / s.slots
	}
	s.submit(ctx, now, want)
}

// submit asks the scheduler for a block of up to want nodes, shaped to a
// window that starts now if the provider sees one. The block is recorded
// before it is submitted, so that a daemon that stops before it learns
// the job's id finds the job by its name when it starts again (resolve).
func (s *Scaler) submit(ctx context.Context, now time.Time, want int) {
	b, rec, err := s.newBlock(ctx, now, want)
	if err != nil {
		s.failed(now, "prepare a block", err)
		return
	}
	s.state.Blocks = append(s.state.Blocks, rec)
	s.countComing()
	if err := s.persist(); err != nil {
		s.drop(rec)
		s.failed(now, "record block "+rec.Name+" before submitting it; make the state directory writable", err)
		return
	}
	id, err := s.prov.Submit(ctx, b)
	if err != nil {
		s.failed(now, "submit block "+rec.Name, err)
		s.afterFailedSubmit(ctx, now, rec)
		s.save()
		return
	}
	s.succeeded()
	rec.Job, rec.State = id, string(StatePending)
	s.log.Info().Str("block", rec.Name).Str("job", string(id)).Int("nodes", rec.Nodes).Dur("walltime", rec.Walltime).
		Bool("shaped", rec.Shaped).Int("waiting", s.nodes.Waiting()).Msg("block submitted")
	s.save()
}

// newBlock names and shapes the pool's next block, of up to want nodes,
// mints its credential, and returns it with its record, not yet kept.
func (s *Scaler) newBlock(ctx context.Context, now time.Time, want int) (Block, *blockRecord, error) {
	p := s.c.Pool
	bounds := Bounds{Nodes: p.Nodes, Walltime: p.Walltime.D(), MinNodes: p.MinNodes, MaxNodes: p.MaxNodes, MinWalltime: p.MinWalltime.D()}
	nodes, walltime, fits := Shape(bounds, s.windows(ctx), want)
	s.state.Seq++
	name := fmt.Sprintf("%s-%d", s.namePrefix(), s.state.Seq)
	token, err := s.nodes.Mint(name, walltime+credentialSlack)
	if err != nil {
		return Block{}, nil, fmt.Errorf("mint a credential for block %s: %w", name, err)
	}
	env := map[string]string{"FXD_BLOCK": name, "FXD_NODE_TOKEN": token}
	for k, v := range s.c.Env {
		env[k] = v
	}
	b := Block{Name: name, Nodes: nodes, Walltime: walltime, Init: p.WorkerInit, Command: s.c.Command, Env: env, Options: p.Options, LogDir: p.LogDir}
	rec := &blockRecord{Name: name, State: stateSubmitting, Nodes: nodes, Walltime: walltime, Shaped: fits, Submitted: now}
	return b, rec, nil
}

// windows are the scheduler's free windows for the pool's blocks, if the
// provider sees them.
func (s *Scaler) windows(ctx context.Context) []Window {
	wf, ok := s.prov.(WindowFinder)
	if !ok {
		return nil
	}
	p := s.c.Pool
	ws, err := wf.Windows(ctx, Block{Name: s.namePrefix(), Nodes: p.MaxNodes, Walltime: p.Walltime.D(), Options: p.Options})
	if err != nil {
		s.log.Warn().Err(err).Msg("ask the scheduler for free windows; submitting the configured shape")
	}
	return ws
}

// afterFailedSubmit settles rec, whose submit failed: the scheduler may
// have taken the job all the same (a command that timed out after the
// controller accepted it), which a Finder tells; then the scheduler works,
// and the backoff is cleared. Without a Finder, rec is dropped; when the
// Finder fails too, rec stays for a later step (resolve).
func (s *Scaler) afterFailedSubmit(ctx context.Context, now time.Time, rec *blockRecord) {
	f, ok := s.prov.(Finder)
	if !ok {
		s.drop(rec)
		return
	}
	if !s.trySettle(ctx, f, rec, now) {
		s.holdSettling(now)
	} else if rec.Job != "" {
		s.succeeded()
	}
}

// resolve settles the blocks recorded without a job id, whose submit was
// cut short by a daemon that stopped or a Finder that failed. A block the
// scheduler cannot be asked about is skipped, and asked about again after
// a backoff, so that the rest of the pool is kept meanwhile.
func (s *Scaler) resolve(ctx context.Context, now time.Time) {
	f, finder := s.prov.(Finder)
	held, tried, failed := now.Before(s.settleAt), false, false
	for _, b := range s.state.live() {
		switch {
		case b.Job != "":
		case !finder:
			s.log.Warn().Str("block", b.Name).Msg("block was being submitted when the daemon stopped, and this provider cannot find jobs by name: " +
				"if the scheduler has a job of this name, cancel it by hand")
			s.drop(b)
		case held:
		default:
			tried = true
			if !s.trySettle(ctx, f, b, now) {
				failed = true
			}
		}
	}
	switch {
	case failed:
		s.holdSettling(now)
	case tried:
		s.settleBackoff = 0
	}
}

// trySettle settles b (settle); false when the scheduler could not be
// asked and b is kept, for a later step. The failure is logged; a block
// that could not be settled for linkTimeout is dropped instead, with a
// warning naming the job that an operator should cancel by hand if the
// scheduler has it.
func (s *Scaler) trySettle(ctx context.Context, f Finder, b *blockRecord, now time.Time) bool {
	err := s.settle(ctx, f, b)
	if err == nil {
		return true
	}
	if b.unsettled.IsZero() {
		b.unsettled = now
	}
	if now.Sub(b.unsettled) > linkTimeout {
		s.log.Warn().Err(err).Str("block", b.Name).Dur("dur", now.Sub(b.unsettled)).
			Msg("block's submit was cut short, and the scheduler could not be asked whether it took the job since; " +
				"forgetting the block and revoking its credential: if the scheduler has a job named " + b.Name +
				", cancel it by hand (" + cancelHint(s.c.Pool.Provider, b.Name) + ")")
		s.drop(b)
		return true
	}
	s.log.Error().Err(err).Str("block", b.Name).Dur("retry_in", s.nextBackoff(s.settleBackoff)).
		Msg("ask the scheduler whether it took block " + b.Name + "; the pool's other blocks are kept meanwhile")
	return false
}

// holdSettling holds off settling blocks for a doubling backoff, after
// the scheduler could not be asked about one.
func (s *Scaler) holdSettling(now time.Time) {
	s.settleBackoff = s.nextBackoff(s.settleBackoff)
	s.settleAt = now.Add(s.settleBackoff)
}

// cancelHint says how to cancel by hand the daemon's user's jobs named
// name on provider's scheduler.
func cancelHint(provider, name string) string {
	switch provider {
	case "slurm":
		return "as the daemon's user: scancel --name=" + name
	case "pbs":
		return "as the daemon's user: qselect -N " + name + " | xargs qdel"
	}
	return "with the scheduler's cancel command, as the daemon's user"
}

// settle asks f for the jobs named as b, which has no job id: the first
// is adopted as b's and any other is cancelled; with none, b's submit
// never reached the scheduler, and b is dropped.
func (s *Scaler) settle(ctx context.Context, f Finder, b *blockRecord) error {
	ids, err := f.Find(ctx, b.Name)
	if err != nil {
		return fmt.Errorf("find the jobs of block %s: %w", b.Name, err)
	}
	if len(ids) == 0 {
		s.log.Info().Str("block", b.Name).Msg("block's submit never reached the scheduler; dropped")
		s.drop(b)
		return nil
	}
	for _, id := range ids[1:] {
		if err := s.prov.Cancel(ctx, id); err != nil {
			return fmt.Errorf("cancel job %s, a second job of block %s: %w", id, b.Name, err)
		}
		s.log.Warn().Str("block", b.Name).Str("job", string(id)).Msg("cancelled a second job of the block")
	}
	b.Job, b.State = ids[0], string(StatePending)
	s.log.Warn().Str("block", b.Name).Str("job", string(b.Job)).
		Msg("block's submit did not return its job id, but the scheduler has a job of its name; adopted it")
	return nil
}

// drop forgets b, which has no job, and revokes its credential.
func (s *Scaler) drop(b *blockRecord) {
	s.state.Blocks = slices.DeleteFunc(s.state.Blocks, func(x *blockRecord) bool { return x == b })
	s.nodes.Ended(b.Name)
}

// failed logs a scheduler command that failed (its error carries the
// command's stderr) and holds off the next for a doubling backoff.
func (s *Scaler) failed(now time.Time, what string, err error) {
	s.backoff = s.nextBackoff(s.backoff)
	s.retryAt = now.Add(s.backoff)
	s.log.Error().Err(err).Dur("retry_in", s.backoff).Msg(what)
}

// nextBackoff is the wait after a failure that follows one of d: double,
// from the poll interval up to maxBackoff.
func (s *Scaler) nextBackoff(d time.Duration) time.Duration {
	return min(max(2*d, s.c.Interval), maxBackoff)
}

func (s *Scaler) succeeded() { s.backoff = 0 }

// save records the blocks when they changed; a failure is logged, and
// the next step tries again.
func (s *Scaler) save() {
	if err := s.persist(); err != nil {
		s.log.Error().Err(err).Msg("record the pool's blocks; a restarted daemon may not know them")
	}
}

// persist writes the blocks to c.StateFile when they changed.
func (s *Scaler) persist() error {
	data, err := s.state.encode()
	if err != nil {
		return fmt.Errorf("encode the pool's blocks: %w", err)
	}
	if bytes.Equal(data, s.saved) {
		return nil
	}
	if err := atomicfile.Write(s.c.StateFile, data, 0o600); err != nil {
		return fmt.Errorf("write the pool's blocks to %s: %w", s.c.StateFile, err)
	}
	s.saved = data
	return nil
}

// namePrefix is the start of the pool's block names: "fxd-<site>-<pool>",
// or "fxd-<pool>" without a site.
func (s *Scaler) namePrefix() string {
	if s.c.Site == "" {
		return "fxd-" + s.c.Pool.Name
	}
	return "fxd-" + s.c.Site + "-" + s.c.Pool.Name
}

// onTheWay says whether b will bring nodes that have not linked yet: it
// is being submitted, pends, or runs with no agent linked so far.
func onTheWay(b *blockRecord) bool {
	return b.State == stateSubmitting || b.State == string(StatePending) || b.State == string(StateRunning) && !b.EverLinked
}

// countComing records, for Coming, the task slots of the blocks on their
// way. The caller holds s.mu.
func (s *Scaler) countComing() {
	n := 0
	for _, b := range s.state.live() {
		if onTheWay(b) {
			n += b.Nodes * max(s.slots, 1)
		}
	}
	s.coming.Store(int64(n))
}

// Coming is how many task slots the pool's blocks on their way will
// bring, at the slots per node its linked nodes had (one before any has
// linked): the demand they will meet, which other pools need not. It
// takes no lock, so that pools can ask each other while they step.
func (s *Scaler) Coming() int { return int(s.coming.Load()) }

// Blocks lists the pool's blocks, oldest first.
func (s *Scaler) Blocks() []api.Block {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]api.Block, 0, len(s.state.Blocks))
	for _, b := range s.state.Blocks {
		a := api.Block{Pool: s.c.Pool.Name, Name: b.Name, Job: string(b.Job), State: b.State, Nodes: b.Nodes,
			Walltime: api.Duration(b.Walltime), Shaped: b.Shaped, Hosts: slices.Clone(b.Hosts), Ran: b.Ran,
			Submitted: b.Submitted, Started: b.Started, Ends: b.Ends, Ended: b.Ended, Reason: b.Reason}
		if b.State != stateDone {
			u := s.nodes.Use(b.Name)
			a.Linked, a.Ran = u.Linked, u.Ran
		}
		out = append(out, a)
	}
	return out
}

// Pool is the pool's name.
func (s *Scaler) Pool() string { return s.c.Pool.Name }
