package batch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/conf"
)

// fakeProvider is a scheduler the test drives: jobs stay as the test
// sets them.
type fakeProvider struct {
	mu        sync.Mutex
	seq       int
	submitted []Block
	jobs      map[JobID]Status
	cancelled []JobID
	windows   []Window
	submitErr error
	pollErr   error
	cancelErr error
	pollOut   map[JobID]Status // when set, Poll returns it instead of jobs
	names     map[JobID]string // each job's name, for Find
	findErr   error
	finds     int
	// acceptErr is returned by Submit after the scheduler took the job
	// (a command that timed out after the controller accepted it).
	acceptErr error
	// crashBefore and crashAfter, when set, run in Submit before the
	// scheduler takes the job and after: where a daemon may die.
	crashBefore, crashAfter func()
}

func (p *fakeProvider) Submit(_ context.Context, b Block) (JobID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.crashBefore != nil {
		p.crashBefore()
	}
	if p.submitErr != nil {
		return "", p.submitErr
	}
	id := p.addLocked(b.Name, Status{State: StatePending, Reason: "Resources"})
	p.submitted = append(p.submitted, b)
	if p.crashAfter != nil {
		p.crashAfter()
	}
	if p.acceptErr != nil {
		return "", p.acceptErr
	}
	return id, nil
}

// addLocked makes a job named name, as if submitted, and returns its id.
func (p *fakeProvider) addLocked(name string, st Status) JobID {
	p.seq++
	id := JobID(fmt.Sprint(100 + p.seq))
	if p.names == nil {
		p.names = map[JobID]string{}
	}
	p.jobs[id], p.names[id] = st, name
	return id
}

func (p *fakeProvider) Find(_ context.Context, name string) ([]JobID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finds++
	if p.findErr != nil {
		return nil, p.findErr
	}
	var ids []JobID
	for id, n := range p.names {
		if st := p.jobs[id].State; n == name && (st == StatePending || st == StateRunning) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// noFinder is a provider that cannot find jobs by name.
type noFinder struct{ Provider }

func (p *fakeProvider) Poll(_ context.Context, ids []JobID) (map[JobID]Status, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pollErr != nil {
		return nil, p.pollErr
	}
	if p.pollOut != nil {
		return p.pollOut, nil
	}
	out := map[JobID]Status{}
	for _, id := range ids {
		if st, ok := p.jobs[id]; ok {
			out[id] = st
		}
	}
	return out, nil
}

func (p *fakeProvider) Cancel(_ context.Context, id JobID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancelErr != nil {
		return p.cancelErr
	}
	p.cancelled = append(p.cancelled, id)
	p.jobs[id] = Status{State: StateDone, Reason: "CANCELLED"}
	return nil
}

func (p *fakeProvider) Windows(context.Context, Block) ([]Window, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.windows, nil
}

func (p *fakeProvider) set(id JobID, st Status) {
	p.mu.Lock()
	p.jobs[id] = st
	p.mu.Unlock()
}

// fakeNodes is the daemon side the test drives.
type fakeNodes struct {
	mu      sync.Mutex
	waiting int
	uses    map[string]Use
	minted  map[string]time.Duration
	ends    map[string]time.Time
	drained map[string]bool
	ended   map[string]bool
	mintErr error
}

func (n *fakeNodes) Waiting() int { n.mu.Lock(); defer n.mu.Unlock(); return n.waiting }
func (n *fakeNodes) Use(b string) Use {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.uses[b]
}
func (n *fakeNodes) Mint(b string, ttl time.Duration) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mintErr != nil {
		return "", n.mintErr
	}
	n.minted[b] = ttl
	return "token-" + b, nil
}
func (n *fakeNodes) Started(b string, ends time.Time) { n.mu.Lock(); n.ends[b] = ends; n.mu.Unlock() }
func (n *fakeNodes) Drain(b string)                   { n.mu.Lock(); n.drained[b] = true; n.mu.Unlock() }
func (n *fakeNodes) Ended(b string)                   { n.mu.Lock(); n.ended[b] = true; n.mu.Unlock() }
func (n *fakeNodes) setUse(b string, u Use)           { n.mu.Lock(); n.uses[b] = u; n.mu.Unlock() }
func (n *fakeNodes) setWaiting(w int)                 { n.mu.Lock(); n.waiting = w; n.mu.Unlock() }

type scalerRig struct {
	t       *testing.T
	s       *Scaler
	prov    *fakeProvider
	nodes   *fakeNodes
	now     time.Time
	ctx     context.Context
	file    string
	crashed []byte // the state file as a daemon that died left it
}

func testPool() conf.Pool {
	return conf.Pool{Name: "cpu", Provider: "local", Nodes: 1, MinNodes: 1, MaxNodes: 4,
		Walltime: conf.Duration(time.Hour), MinWalltime: conf.Duration(10 * time.Minute),
		MaxBlocks: 2, IdleTimeout: conf.Duration(time.Minute)}
}

func newRig(t *testing.T, pool conf.Pool) *scalerRig {
	t.Helper()
	r := &scalerRig{t: t, now: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), ctx: context.Background(),
		prov:  &fakeProvider{jobs: map[JobID]Status{}},
		nodes: &fakeNodes{uses: map[string]Use{}, minted: map[string]time.Duration{}, ends: map[string]time.Time{}, drained: map[string]bool{}, ended: map[string]bool{}},
		file:  filepath.Join(t.TempDir(), "pool-cpu.json"),
	}
	r.s = r.scaler(pool)
	return r
}

