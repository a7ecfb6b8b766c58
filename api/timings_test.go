package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestTaskTimings(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	ms := time.Millisecond
	known := func(d time.Duration) Phase { return Phase{D: d, Known: true} }
	unknown := Phase{}
	tests := []struct {
		name              string
		task              Task
		queue, start, run Phase
	}{
		{name: "finished",
			task:  Task{ReceivedAt: at(0), DispatchedAt: at(2 * ms), StartedAt: at(50 * ms), FinishedAt: at(53 * ms)},
			queue: known(2 * ms), start: known(48 * ms), run: known(3 * ms)},
		{name: "queued", task: Task{ReceivedAt: at(0)}},
		{name: "dispatched, start not known yet",
			task:  Task{ReceivedAt: at(0), DispatchedAt: at(5 * ms)},
			queue: known(5 * ms)},
		{name: "worker did not start",
			task:  Task{ReceivedAt: at(0), DispatchedAt: at(1 * ms), FinishedAt: at(9 * ms)},
			queue: known(1 * ms)},
		{name: "cancelled in the queue", task: Task{ReceivedAt: at(0), FinishedAt: at(7 * ms)}},
		{name: "record without dispatched_at",
			task: Task{ReceivedAt: at(0), StartedAt: at(4 * ms), FinishedAt: at(10 * ms)},
			run:  known(6 * ms)},
		{name: "no time in any phase",
			task:  Task{ReceivedAt: at(3 * ms), DispatchedAt: at(3 * ms), StartedAt: at(3 * ms), FinishedAt: at(3 * ms)},
			queue: known(0), start: known(0), run: known(0)},
		{name: "clock stepped back",
			task:  Task{ReceivedAt: at(10 * ms), DispatchedAt: at(2 * ms), StartedAt: at(3 * ms), FinishedAt: at(5 * ms)},
			queue: known(0), start: known(1 * ms), run: known(2 * ms)},
		{name: "zero task", queue: unknown, start: unknown, run: unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, s, r := tt.task.Timings()
			if q != tt.queue || s != tt.start || r != tt.run {
				t.Errorf("Timings() = %+v, %+v, %+v; want %+v, %+v, %+v", q, s, r, tt.queue, tt.start, tt.run)
			}
		})
	}
}

// DispatchedAt goes over the wire and into the store (as JSON) and back;
// a task written before it existed reads as not dispatched.
func TestTaskDispatchedAtJSON(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	task := Task{ID: "t1", ReceivedAt: t0, DispatchedAt: t0.Add(time.Millisecond)}
	b, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"dispatched_at":"2025-01-01T00:00:00.001Z"`) {
		t.Errorf("json.Marshal(%+v) = %s, want dispatched_at", task, b)
	}
	var got Task
	if err := json.Unmarshal(b, &got); err != nil || !got.DispatchedAt.Equal(task.DispatchedAt) {
		t.Errorf("json.Unmarshal(%s) = %v, %v; want dispatched_at %v", b, got.DispatchedAt, err, task.DispatchedAt)
	}
	if b, _ := json.Marshal(Task{ID: "t2"}); strings.Contains(string(b), "dispatched_at") {
		t.Errorf("json.Marshal of an undispatched task = %s, want no dispatched_at", b)
	}
	old := `{"id":"t3","state":"succeeded","received_at":"2025-01-01T00:00:00Z","started_at":"2025-01-01T00:00:01Z","finished_at":"2025-01-01T00:00:02Z"}`
	got = Task{}
	if err := json.Unmarshal([]byte(old), &got); err != nil || !got.DispatchedAt.IsZero() {
		t.Errorf("json.Unmarshal(%s) = dispatched_at %v, %v; want zero", old, got.DispatchedAt, err)
	}
	if q, s, r := got.Timings(); q.Known || s.Known || r != (Phase{D: time.Second, Known: true}) {
		t.Errorf("Timings() of %s = %+v, %+v, %+v; want queue and start unknown, run 1s", old, q, s, r)
	}
}
