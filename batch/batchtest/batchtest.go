// Package batchtest is the conformance suite every batch provider runs
// (batchtest.Run in its tests), so that the daemon can rely on one
// behaviour whatever the scheduler: submit, the states a block goes
// through, its command and environment on its nodes, cancel, unknown
// jobs, bad blocks, concurrent use and, for a WindowFinder, windows, and
// for a Finder, jobs found by name.
package batchtest

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/batch"
)

// Options say what the provider under test can do.
type Options struct {
	// Runs says the provider really runs a block's command on nodes that
	// share this machine's file system (local, Slurm here). A provider
	// tested against a fake scheduler (PBS) does not: its blocks move
	// between states when Advance says.
	Runs bool
	// Advance moves job id of the fake scheduler to state; nil when Runs.
	Advance func(t *testing.T, id batch.JobID, state batch.State)
	// UnknownID is a job id in the provider's form that its scheduler does
	// not know.
	UnknownID batch.JobID
	// Idle says the scheduler has a node free for the test's blocks, so a
	// WindowFinder must find a window.
	Idle bool
	// Timeout bounds each wait for a block's state; 0 is 90 s.
	Timeout time.Duration
}

// Run runs the suite; newProvider makes the provider for each subtest.
func Run(t *testing.T, newProvider func(t *testing.T) batch.Provider, o Options) {
	if o.Timeout == 0 {
		o.Timeout = 90 * time.Second
	}
	if !o.Runs && o.Advance == nil {
		t.Fatal("batchtest: Options.Advance is needed when the provider does not run blocks")
	}
	s := suite{o: o, new: newProvider}
	t.Run("SubmitRunCancel", s.submitRunCancel)
	t.Run("EndsByItself", s.endsByItself)
	t.Run("UnknownJob", s.unknownJob)
	t.Run("BadBlock", s.badBlock)
	t.Run("Concurrent", s.concurrent)
	t.Run("ContextDone", s.contextDone)
	t.Run("Windows", s.windows)
	t.Run("Find", s.find)
}

type suite struct {
	o   Options
	new func(t *testing.T) batch.Provider
}

// block is a one-node block named for the test whose command runs argv.
func block(argv ...string) batch.Block {
	return batch.Block{Name: "fxd-batchtest-" + strings.ToLower(rand.Text()[:8]), Nodes: 1, Walltime: 5 * time.Minute, Command: argv}
}

// submit submits b and cancels it when the test ends.
func (s suite) submit(t *testing.T, p batch.Provider, b batch.Block) batch.JobID {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	id, err := p.Submit(ctx, b)
	if err != nil {
		t.Fatalf("Submit(%s) = %v", b.Name, err)
	}
	if id == "" {
		t.Fatalf("Submit(%s) = empty job id", b.Name)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Cancel(ctx, id); err != nil {
			t.Errorf("Cancel(%s) at cleanup = %v", id, err)
		}
	})
	return id
}

