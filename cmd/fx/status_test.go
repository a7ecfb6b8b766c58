package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
)

// TestStatusPhases: fx status shows each task's queue, start and run
// times, and whether its worker was started for it (the fake's succeeded
// tasks ran cold, its failed ones warm).
func TestStatusPhases(t *testing.T) {
	f := newFakeAPI(t)
	code, stdout, stderr := fx(t, f.env(t), "", "status", "t1", "fail1", "run1")
	if code != 0 {
		t.Fatalf("fx status = exit %d, stderr %q; want 0", code, stderr)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		fields := strings.Fields(line)
		rows[fields[0]] = fields
	}
	want := map[string][]string{
		"ID":    {"ID", "FUNCTION", "STATE", "EXIT", "ATTEMPTS", "QUEUE", "START", "RUN"},
		"t1":    {"t1", "alice/echo", "succeeded", "0", "1", "2ms", "48ms", "(cold)", "5ms"},
		"fail1": {"fail1", "alice/echo", "failed", "3", "1", "2ms", "48ms", "(warm)", "1s"},
	}
	for id, w := range want {
		if !slices.Equal(rows[id], w) {
			t.Errorf("fx status: row %s = %q, want %q\nstdout:\n%s", id, rows[id], w, stdout)
		}
	}
	// Still running: no cold or warm yet, its run counts to now.
	if r := rows["run1"]; len(r) != 8 || r[2] != "running" || r[5] != "2ms" || r[6] != "48ms" || r[7] == "-" {
		t.Errorf("fx status: row run1 = %q, want running, 2ms, 48ms and a run time\nstdout:\n%s", r, stdout)
	}
}

func TestPhaseCells(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	ms := time.Millisecond
	now := at(10 * time.Second)
	tests := []struct {
		name              string
		task              api.Task
		queue, start, run string
	}{
		{"cold",
			api.Task{State: api.StateSucceeded, Cold: true, ReceivedAt: at(0), DispatchedAt: at(1200 * time.Microsecond), StartedAt: at(49200 * time.Microsecond), FinishedAt: at(52300 * time.Microsecond)},
			"1.2ms", "48ms (cold)", "3.1ms"},
		{"warm",
			api.Task{State: api.StateFailed, ReceivedAt: at(0), DispatchedAt: at(2 * ms), StartedAt: at(2*ms + 20*time.Microsecond), FinishedAt: at(2 * time.Second)},
			"2ms", "20µs (warm)", "2s"},
		{"no time in the queue",
			api.Task{State: api.StateSucceeded, ReceivedAt: at(0), DispatchedAt: at(0), StartedAt: at(ms), FinishedAt: at(2 * ms)},
			"0s", "1ms (warm)", "1ms"},
		{"queued",
			api.Task{State: api.StateQueued, ReceivedAt: at(0)},
			"10s", "-", "-"},
		{"queued again after a restart",
			api.Task{State: api.StateQueued, Attempts: 1, ReceivedAt: at(0), DispatchedAt: at(ms)},
			"10s", "-", "-"},
		{"running, start not known yet",
			api.Task{State: api.StateRunning, ReceivedAt: at(0), DispatchedAt: at(3 * ms)},
			"3ms", "-", "≤10s"},
		{"running, start known",
			api.Task{State: api.StateRunning, ReceivedAt: at(0), DispatchedAt: at(3 * ms), StartedAt: at(7 * time.Second)},
			"3ms", "7s", "3s"},
		{"worker did not start",
			api.Task{State: api.StateFailed, Cold: true, ReceivedAt: at(0), DispatchedAt: at(ms), FinishedAt: at(5 * time.Second)},
			"1ms", "- (cold)", "-"},
		{"cancelled in the queue",
			api.Task{State: api.StateCancelled, ReceivedAt: at(0), FinishedAt: at(4 * ms)},
			"-", "-", "-"},
		{"from a daemon without dispatched_at",
			api.Task{State: api.StateSucceeded, ReceivedAt: at(0), StartedAt: at(ms), FinishedAt: at(3 * ms)},
			"-", "- (warm)", "2ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, s, r := phaseCells(tt.task, now)
			if q != tt.queue || s != tt.start || r != tt.run {
				t.Errorf("phaseCells(%+v) = %q, %q, %q; want %q, %q, %q", tt.task, q, s, r, tt.queue, tt.start, tt.run)
			}
		})
	}
}
