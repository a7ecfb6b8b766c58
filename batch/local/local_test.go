package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/batch"
	"fxd.dev/fxd/batch/batchtest"
)

func newProvider(t *testing.T) *Provider {
	p, err := New(zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	return p
}

func TestConformance(t *testing.T) {
	batchtest.Run(t, func(t *testing.T) batch.Provider { return newProvider(t) },
		batchtest.Options{Runs: true, UnknownID: "local-999999", Timeout: 20 * time.Second})
}

// Each node of a block is a process with its own node name, and the block
// is stopped at its walltime.
func TestNodesAndWalltime(t *testing.T) {
	p := newProvider(t)
	b := batch.Block{Name: "fxd-two", Nodes: 2, Walltime: time.Minute, Command: []string{"/bin/sh", "-c", `trap 'exit 0' TERM; sleep 600 & wait`}}
	id, err := p.Submit(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Poll(t.Context(), []batch.JobID{id})
	if err != nil || st[id].State != batch.StateRunning || len(st[id].Nodes) != 2 || st[id].Nodes[0] == st[id].Nodes[1] {
		t.Fatalf("Poll = %+v, %v; want running on two distinct nodes", st, err)
	}
	p.mu.Lock()
	j := p.jobs[id]
	p.mu.Unlock()
	j.stop("walltime reached") // as the walltime timer does
	select {
	case <-j.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the block's processes still run 10 s after its walltime")
	}
	st, _ = p.Poll(t.Context(), []batch.JobID{id})
	if st[id].State != batch.StateDone || !strings.Contains(st[id].Reason, "walltime reached") {
		t.Errorf("after walltime: %+v, want done, saying walltime reached", st[id])
	}
}

// A block submitted from a goroutine that then exits locked to its thread,
// which ends the thread, keeps running: its processes are forked on the
// provider's own thread, so their Pdeathsig waits for the daemon's end.
func TestBlockOutlivesSubmittingThread(t *testing.T) {
	p := newProvider(t)
	b := batch.Block{Name: "fxd-thread", Nodes: 1, Walltime: time.Minute, Command: []string{"/bin/sleep", "600"}}
	id, err := submitFromEndingThread(p, b)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		if st, err := p.Poll(t.Context(), []batch.JobID{id}); err != nil || st[id].State != batch.StateRunning {
			t.Fatalf("after the submitting thread ended, Poll = %+v, %v; want the block running", st, err)
		}
	}
}

// submitFromEndingThread submits b from a goroutine that exits locked to
// its thread, which Go then ends. The main thread is not ended but
// wedged: a goroutine that finds itself there holds it, and submits from
// another.
func submitFromEndingThread(p *Provider, b batch.Block) (batch.JobID, error) {
	type result struct {
		id  batch.JobID
		err error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked unless on the main thread
		if syscall.Gettid() == syscall.Getpid() {
			defer runtime.UnlockOSThread()
			id, err := submitFromEndingThread(p, b)
			done <- result{id, err}
			return
		}
		id, err := p.Submit(context.Background(), b)
		done <- result{id, err}
	}()
	r := <-done
	return r.id, r.err
}

// kills records the process groups p signals, and signals them.
type kills struct {
	mu   sync.Mutex
	pids []int
}

func (k *kills) record(p *Provider) {
	p.kill = func(pid int, sig syscall.Signal) error {
		k.mu.Lock()
		k.pids = append(k.pids, pid)
		k.mu.Unlock()
		return syscall.Kill(pid, sig)
	}
}

func (k *kills) got() []int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.pids)
}

// procState is the state letter of process pid ('Z': a zombie), or 0
// when there is no such process (reaped).
func procState(t *testing.T, pid int) byte {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) { // reaped before or while read
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(b, []byte(") "))
	if !ok || len(rest) == 0 {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return rest[0]
}

// A block whose processes have all exited is sent no signal when it is
// cancelled: their ids, and their groups', may be another's by now. While
// it runs, the node processes that have exited are kept as zombies, so
// that their ids stay theirs and the block's signals reach only it.
func TestNoSignalsOnceExited(t *testing.T) {
	p := newProvider(t)
	var k kills
	k.record(p)
	b := batch.Block{Name: "fxd-half", Nodes: 2, Walltime: time.Minute,
		Command: []string{"/bin/sh", "-c", `case $FXD_BLOCK_NODE in *-0) exit 0 ;; esac; exec sleep 600`}}
	id, err := p.Submit(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	j := p.jobs[id]
	p.mu.Unlock()
	first := j.procs[0].Pid
	deadline := time.Now().Add(10 * time.Second)
	for procState(t, first) != 'Z' {
		if time.Now().After(deadline) {
			t.Fatalf("node 0's process %d is %q 10 s after its command exited, want a zombie (its id kept while the block runs)",
				first, procState(t, first))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 20 { // and it stays one: not reaped while node 1 runs
		time.Sleep(10 * time.Millisecond)
		if st := procState(t, first); st != 'Z' {
			t.Fatalf("node 0's process %d is %q while node 1 runs, want a zombie (its id kept while the block runs)", first, st)
		}
	}
	if err := p.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-j.done:
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled block still runs after 10 s")
	}
	if got := procState(t, first); got != 0 {
		t.Errorf("node 0's process %d is %q after the block ended, want it reaped", first, got)
	}
	before := len(k.got())
	if err := p.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	j.stop("walltime reached") // as the walltime timer may, late
	if got := k.got(); len(got) != before {
		t.Errorf("signals sent to %v after the block ended, want none", got[before:])
	}

	// a block that ended by itself is sent nothing either
	b.Command = []string{"/bin/true"}
	id, err = p.Submit(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	j = p.jobs[id]
	p.mu.Unlock()
	<-j.done
	before = len(k.got())
	if err := p.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if got := k.got(); len(got) != before {
		t.Errorf("cancelling a block that ended sent signals to %v, want none", got[before:])
	}
}

// A submit that fails at a node kills the nodes it started, and reaps
// them: no zombie is left.
func TestFailedSubmitReaps(t *testing.T) {
	p := newProvider(t)
	var started []int
	p.startNode = func(b batch.Block, node string) (*os.Process, error) {
		if len(started) == 2 {
			return nil, errors.New("fork/exec /bin/sh: resource temporarily unavailable")
		}
		proc, err := p.start(b, node)
		if err == nil {
			started = append(started, proc.Pid)
		}
		return proc, err
	}
	b := batch.Block{Name: "fxd-fail", Nodes: 3, Walltime: time.Minute, Command: []string{"/bin/sleep", "600"}}
	if id, err := p.Submit(t.Context(), b); err == nil {
		t.Fatalf("Submit = %s, want the third node's error", id)
	}
	if len(started) != 2 {
		t.Fatalf("%d nodes started, want 2 before the third failed", len(started))
	}
	for _, pid := range started {
		if st := procState(t, pid); st != 0 {
			t.Errorf("process %d of the failed submit is %q, want it killed and reaped", pid, st)
		}
	}
}
