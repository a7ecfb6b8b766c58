package local

import (
	"context"
	"runtime"
	"strings"
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
