package main

import (
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
)

// Two pools see one demand: a task waiting for a node brings up one
// block, not one per pool, and runs on it.
func TestPoolsShareDemand(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	pool := func(name string) string {
		return "\n[[batch.pool]]\nname = \"" + name + "\"\nprovider = \"local\"\nnodes = 1\nwalltime = \"10m\"\nmax_blocks = 2\nidle_timeout = \"30s\"\n"
	}
	s := startPoolSite(t, rules, pool("a")+pool("b"))
	c := s.client(tenants[0].id)
	register(t, c, api.FunctionSpec{Name: "one", Command: []string{"/bin/echo", "ran"}})
	task := submitWait(t, c, "one", "")
	if task.State != api.StateSucceeded || strings.TrimSpace(string(task.Output)) != "ran" {
		t.Fatalf("task: %s %q (error %q)\ndaemon:\n%s", task.State, task.Output, task.Error, s.logs())
	}
	// Both pools have stepped since (they poll every second).
	time.Sleep(2 * time.Second)
	if bs := s.blocks(); len(bs) != 1 {
		t.Errorf("blocks for one waiting task: %+v, want one from one of the two pools", bs)
	}
}
