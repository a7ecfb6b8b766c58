package daemon

import (
	"bufio"
	"context"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/daemon/store"
	"fxd.dev/fxd/runtimes"
)

// checkTimings fails unless the task's times are in life order, every one
// of a task that ran is set, and Timings knows each phase as the time
// between its own ends, start and run taking some time.
func checkTimings(t *testing.T, what string, task api.Task) {
	t.Helper()
	r, d, s, f := task.ReceivedAt, task.DispatchedAt, task.StartedAt, task.FinishedAt
	if r.IsZero() || d.IsZero() || s.IsZero() || f.IsZero() || d.Before(r) || s.Before(d) || f.Before(s) {
		t.Fatalf("%s: received %v, dispatched %v, started %v, finished %v; want all set, in that order", what, r, d, s, f)
	}
	queue, start, run := task.Timings()
	got := [3]api.Phase{queue, start, run}
	want := [3]api.Phase{{D: d.Sub(r), Known: true}, {D: s.Sub(d), Known: true}, {D: f.Sub(s), Known: true}}
	if got != want || start.D <= 0 || run.D <= 0 {
		t.Errorf("%s: Timings() = %+v; want %+v, start and run > 0", what, got, want)
	}
}

// checkWithin fails unless the daemon received and finished the task
// between the moments the client sent its request and had the answer.
func checkWithin(t *testing.T, what string, task api.Task, sent, answered time.Time) {
	t.Helper()
	if task.ReceivedAt.Before(sent) || task.FinishedAt.After(answered) {
		t.Errorf("%s: received %v, finished %v; want both within the client's call, %v to %v",
			what, task.ReceivedAt, task.FinishedAt, sent, answered)
	}
}

// TestTaskPhases runs a command cold, then warm, and finds their phases in
// the API, in the store and in fxd_task_phase_seconds on /metrics.
func TestTaskPhases(t *testing.T) {
	s := startTestSite(t, nil)
	c := s.client(t)
	ctx := context.Background()
	if _, err := c.RegisterFunction(ctx, api.FunctionSpec{Name: "true", Command: []string{"/bin/true"}}); err != nil {
		t.Fatal(err)
	}
	before := scrapePhaseCounts(t, s.socket)
	for i, wantCold := range []bool{true, false} {
		sent := time.Now()
		task, err := c.Run(ctx, "true", api.TaskSpec{})
		answered := time.Now()
		if err != nil || task.State != api.StateSucceeded || task.Cold != wantCold {
			t.Fatalf("run %d = %s cold=%v %q, %v; want succeeded, cold=%v", i, task.State, task.Cold, task.Error, err, wantCold)
		}
		checkTimings(t, "sync run "+strconv.Itoa(i), task)
		checkWithin(t, "sync run "+strconv.Itoa(i), task, sent, answered)
	}

	sent := time.Now()
	ids, err := c.Submit(ctx, []api.TaskSpec{{Function: "true"}})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.Tasks(ctx, api.TasksRequest{IDs: ids, Wait: api.Duration(30 * time.Second)})
	answered := time.Now()
	if err != nil || len(ts) != 1 || ts[0].State != api.StateSucceeded {
		t.Fatalf("Tasks(%v) = %+v, %v; want one succeeded", ids, ts, err)
	}
	checkTimings(t, "async task", ts[0])
	checkWithin(t, "async task", ts[0], sent, answered)
	waitFor(t, "the async task in the store", func() bool {
		got, err := s.d.store.GetTask(ids[0])
		return err == nil && got.State.Final()
	})
	stored, err := s.d.store.GetTask(ids[0])
	if err != nil || !stored.DispatchedAt.Equal(ts[0].DispatchedAt) || !stored.StartedAt.Equal(ts[0].StartedAt) {
		t.Errorf("stored task = dispatched %v, started %v (%v); want %v, %v as answered",
			stored.DispatchedAt, stored.StartedAt, err, ts[0].DispatchedAt, ts[0].StartedAt)
	}

	// The two sync runs and the async one: one cold, two warm, each with
	// its three phases. The async task may still be being counted when
	// Tasks answers, hence the wait.
	want := map[string]float64{}
	for _, p := range []string{"queue", "start", "run"} {
		want[`phase="`+p+`",start="cold"`] = before[`phase="`+p+`",start="cold"`] + 1
		want[`phase="`+p+`",start="warm"`] = before[`phase="`+p+`",start="warm"`] + 2
	}
	var got map[string]float64
	defer func() {
		if t.Failed() && !maps.Equal(got, want) {
			t.Logf("fxd_task_phase_seconds_count = %v, want %v", got, want)
		}
	}()
	waitFor(t, "fxd_task_phase_seconds_count to count the three tasks", func() bool {
		got = scrapePhaseCounts(t, s.socket)
		return maps.Equal(got, want)
	})
}