// waitFor polls id until its state is one of states, and returns that
// status.
func (s suite) waitFor(t *testing.T, p batch.Provider, id batch.JobID, states ...batch.State) batch.Status {
	t.Helper()
	deadline := time.Now().Add(s.o.Timeout)
	var last batch.Status
	for time.Now().Before(deadline) {
		got, err := p.Poll(t.Context(), []batch.JobID{id})
		if err != nil {
			t.Fatalf("Poll(%s) = %v", id, err)
		}
		st, ok := got[id]
		if !ok {
			t.Fatalf("Poll(%s) = %v: the id is missing", id, got)
		}
		for _, want := range states {
			if st.State == want {
				return st
			}
		}
		last = st
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("job %s is %+v after %v, want one of %v", id, last, s.o.Timeout, states)
	return last
}

// waitFile waits for the file at path to hold something, and returns it.
func (s suite) waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(s.o.Timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return string(b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s is still empty after %v: the block's command did not run", path, s.o.Timeout)
	return ""
}

// A block goes pending or running, runs its init lines and its command
// with its environment (never on a command line), and ends when cancelled.
func (s suite) submitRunCancel(t *testing.T) {
	p := s.new(t)
	dir := sharedDir(t)
	secret := "s3cret-" + rand.Text()
	b := block("/bin/sh", "-c", `echo $$ > "$FXD_BATCHTEST_DIR/pid.tmp"; mv "$FXD_BATCHTEST_DIR/pid.tmp" "$FXD_BATCHTEST_DIR/pid"; `+
		`printf %s "$FXD_BATCHTEST_SECRET" > "$FXD_BATCHTEST_DIR/env"; exec sleep 300`)
	b.Env = map[string]string{"FXD_BATCHTEST_SECRET": secret, "FXD_BATCHTEST_DIR": dir}
	b.Init = []string{`echo "init ran" > "$FXD_BATCHTEST_DIR/init"`}
	id := s.submit(t, p, b)
	if !s.o.Runs {
		s.o.Advance(t, id, batch.StateRunning)
	}
	st := s.waitFor(t, p, id, batch.StateRunning)
	if len(st.Nodes) == 0 {
		t.Errorf("running block %s: no nodes in %+v", id, st)
	}
	var pid int
	if s.o.Runs {
		if got := s.waitFile(t, filepath.Join(dir, "env")); got != secret {
			t.Errorf("the block's command saw FXD_BATCHTEST_SECRET = %q, want %q", got, secret)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "init")); string(got) != "init ran\n" {
			t.Errorf("init lines: the file they write holds %q, want \"init ran\"", got)
		}
		pid, _ = strconv.Atoi(strings.TrimSpace(s.waitFile(t, filepath.Join(dir, "pid"))))
		if leak := cmdlineWith(secret); leak != "" {
			t.Errorf("the block's environment is on a command line, which every user can read: %s", leak)
		}
	}
	if err := p.Cancel(t.Context(), id); err != nil {
		t.Fatalf("Cancel(%s) = %v", id, err)
	}
	if !s.o.Runs {
		s.o.Advance(t, id, batch.StateDone)
	}
	s.waitFor(t, p, id, batch.StateDone, batch.StateGone)
	if pid > 0 {
		waitGone(t, pid, s.o.Timeout)
	}
	if err := p.Cancel(t.Context(), id); err != nil {
		t.Errorf("Cancel(%s) again = %v, want nil: cancel is idempotent", id, err)
	}
}

// A block whose command ends on every node ends too.
func (s suite) endsByItself(t *testing.T) {
	p := s.new(t)
	id := s.submit(t, p, block("/bin/true"))
	if !s.o.Runs {
		s.o.Advance(t, id, batch.StateRunning)
		s.o.Advance(t, id, batch.StateDone)
	}
	st := s.waitFor(t, p, id, batch.StateDone, batch.StateGone)
	if st.State == batch.StateDone && st.Reason == "" {
		t.Errorf("ended block %s: %+v, want a reason that says how it ended", id, st)
	}
}

// Jobs the scheduler does not know are gone, and cancelling one is fine.
func (s suite) unknownJob(t *testing.T) {
	p := s.new(t)
	got, err := p.Poll(t.Context(), []batch.JobID{s.o.UnknownID})
	if err != nil || got[s.o.UnknownID].State != batch.StateGone {
		t.Errorf("Poll(unknown %s) = %+v, %v; want it gone", s.o.UnknownID, got, err)
	}
	if got, err := p.Poll(t.Context(), nil); err != nil || len(got) != 0 {
		t.Errorf("Poll(no ids) = %+v, %v; want an empty map", got, err)
	}
	if err := p.Cancel(t.Context(), s.o.UnknownID); err != nil {
		t.Errorf("Cancel(unknown %s) = %v, want nil", s.o.UnknownID, err)
	}
}

// A block fxd could never run is refused before the scheduler sees it.
func (s suite) badBlock(t *testing.T) {
	p := s.new(t)
	for name, b := range map[string]batch.Block{
		"bad name":    {Name: "a b", Nodes: 1, Walltime: time.Hour, Command: []string{"/bin/true"}},
		"no nodes":    {Name: "fxd-x", Walltime: time.Hour, Command: []string{"/bin/true"}},
		"no command":  {Name: "fxd-x", Nodes: 1, Walltime: time.Hour},
		"no walltime": {Name: "fxd-x", Nodes: 1, Command: []string{"/bin/true"}},
	} {
		if id, err := p.Submit(t.Context(), b); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("Submit(%s) = %q, %v; want api.ErrInvalid", name, id, err)
			if err == nil {
				p.Cancel(context.Background(), id)
			}
		}
	}
}

