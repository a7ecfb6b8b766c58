package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
)

// Two pools see one demand: a task waiting for a node brings up one
// block, not one per pool, and runs on it.
//
// The blocks' nodes start 3 s late (worker_init), so that the task waits
// for a node longer than two poll intervals (1 s): each pool steps while
// it waits, on its ticker if not woken, and a pool that answered the
// demand a second time would submit then. The test checks that the task
// did wait that long, so that it cannot pass with a pool that never
// looked. A pool's step and its Blocks (fxd blocks) take the same lock:
// the listing, asked for after the task ended, holds whatever a step that
// saw the task waiting submitted. The pools' records count the blocks
// each ever named, submitted or not.
func TestPoolsShareDemand(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	pool := func(name string) string {
		return "\n[[batch.pool]]\nname = \"" + name + "\"\nprovider = \"local\"\nnodes = 1\nwalltime = \"10m\"\nmax_blocks = 2\n" +
			"idle_timeout = \"30s\"\nworker_init = [\"sleep 3\"]\n"
	}
	s := startPoolSite(t, rules, pool("a")+pool("b"))
	c := s.client(tenants[0].id)
	register(t, c, api.FunctionSpec{Name: "one", Command: []string{"/bin/echo", "ran"}})
	task := submitWait(t, c, "one", "")
	if task.State != api.StateSucceeded || strings.TrimSpace(string(task.Output)) != "ran" {
		t.Fatalf("task: %s %q (error %q)\ndaemon:\n%s", task.State, task.Output, task.Error, s.logs())
	}
	if queue, _, _ := task.Timings(); !queue.Known || queue.D < 2*time.Second {
		t.Fatalf("the task waited %v for a node, less than two poll intervals: the pools may not both have stepped while it waited", queue.D)
	}
	if bs := s.blocks(); len(bs) != 1 {
		t.Errorf("blocks for one waiting task: %+v, want one from one of the two pools", bs)
	}
	named := 0
	for _, p := range []string{"a", "b"} {
		data, err := os.ReadFile(filepath.Join(s.state, "pool-"+p+".json"))
		if err != nil {
			t.Fatalf("pool %s has not recorded its blocks: %v", p, err)
		}
		var st struct {
			Seq int `json:"seq"`
		}
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatalf("pool-%s.json: %v", p, err)
		}
		named += st.Seq
	}
	if named != 1 {
		t.Errorf("the pools named %d blocks in all for one waiting task, want 1\ndaemon:\n%s", named, s.logs())
	}
}