// scaler makes a Scaler on the rig's provider, nodes, clock and file.
func (r *scalerRig) scaler(pool conf.Pool) *Scaler {
	r.t.Helper()
	return r.scalerOn(pool, r.prov, zerolog.Nop())
}

// scalerOn makes a Scaler on prov, logging to log, with the rig's nodes,
// clock and file.
func (r *scalerRig) scalerOn(pool conf.Pool, prov Provider, log zerolog.Logger) *Scaler {
	r.t.Helper()
	s, err := NewScaler(ScalerConfig{Pool: pool, Interval: 10 * time.Second, Lease: time.Minute,
		Command: []string{"fxd", "node"}, Env: map[string]string{"FXD_DAEMON": "https://login:8443"}, StateFile: r.file},
		prov, r.nodes, log)
	if err != nil {
		r.t.Fatal(err)
	}
	s.now = func() time.Time { return r.now }
	return s
}

// step advances the clock by d and takes one polling step.
func (r *scalerRig) step(d time.Duration) {
	r.now = r.now.Add(d)
	r.s.Step(r.ctx, true)
}

// runBlock has a task wait, so that block fxd-cpu-1 is submitted, and
// the scheduler start it as job 101 on host n1.
func (r *scalerRig) runBlock() {
	r.nodes.setWaiting(1)
	r.step(0)
	r.prov.set("101", Status{State: StateRunning, Nodes: []string{"n1"}})
	r.step(10 * time.Second)
}

func (r *scalerRig) state(name string) string {
	r.t.Helper()
	for _, b := range r.s.Blocks() {
		if b.Name == name {
			return b.State
		}
	}
	return "absent"
}

func (r *scalerRig) submits() int {
	r.prov.mu.Lock()
	defer r.prov.mu.Unlock()
	return len(r.prov.submitted)
}

func TestNoDemandNoBlock(t *testing.T) {
	r := newRig(t, testPool())
	r.step(0)
	r.step(time.Minute)
	if n := r.submits(); n != 0 {
		t.Fatalf("%d blocks submitted with no task waiting", n)
	}
}