// Submits from many goroutines get distinct jobs, which all end.
func (s suite) concurrent(t *testing.T) {
	p := s.new(t)
	ids := make([]batch.JobID, 3)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() { ids[i] = s.submit(t, p, block("/bin/sleep", "300")) })
	}
	wg.Wait()
	seen := map[batch.JobID]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("concurrent submits gave the job id %s twice: %v", id, ids)
		}
		seen[id] = true
	}
	for _, id := range ids {
		if err := p.Cancel(t.Context(), id); err != nil {
			t.Errorf("Cancel(%s) = %v", id, err)
		}
		if !s.o.Runs {
			s.o.Advance(t, id, batch.StateDone)
		}
	}
	for _, id := range ids {
		s.waitFor(t, p, id, batch.StateDone, batch.StateGone)
	}
}

// A call whose context is done returns at once, with an error.
func (s suite) contextDone(t *testing.T) {
	p := s.new(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if id, err := p.Submit(ctx, block("/bin/true")); err == nil {
		p.Cancel(context.Background(), id)
		t.Errorf("Submit with a done context = %s, nil; want an error", id)
	}
}

// A WindowFinder finds the free node of an idle scheduler, and no window
// is more than was asked about.
func (s suite) windows(t *testing.T) {
	p := s.new(t)
	wf, ok := p.(batch.WindowFinder)
	if !ok {
		return // not every scheduler shows its holes
	}
	like := block("/bin/true")
	like.Walltime = 20 * time.Minute
	ws, err := wf.Windows(t.Context(), like)
	if err != nil {
		t.Fatalf("Windows = %v", err)
	}
	if s.o.Idle && len(ws) == 0 {
		t.Errorf("Windows on an idle scheduler = none, want a window of its free node")
	}
	for _, w := range ws {
		if w.Nodes < 1 || w.Nodes > like.Nodes || w.Duration < 0 || w.Duration > like.Walltime {
			t.Errorf("Windows = %+v: %+v is outside 1..%d nodes, 0..%v", ws, w, like.Nodes, like.Walltime)
		}
	}
}

// sharedDir is a directory the block's nodes can write to: they are this
// machine, and may run as another user than the test's (root's jobs do
// not, but a site's do).
func sharedDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// cmdlineWith returns the command line of a process that holds s, or "".
func cmdlineWith(s string) string {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), s) {
			return e.Name() + ": " + strings.ReplaceAll(string(b), "\x00", " ")
		}
	}
	return ""
}

// waitGone waits for process pid to end.
func waitGone(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("the block's process %d still runs %v after its block was cancelled", pid, timeout)
}

// A Finder finds the jobs of one name that have not ended, whatever their
// number, and none of another name, even one that starts alike.
func (s suite) find(t *testing.T) {
	p := s.new(t)
	f, ok := p.(batch.Finder)
	if !ok {
		return // the scaler warns that a crash while submitting can orphan a job
	}
	b := block("/bin/sleep", "300")
	s.wantFound(t, f, b.Name)
	first, second := s.submit(t, p, b), s.submit(t, p, b)
	other := b
	other.Name += "x"
	s.submit(t, p, other)
	s.wantFound(t, f, b.Name, first, second)
	if err := p.Cancel(t.Context(), first); err != nil {
		t.Fatalf("Cancel(%s) = %v", first, err)
	}
	if !s.o.Runs {
		s.o.Advance(t, first, batch.StateDone)
	}
	s.waitFor(t, p, first, batch.StateDone, batch.StateGone)
	s.wantFound(t, f, b.Name, second)
	if ids, err := f.Find(t.Context(), "a,b"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Find(\"a,b\") = %v, %v; want api.ErrInvalid: not a block name", ids, err)
	}
}

// wantFound checks that f finds exactly want under name, in any order.
func (s suite) wantFound(t *testing.T, f batch.Finder, name string, want ...batch.JobID) {
	t.Helper()
	got, err := f.Find(t.Context(), name)
	if err != nil {
		t.Fatalf("Find(%s) = %v", name, err)
	}
	got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("Find(%s) = %q, want %q", name, got, want)
	}
}