// TestRecoveredTaskTimings: tasks left running by a daemon run again
// after the restart with the times of their new attempt only. One record
// is from a daemon that set StartedAt when it dispatched (and had no
// DispatchedAt), the other from one that set DispatchedAt. With
// max_running = 1 one runs and one waits in the queue, and the API shows
// neither with the times of its earlier attempt: no DispatchedAt while
// queued, no StartedAt while running.
func TestRecoveredTaskTimings(t *testing.T) {
	s1 := startTestSite(t, nil)
	c := s1.client(t)
	ctx := context.Background()
	// The tasks wait for the gate file, so the test sees them queued and
	// running.
	gate := filepath.Join(t.TempDir(), "gate")
	os.Chmod(filepath.Dir(gate), 0o755)
	fn, err := c.RegisterFunction(ctx, api.FunctionSpec{Name: "gated",
		Command: []string{"/bin/sh", "-c", `while [ ! -e "$1" ]; do /bin/sleep 0.01; done`, "gated", gate}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.stop(); err != nil {
		t.Fatalf("stop the first daemon: %v", err)
	}
	stateDir := s1.d.cfg.Site.StateDir

	old := time.Now().Add(-time.Hour).UTC()
	legacy := []api.Task{
		{ID: newTaskID(old), Function: fn.Ref(), FunctionVersion: fn.Version, Owner: fn.Owner,
			State: api.StateRunning, Attempts: 1, ReceivedAt: old, StartedAt: old.Add(time.Second)},
		{ID: newTaskID(old.Add(time.Millisecond)), Function: fn.Ref(), FunctionVersion: fn.Version, Owner: fn.Owner,
			State: api.StateRunning, Attempts: 1, ReceivedAt: old, DispatchedAt: old.Add(time.Second)},
	}
	st, err := store.Open(filepath.Join(stateDir, "tasks.db"), zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	var recs []store.Record
	for _, task := range legacy {
		recs = append(recs, store.Record{Task: task, Identity: "tenant@example.org", Input: []byte{}})
	}
	err = st.CreateTasks(ctx, recs)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("write the legacy records: %v", err)
	}

	restarted := time.Now()
	s2 := startTestSite(t, func(c *conf.Config) {
		c.Site.StateDir = stateDir
		c.Tenants.Default.MaxRunning = 1
		// The test's token acts as the tasks' owner, to read them
		// through the API.
		c.Auth.Map = []conf.MapRule{{Match: "tenant@example.org", Account: s1.user.Name}}
	})
	c2 := s2.client(t)
	byState := map[api.State]api.Task{}
	waitFor(t, "one recovered task running and one queued", func() bool {
		clear(byState)
		for _, l := range legacy {
			task, err := c2.Task(ctx, l.ID, 0)
			if err != nil {
				t.Fatalf("GET task %s: %v", l.ID, err)
			}
			byState[task.State] = task
		}
		return len(byState) == 2 && byState[api.StateRunning].ID != "" && byState[api.StateQueued].ID != ""
	})
	if q := byState[api.StateQueued]; !q.DispatchedAt.IsZero() || !q.StartedAt.IsZero() || !q.ReceivedAt.Equal(old) {
		t.Errorf("queued recovered task %s: received %v, dispatched %v, started %v; want received %v kept, not dispatched nor started",
			q.ID, q.ReceivedAt, q.DispatchedAt, q.StartedAt, old)
	}
	if r := byState[api.StateRunning]; !r.StartedAt.IsZero() || r.DispatchedAt.Before(restarted) || r.Attempts != 2 {
		t.Errorf("running recovered task %s: attempt %d, dispatched %v, started %v; want attempt 2, dispatched after the restart at %v, not started yet",
			r.ID, r.Attempts, r.DispatchedAt, r.StartedAt, restarted)
	}

	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range legacy {
		var got api.Task
		waitFor(t, "recovered task "+l.ID+" to end, stored", func() bool {
			got, err = s2.d.store.GetTask(l.ID)
			return err == nil && got.State.Final()
		})
		if got.State != api.StateSucceeded || got.Attempts != 2 {
			t.Fatalf("recovered task %s = %s, attempt %d (%q); want succeeded, attempt 2", l.ID, got.State, got.Attempts, got.Error)
		}
		checkTimings(t, "recovered task "+l.ID, got)
		if got.DispatchedAt.Before(restarted) || !got.ReceivedAt.Equal(l.ReceivedAt) {
			t.Errorf("recovered task %s: received %v, dispatched %v; want received %v kept, dispatched after the restart at %v",
				l.ID, got.ReceivedAt, got.DispatchedAt, l.ReceivedAt, restarted)
		}
	}
}

// scrapePhaseCounts returns the sample counts of fxd_task_phase_seconds
// on /metrics by label set (scrapeSeries), failing unless all six series
// are there.
func scrapePhaseCounts(t *testing.T, socket string) map[string]float64 {
	t.Helper()
	counts := scrapeSeries(t, socket, "fxd_task_phase_seconds_count")
	if len(counts) != 6 {
		t.Fatalf("GET /metrics: fxd_task_phase_seconds_count series %v, want 6 (queue, start, run × cold, warm)", counts)
	}
	return counts
}

// scrapeSeries reads /metrics over the daemon's socket and returns the
// values of the metric name by label set, as written there
// (`phase="run",start="cold"`).
func scrapeSeries(t *testing.T, socket, name string) map[string]float64 {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://fxd/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %s", resp.Status)
	}
	series := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		v, err := strconv.ParseFloat(value, 64)
		if !ok || err != nil {
			t.Fatalf("GET /metrics: bad line %q", sc.Text())
		}
		series[labels] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	return series
}

// TestPhaseMetricsKnownEnds: fxd_task_phase_seconds observes only the
// phases whose ends a finished task knows.
func TestPhaseMetricsKnownEnds(t *testing.T) {
	m := newMetrics(func() runtimes.Stats { return runtimes.Stats{} }, func() int64 { return 0 })
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, task := range []api.Task{
		{State: api.StateCancelled, ReceivedAt: at(0), FinishedAt: at(5)},                                        // cancelled in the queue
		{State: api.StateFailed, Cold: true, ReceivedAt: at(0), DispatchedAt: at(1), FinishedAt: at(900)},        // worker did not start
		{State: api.StateSucceeded, ReceivedAt: at(0), DispatchedAt: at(0), StartedAt: at(2), FinishedAt: at(5)}, // warm; queue 0
	} {
		m.finished(task)
	}
	want := map[string]uint64{
		"queue/cold": 1, "start/cold": 0, "run/cold": 0,
		"queue/warm": 1, "start/warm": 1, "run/warm": 1,
	}
	got := map[string]uint64{}
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatalf("Gather() = %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fxd_task_phase_seconds" {
			continue
		}
		for _, s := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["phase"]+"/"+labels["start"]] = s.GetHistogram().GetSampleCount()
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("fxd_task_phase_seconds sample counts = %v, want %v", got, want)
	}
}