func TestScaleOutOneBlockOnItsWay(t *testing.T) {
	r := newRig(t, testPool())
	r.nodes.setWaiting(5)
	r.step(0)
	if n := r.submits(); n != 1 {
		t.Fatalf("submitted %d blocks for waiting tasks, want 1", n)
	}
	b := r.prov.submitted[0]
	if b.Name != "fxd-cpu-1" || b.Env["FXD_BLOCK"] != "fxd-cpu-1" || b.Env["FXD_NODE_TOKEN"] != "token-fxd-cpu-1" ||
		b.Env["FXD_DAEMON"] != "https://login:8443" || len(b.Command) != 2 {
		t.Errorf("block submitted as %+v", b)
	}
	if r.nodes.minted["fxd-cpu-1"] < time.Hour {
		t.Errorf("credential lasts %s, less than the walltime", r.nodes.minted["fxd-cpu-1"])
	}
	// pending: no second block while the first is on its way
	r.step(10 * time.Second)
	r.prov.set("101", Status{State: StateRunning, Nodes: []string{"n1"}})
	r.step(10 * time.Second)
	if n := r.submits(); n != 1 {
		t.Fatalf("submitted %d blocks while one was on its way, want 1", n)
	}
	if got := r.state("fxd-cpu-1"); got != "running" {
		t.Fatalf("block is %s, want running", got)
	}
	if _, ok := r.nodes.ends["fxd-cpu-1"]; !ok {
		t.Error("the daemon was not told when the running block ends")
	}
	// linked, its slots full, tasks still wait: a second block, sized to the demand
	r.nodes.setUse("fxd-cpu-1", Use{Linked: 1, Slots: 2, Busy: 2})
	r.nodes.setWaiting(5)
	r.prov.mu.Lock()
	r.prov.windows = []Window{{Nodes: 8, Duration: 0}}
	r.prov.mu.Unlock()
	r.step(10 * time.Second)
	if n := r.submits(); n != 2 {
		t.Fatalf("submitted %d blocks, want a second one", n)
	}
	if got := r.prov.submitted[1].Nodes; got != 3 {
		t.Errorf("second block has %d nodes, want 3 (5 tasks at 2 slots a node)", got)
	}
	// max_blocks reached
	r.prov.set("102", Status{State: StateRunning, Nodes: []string{"n2"}})
	r.nodes.setUse("fxd-cpu-2", Use{Linked: 3, Slots: 6, Busy: 6})
	r.step(10 * time.Second)
	r.step(10 * time.Second)
	if n := r.submits(); n != 2 {
		t.Fatalf("submitted %d blocks, beyond max_blocks 2", n)
	}
}

func TestShapedToWindow(t *testing.T) {
	r := newRig(t, testPool())
	r.prov.windows = []Window{{Nodes: 2, Duration: 25*time.Minute + 30*time.Second}}
	r.nodes.setWaiting(1)
	r.step(0)
	if r.submits() != 1 {
		t.Fatal("no block submitted")
	}
	if b := r.prov.submitted[0]; b.Walltime != 25*time.Minute || b.Nodes != 1 {
		t.Errorf("block shaped %d nodes × %s, want 1 × 25m (the window, in whole minutes)", b.Nodes, b.Walltime)
	}
	if !r.s.Blocks()[0].Shaped {
		t.Error("block not reported as shaped to a window")
	}
}

func TestIdleBlockCancelledAboveMin(t *testing.T) {
	r := newRig(t, testPool())
	r.runBlock()
	r.nodes.setWaiting(0)
	r.nodes.setUse("fxd-cpu-1", Use{Linked: 1, Slots: 1, Busy: 0, Ran: 3, IdleSince: r.now})
	r.step(30 * time.Second)
	if len(r.prov.cancelled) != 0 {
		t.Fatal("block cancelled before its idle timeout")
	}
	r.step(40 * time.Second)
	if len(r.prov.cancelled) != 1 || r.state("fxd-cpu-1") != stateCancelling {
		t.Fatalf("idle block not cancelled: cancels %v, state %s", r.prov.cancelled, r.state("fxd-cpu-1"))
	}
	if !r.nodes.drained["fxd-cpu-1"] {
		t.Error("the cancelled block's nodes were not drained first")
	}
	r.step(10 * time.Second) // the scheduler says it ended
	if got := r.state("fxd-cpu-1"); got != stateDone {
		t.Fatalf("block is %s after the scheduler ended it, want done", got)
	}
	if !r.nodes.ended["fxd-cpu-1"] {
		t.Error("the ended block's credential was not revoked")
	}
	if b := r.s.Blocks()[0]; b.Ran != 3 || b.Reason == "" {
		t.Errorf("ended block reports ran %d, reason %q", b.Ran, b.Reason)
	}
	r.step(keepEnded + time.Minute)
	if len(r.s.Blocks()) != 0 {
		t.Error("ended block still listed after keepEnded")
	}
}

func TestMinBlocksKeptIdle(t *testing.T) {
	p := testPool()
	p.MinBlocks = 1
	r := newRig(t, p)
	r.step(0)
	if r.submits() != 1 {
		t.Fatalf("submitted %d blocks for min_blocks 1", r.submits())
	}
	r.prov.set("101", Status{State: StateRunning})
	r.step(10 * time.Second)
	r.nodes.setUse("fxd-cpu-1", Use{Linked: 1, Slots: 1, IdleSince: r.now})
	r.step(time.Hour / 2)
	if len(r.prov.cancelled) != 0 || r.submits() != 1 {
		t.Fatalf("min block given back or duplicated: cancels %v, submits %d", r.prov.cancelled, r.submits())
	}
}

