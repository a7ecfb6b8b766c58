package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/daemon/store"
	"github.com/rs/zerolog"
)

// With daemon_node_tasks off and no node linked, a task waits queued and
// counts as demand; a cancel ends it, and a shutdown leaves it queued for
// the next daemon. A synchronous run waits for a node too.
func TestTasksWaitForNodes(t *testing.T) {
	s := startTestSite(t, func(c *conf.Config) { c.Batch.DaemonNodeTasks = false })
	c := s.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.RegisterFunction(ctx, api.FunctionSpec{Name: "true", Command: []string{"/bin/true"}}); err != nil {
		t.Fatal(err)
	}
	ids, err := c.Submit(ctx, []api.TaskSpec{{Function: "true"}, {Function: "true"}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two tasks waiting for a node", func() bool { return s.d.nodes.waiting.Load() == 2 })
	for _, id := range ids {
		if task, err := c.Task(ctx, id, 0); err != nil || task.State != api.StateQueued {
			t.Fatalf("task waiting for a node = %s, %v; want queued", task.State, err)
		}
	}
	if _, err := c.Cancel(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(ctx, ids[0], 10*time.Second)
	if err != nil || task.State != api.StateCancelled || !strings.Contains(task.Error, "waited for a node") {
		t.Fatalf("cancelled waiting task = %s %q, %v; want cancelled, waited for a node", task.State, task.Error, err)
	}
	waitFor(t, "one task waiting", func() bool { return s.d.nodes.waiting.Load() == 1 })

	// A synchronous run waits for a node too, and fails when the daemon
	// stops: it is in no store to run again from.
	synced := make(chan api.Task, 1)
	go func() {
		task, err := c.Run(ctx, "true", api.TaskSpec{})
		if err != nil {
			t.Errorf("synchronous run while the daemon stops: %v", err)
		}
		synced <- task
	}()
	waitFor(t, "the synchronous run waiting too", func() bool { return s.d.nodes.waiting.Load() == 2 })

	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if task := <-synced; task.State != api.StateFailed || !strings.Contains(task.Error, "not started") {
		t.Errorf("synchronous run waiting for a node at shutdown = %s %q, want failed: not started", task.State, task.Error)
	}
	st, err := store.Open(filepath.Join(s.d.cfg.Site.StateDir, "tasks.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if task, err := st.GetTask(ids[1]); err != nil || task.State != api.StateQueued {
		t.Errorf("after shutdown the waiting task = %s, %v; want queued, for the next daemon", task.State, err)
	}
}
