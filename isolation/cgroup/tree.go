package cgroup

import (
	"errors"
	"os"
	"sync"

	"fxd.dev/fxd/isolation"
)

// Tree answers, from its group, the parts of an isolation.Process that
// every executor shares: Wait, Kill, Procs and OOMKills. The executor
// waits for the tree's first process and then calls End. Safe for
// concurrent use.
type Tree struct {
	group *Group
	done  chan struct{}
	st    isolation.ExitStatus
	err   error

	mu      sync.Mutex // Kill against End's removal
	removed bool
}

// NewTree returns the Tree of a started process tree in g.
func NewTree(g *Group) *Tree { return &Tree{group: g, done: make(chan struct{})} }

// End records how the first process ended (err is the executor's own
// failure, or nil), adds the group's OOM kill count, runs remove, which
// must kill what is left and remove the group, and lets Wait return.
// A remove error is kept when err is nil. Call it once.
func (t *Tree) End(st isolation.ExitStatus, err error, remove func() error) {
	st.OOMKills, _ = t.group.OOMKills()
	t.mu.Lock()
	if rerr := remove(); rerr != nil && err == nil {
		err = rerr
	}
	t.removed = true
	t.mu.Unlock()
	t.st, t.err = st, err
	close(t.done)
}

// Wait implements isolation.Process.
func (t *Tree) Wait() (isolation.ExitStatus, error) {
	<-t.done
	return t.st, t.err
}

// Kill implements isolation.Process: SIGKILL to every process of the
// group, until End has removed it.
func (t *Tree) Kill() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.removed {
		return nil
	}
	return t.group.Kill()
}

// Procs implements isolation.Process.
func (t *Tree) Procs() (int, error) {
	pids, err := t.group.Procs()
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	return len(pids), err
}

// OOMKills implements isolation.Process.
func (t *Tree) OOMKills() (int, error) {
	select {
	case <-t.done:
		return t.st.OOMKills, nil
	default:
	}
	n, err := t.group.OOMKills()
	if errors.Is(err, os.ErrNotExist) {
		<-t.done
		return t.st.OOMKills, nil
	}
	return n, err
}