func TestInitBlocksAtFirstStart(t *testing.T) {
	p := testPool()
	p.InitBlocks = 2
	r := newRig(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.s.Run(ctx, func() <-chan struct{} { return nil })
		close(done)
	}()
	deadline := time.After(10 * time.Second)
	for r.submits() < 2 {
		select {
		case <-deadline:
			t.Fatalf("init_blocks 2 submitted %d", r.submits())
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	<-done
	// a restarted daemon finds them and does not submit init blocks again
	r.s = r.scaler(p)
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() {
		r.s.Run(ctx, func() <-chan struct{} { return nil })
		close(done)
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	if r.submits() != 2 {
		t.Fatalf("a restart submitted init blocks again: %d in all", r.submits())
	}
}

func TestDrainNearEnd(t *testing.T) {
	p := testPool()
	p.MinBlocks = 1
	r := newRig(t, p)
	r.step(0)
	r.prov.set("101", Status{State: StateRunning})
	r.step(10 * time.Second)
	r.nodes.setUse("fxd-cpu-1", Use{Linked: 1, Slots: 1, Busy: 1})
	ends := r.nodes.ends["fxd-cpu-1"]
	if ends.After(r.now.Add(time.Hour)) {
		t.Fatalf("block said to end %s, after its walltime from now", ends)
	}
	r.now = ends.Add(-2 * time.Minute)
	r.s.Step(r.ctx, true)
	if r.state("fxd-cpu-1") == stateDraining {
		t.Fatal("drained 2 minutes before its end, with a drain margin of 1 minute")
	}
	r.now = ends.Add(-30 * time.Second)
	r.s.Step(r.ctx, true)
	if r.state("fxd-cpu-1") != stateDraining || !r.nodes.drained["fxd-cpu-1"] {
		t.Fatalf("block near its end is %s, want draining", r.state("fxd-cpu-1"))
	}
	if len(r.prov.cancelled) != 0 {
		t.Fatal("draining block cancelled while its node runs a task")
	}
	// min_blocks 1 and the draining block does not count: a new block
	if r.submits() != 2 {
		t.Errorf("no replacement submitted for the draining min block: %d submits", r.submits())
	}
	r.nodes.setUse("fxd-cpu-1", Use{Linked: 1, Slots: 1, Busy: 0, IdleSince: r.now})
	r.step(10 * time.Second)
	if len(r.prov.cancelled) != 1 {
		t.Fatal("drained block with no task left was not given back")
	}
}

func TestAgentsGoneCancelledAndReplaced(t *testing.T) {
	r := newRig(t, testPool())
	r.runBlock()
	r.nodes.setUse("fxd-cpu-1", Use{Linked: 1, Slots: 1, Busy: 1})
	r.step(10 * time.Second)
	// the agent dies; its task is requeued by the daemon and waits
	r.nodes.setUse("fxd-cpu-1", Use{})
	r.step(10 * time.Second)
	r.step(30 * time.Second)
	if len(r.prov.cancelled) != 0 {
		t.Fatal("block cancelled before the lease ran out")
	}
	r.step(40 * time.Second)
	if len(r.prov.cancelled) != 1 {
		t.Fatal("block whose agent died was not cancelled after the lease")
	}
	r.step(10 * time.Second) // ended; the waiting task gets a new block
	if r.submits() != 2 {
		t.Fatalf("no replacement block: %d submits", r.submits())
	}
}

func TestNeverLinkedGivenUp(t *testing.T) {
	r := newRig(t, testPool())
	r.runBlock()
	r.step(linkTimeout - time.Minute)
	if len(r.prov.cancelled) != 0 {
		t.Fatal("block cancelled before the link timeout")
	}
	r.step(2 * time.Minute)
	if len(r.prov.cancelled) != 1 {
		t.Fatal("block whose agents never linked was kept")
	}
	if b := r.s.Blocks()[0]; b.Reason != "cancelled: its agents never linked" {
		t.Errorf("reason %q", b.Reason)
	}
}

func TestSchedulerFailuresBackOff(t *testing.T) {
	r := newRig(t, testPool())
	r.nodes.setWaiting(1)
	r.prov.submitErr = errors.New("sbatch: error: Slurm controller not responding")
	r.step(0)
	r.step(time.Second)
	r.step(time.Second)
	if r.submits() != 0 {
		t.Fatal("submit succeeded with an error")
	}
	if got := r.s.backoff; got != 10*time.Second {
		t.Fatalf("backoff %s after one failure, want the interval (retries within it are held)", got)
	}
	r.step(10 * time.Second) // fails again: the backoff doubles
	if got := r.s.backoff; got != 20*time.Second {
		t.Fatalf("backoff %s after a second failure, want 20s", got)
	}
	for range 20 {
		r.step(maxBackoff)
	}
	if r.s.backoff != maxBackoff {
		t.Fatalf("backoff %s, want bounded at %s", r.s.backoff, maxBackoff)
	}
	if !r.nodes.ended["fxd-cpu-1"] {
		t.Error("the credential minted for a block that was never submitted was not revoked")
	}
	r.prov.submitErr = nil
	r.step(maxBackoff)
	if r.submits() != 1 || r.s.backoff != 0 {
		t.Fatalf("after the scheduler came back: %d submits, backoff %s", r.submits(), r.s.backoff)
	}

	r.prov.pollErr = fmt.Errorf("squeue: %w", ErrBadOutput)
	r.prov.set("101", Status{State: StateRunning})
	r.step(10 * time.Second)
	if got := r.state(r.s.Blocks()[0].Name); got != "pending" {
		t.Fatalf("block %s after a failed poll, want it unchanged", got)
	}
	r.prov.pollErr = nil
	r.step(10 * time.Second)
	if got := r.state(r.s.Blocks()[0].Name); got != "running" {
		t.Fatalf("block %s after the poll came back, want running", got)
	}

	r.prov.cancelErr = errors.New("scancel: error: Kill job error on job id 101")
	r.nodes.setWaiting(0)
	r.nodes.setUse(r.s.Blocks()[0].Name, Use{Linked: 1, Slots: 1, IdleSince: r.now})
	r.step(2 * time.Minute)
	if len(r.prov.cancelled) != 0 || r.state(r.s.Blocks()[0].Name) != stateCancelling {
		t.Fatal("failed cancel not kept as cancelling")
	}
	r.prov.cancelErr = nil
	r.step(time.Minute)
	if len(r.prov.cancelled) != 1 {
		t.Fatal("cancel not retried after the scheduler came back")
	}
}

func TestUnknownJobsEndBlocks(t *testing.T) {
	r := newRig(t, testPool())
	r.nodes.setWaiting(1)
	r.step(0)
	r.prov.mu.Lock()
	r.prov.pollOut = map[JobID]Status{"999": {State: StateRunning}} // not ours; ours missing
	r.prov.mu.Unlock()
	r.nodes.setWaiting(0)
	r.step(10 * time.Second)
	if got := r.state("fxd-cpu-1"); got != stateDone {
		t.Fatalf("block the scheduler no longer knows is %s, want done", got)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	r := newRig(t, testPool())
	r.runBlock()
	first, err := os.ReadFile(r.file)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(r.file)
	r.step(10 * time.Second) // nothing changed: nothing written
	if st2, _ := os.Stat(r.file); !st2.ModTime().Equal(st.ModTime()) {
		t.Error("state file rewritten with nothing changed")
	}

	r.s = r.scaler(testPool())
	bs := r.s.Blocks()
	if len(bs) != 1 || bs[0].Job != "101" || bs[0].State != "running" || len(bs[0].Hosts) != 1 {
		t.Fatalf("restarted scaler knows %+v; file:\n%s", bs, first)
	}
	r.nodes.setUse("fxd-cpu-1", Use{Linked: 1, Slots: 1, Busy: 1})
	r.nodes.setWaiting(3)
	r.step(10 * time.Second)
	if r.submits() != 2 || r.prov.submitted[1].Name != "fxd-cpu-2" {
		t.Fatalf("restarted scaler reused a block name or did not scale: %+v", r.prov.submitted)
	}
}

func TestCorruptStateRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pool.json")
	if err := os.WriteFile(file, []byte("{\"seq\": 3, \"blocks\": [nul"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewScaler(ScalerConfig{Pool: testPool(), Command: []string{"x"}, StateFile: file}, &fakeProvider{}, &fakeNodes{}, zerolog.Nop())
	if err == nil {
		t.Fatal("corrupt state file accepted")
	}
	t.Log(err)
}

// snapshot keeps the state file as it is now: what a daemon killed now
// leaves behind.
func (r *scalerRig) snapshot() {
	data, err := os.ReadFile(r.file)
	if err != nil {
		r.t.Error(err)
	}
	r.crashed = data
}

// restart puts back the snapshot's state file and starts a new Scaler on
// prov from it, as a daemon restarted after the crash; the daemon's side
// forgets which credentials were revoked.
func (r *scalerRig) restart(prov Provider, log zerolog.Logger) {
	r.t.Helper()
	if err := os.WriteFile(r.file, r.crashed, 0o600); err != nil {
		r.t.Fatal(err)
	}
	r.nodes.mu.Lock()
	r.nodes.ended = map[string]bool{}
	r.nodes.mu.Unlock()
	r.s = r.scalerOn(testPool(), prov, log)
}

// A daemon that dies while it submits a block leaves the block recorded
// with no job id; the restarted one adopts the job the scheduler has
// under the block's name, cancels any second one, or drops the record
// when the scheduler has none (and a task that waits gets a new block).
func TestRestartAfterCrashInSubmit(t *testing.T) {
	for _, tc := range []struct {
		name       string
		after      bool // died after the scheduler took the job
		extra      int  // more jobs of the block's name
		finder     bool
		wantJob    JobID
		wantCancel []JobID
		wantNames  []string // the blocks submitted, in all
	}{
		{name: "after submit", after: true, finder: true, wantJob: "101", wantNames: []string{"fxd-cpu-1"}},
		{name: "before submit", finder: true, wantNames: []string{"fxd-cpu-2"}},
		{name: "duplicates", after: true, extra: 2, finder: true, wantJob: "101", wantCancel: []JobID{"102", "103"}, wantNames: []string{"fxd-cpu-1"}},
		{name: "no finder", after: true, wantNames: []string{"fxd-cpu-1", "fxd-cpu-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, testPool())
			if tc.after {
				r.prov.crashAfter = r.snapshot
			} else {
				r.prov.crashBefore = r.snapshot
				r.prov.submitErr = errors.New("the daemon died before sbatch ran")
			}
			r.nodes.setWaiting(1)
			r.step(0)
			r.prov.crashAfter, r.prov.crashBefore, r.prov.submitErr = nil, nil, nil
			r.prov.mu.Lock()
			for range tc.extra {
				r.prov.addLocked("fxd-cpu-1", Status{State: StatePending})
			}
			r.prov.mu.Unlock()

			var prov Provider = r.prov
			var logs strings.Builder
			if !tc.finder {
				prov = noFinder{r.prov}
			}
			r.restart(prov, zerolog.New(&logs))
			if bs := r.s.Blocks(); len(bs) != 1 || bs[0].State != stateSubmitting || bs[0].Job != "" || bs[0].Name != "fxd-cpu-1" {
				t.Fatalf("after the crash, Blocks = %+v; want fxd-cpu-1 submitting, with no job", bs)
			}
			r.step(10 * time.Second)
			if got := r.state("fxd-cpu-1"); tc.wantJob != "" && got != string(StatePending) || tc.wantJob == "" && got != "absent" {
				t.Errorf("fxd-cpu-1 is %s after the restart", got)
			}
			if bs := r.s.Blocks(); tc.wantJob != "" && (len(bs) == 0 || bs[0].Job != string(tc.wantJob)) {
				t.Errorf("Blocks = %+v, want fxd-cpu-1 adopted as job %s", bs, tc.wantJob)
			}
			if !slices.Equal(r.prov.cancelled, tc.wantCancel) {
				t.Errorf("cancelled %v, want %v", r.prov.cancelled, tc.wantCancel)
			}
			if r.nodes.ended["fxd-cpu-1"] != (tc.wantJob == "") {
				t.Errorf("fxd-cpu-1's credential revoked: %v, want %v", r.nodes.ended["fxd-cpu-1"], tc.wantJob == "")
			}
			var names []string
			for _, b := range r.prov.submitted {
				names = append(names, b.Name)
			}
			if !slices.Equal(names, tc.wantNames) {
				t.Errorf("blocks submitted: %v, want %v", names, tc.wantNames)
			}
			if !tc.finder && !strings.Contains(logs.String(), "cannot find jobs by name") {
				t.Errorf("no warning that the provider cannot find jobs by name; log:\n%s", logs.String())
			}
		})
	}
}

// A submit that fails after the scheduler took the job (sbatch timed out)
// is settled at once: the job is adopted, not left to hold nodes, and the
// scheduler, which took it, is not backed off from.
func TestSubmitErrorButAccepted(t *testing.T) {
	r := newRig(t, testPool())
	r.prov.acceptErr = errors.New("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation")
	r.nodes.setWaiting(1)
	r.step(0)
	if bs := r.s.Blocks(); len(bs) != 1 || bs[0].Job != "101" || bs[0].State != string(StatePending) {
		t.Fatalf("Blocks = %+v, want fxd-cpu-1 adopted as job 101", bs)
	}
	if r.s.backoff != 0 {
		t.Errorf("backoff %s after the failed submit's job was adopted, want it cleared", r.s.backoff)
	}
	r.prov.acceptErr = nil
	r.step(time.Minute)
	if r.submits() != 1 {
		t.Errorf("%d submits, want 1: the adopted block is on its way", r.submits())
	}
}

// A record whose job the scheduler cannot be asked about stays, on its
// way (no second block for the same demand), until it can.
func TestSettleRetried(t *testing.T) {
	r := newRig(t, testPool())
	r.prov.acceptErr = errors.New("sbatch: error: Socket timed out")
	r.prov.findErr = errors.New("squeue: error: slurm_load_jobs error: Socket timed out")
	r.nodes.setWaiting(1)
	r.step(0)
	r.prov.acceptErr = nil
	if got := r.state("fxd-cpu-1"); got != stateSubmitting {
		t.Fatalf("fxd-cpu-1 is %s while the scheduler cannot be asked, want submitting", got)
	}
	r.step(time.Minute)
	if got := r.state("fxd-cpu-1"); got != stateSubmitting || r.submits() != 1 {
		t.Fatalf("fxd-cpu-1 is %s, %d submits, while the scheduler cannot be asked; want submitting, 1", got, r.submits())
	}
	r.prov.findErr = nil
	r.step(time.Minute)
	if bs := r.s.Blocks(); len(bs) != 1 || bs[0].Job != "101" {
		t.Fatalf("Blocks = %+v, want fxd-cpu-1 adopted as job 101", bs)
	}
}

// A submit the scheduler refused leaves no record, and asks whether the
// scheduler took it after all.
func TestSubmitRefusedLeavesNoRecord(t *testing.T) {
	r := newRig(t, testPool())
	r.prov.submitErr = errors.New("sbatch: error: invalid partition specified: nope")
	r.nodes.setWaiting(1)
	r.step(0)
	if bs := r.s.Blocks(); len(bs) != 0 {
		t.Errorf("Blocks = %+v after a refused submit, want none", bs)
	}
	if data, _ := os.ReadFile(r.file); strings.Contains(string(data), "fxd-cpu-1") {
		t.Errorf("state file keeps the refused block:\n%s", data)
	}
	if r.prov.finds != 1 || !r.nodes.ended["fxd-cpu-1"] || r.s.backoff == 0 {
		t.Errorf("after a refused submit: %d finds, credential revoked %v, backoff %s; want 1, true, > 0",
			r.prov.finds, r.nodes.ended["fxd-cpu-1"], r.s.backoff)
	}
}

// A block that cannot be recorded is not submitted: it could be orphaned.
func TestUnrecordedNotSubmitted(t *testing.T) {
	r := newRig(t, testPool())
	r.file = filepath.Join(t.TempDir(), "missing", "pool-cpu.json")
	r.s = r.scaler(testPool())
	r.nodes.setWaiting(1)
	r.step(0)
	if r.submits() != 0 || len(r.s.Blocks()) != 0 || r.s.backoff == 0 {
		t.Errorf("with an unwritable state file: %d submits, blocks %+v, backoff %s; want none, and a backoff", r.submits(), r.s.Blocks(), r.s.backoff)
	}
}

// Coming counts the slots of the blocks on their way: at one a node
// before any node linked, then at the slots per node seen; nothing once
// the block's nodes have linked.
func TestComing(t *testing.T) {
	r := newRig(t, testPool())
	if n := r.s.Coming(); n != 0 {
		t.Fatalf("Coming with no block = %d", n)
	}
	r.nodes.setWaiting(1)
	r.step(0)
	if n := r.s.Coming(); n != 1 {
		t.Errorf("Coming with a one-node block pending = %d, want 1", n)
	}
	r.prov.set("101", Status{State: StateRunning, Nodes: []string{"n1"}})
	r.nodes.setUse("fxd-cpu-1", Use{Linked: 1, Slots: 4, Busy: 4})
	r.nodes.setWaiting(0)
	r.step(10 * time.Second)
	if n := r.s.Coming(); n != 0 {
		t.Errorf("Coming once the block's node linked = %d, want 0", n)
	}
	r.nodes.setWaiting(8)
	r.step(10 * time.Second)
	if n, want := r.s.Coming(), r.prov.submitted[1].Nodes*4; r.submits() != 2 || n != want {
		t.Errorf("Coming with a second block of %d nodes pending = %d, want %d (4 slots a node)", r.prov.submitted[1].Nodes, n, want)
	}
}

// A block recorded without a job id that the scheduler cannot be asked
// about is skipped, and asked about again with a backoff: the pool's
// other blocks are polled, drained and given back meanwhile. After
// linkTimeout of failures it is dropped, its credential revoked, with a
// warning that names the job to cancel by hand.
func TestUnsettledBlockSkipped(t *testing.T) {
	p := testPool()
	p.Provider = "slurm"
	r := newRig(t, p)
	var logs strings.Builder
	r.s = r.scalerOn(p, r.prov, zerolog.New(&logs))
	r.runBlock() // fxd-cpu-1, job 101
	r.nodes.setUse("fxd-cpu-1", Use{Linked: 1, Slots: 1, Busy: 1})
	// its slot is full and a task waits: fxd-cpu-2, whose submit times
	// out, and the scheduler cannot be asked whether it took it
	r.prov.acceptErr = errors.New("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation")
	r.prov.findErr = errors.New("squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation")
	r.step(10 * time.Second)
	r.prov.acceptErr = nil
	if got := r.state("fxd-cpu-2"); got != stateSubmitting {
		t.Fatalf("fxd-cpu-2 is %s, want submitting", got)
	}
	// fxd-cpu-1's task ends and it idles: it is given back, and seen ended
	r.nodes.setWaiting(0)
	r.nodes.setUse("fxd-cpu-1", Use{Linked: 1, Slots: 1, Ran: 1, IdleSince: r.now})
	r.step(time.Minute)
	r.step(10 * time.Second)
	if !slices.Equal(r.prov.cancelled, []JobID{"101"}) || r.state("fxd-cpu-1") != stateDone {
		t.Fatalf("while fxd-cpu-2 cannot be settled: cancelled %v, fxd-cpu-1 %s; want 101 cancelled for idling, and done",
			r.prov.cancelled, r.state("fxd-cpu-1"))
	}
	// asked again with a backoff, not at every step
	finds := r.prov.finds
	r.step(time.Second)
	if r.prov.finds != finds {
		t.Errorf("Find asked again %s after it failed, within its backoff %s", time.Second, r.s.settleBackoff)
	}
	if got := r.state("fxd-cpu-2"); got != stateSubmitting || r.nodes.ended["fxd-cpu-2"] {
		t.Fatalf("fxd-cpu-2 is %s (revoked %v) before linkTimeout, want submitting", got, r.nodes.ended["fxd-cpu-2"])
	}
	for range 20 {
		r.step(time.Minute)
	}
	if got := r.state("fxd-cpu-2"); got != "absent" || !r.nodes.ended["fxd-cpu-2"] {
		t.Fatalf("fxd-cpu-2 is %s (revoked %v) after failing to settle for 20 minutes; want dropped, its credential revoked",
			got, r.nodes.ended["fxd-cpu-2"])
	}
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "scancel --name=fxd-cpu-2") {
		t.Errorf("no warning naming the job to cancel by hand; log:\n%s", logs.String())
	}
	if r.submits() != 2 {
		t.Errorf("%d blocks taken by the scheduler, want 2 (fxd-cpu-1 and fxd-cpu-2)", r.submits())
	}
}

// With a site, block names carry it: two installations under one
// scheduler account never look up each other's blocks by name.
func TestBlockNamesCarrySite(t *testing.T) {
	r := newRig(t, testPool())
	s, err := NewScaler(ScalerConfig{Pool: testPool(), Interval: 10 * time.Second, Lease: time.Minute, Site: "alcf",
		Command: []string{"fxd", "node"}, StateFile: filepath.Join(t.TempDir(), "pool.json")}, r.prov, r.nodes, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return r.now }
	r.nodes.setWaiting(1)
	s.Step(r.ctx, true)
	if n := r.submits(); n != 1 || r.prov.submitted[0].Name != "fxd-alcf-cpu-1" {
		t.Fatalf("submitted %d blocks, first %+v; want one named fxd-alcf-cpu-1", n, r.prov.submitted)
	}
}
