package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"fxd.dev/fxd/api"
)

// benchConfig is what one bench run does.
type benchConfig struct {
	function, mode    string
	n, conc, batch    int
	input             []byte
	data              []api.DataRef // every task reads these
	site              string        // every task runs there (TaskSpec.Site)
	duration, pollFor time.Duration
	execBaseline      bool
}

// benchSummary is bench's report; --json prints it as is.
type benchSummary struct {
	Function       string    `json:"function"`
	Mode           string    `json:"mode"`
	Concurrency    int       `json:"concurrency"`
	Batch          int       `json:"batch"`
	Requested      int       `json:"requested"`
	Tasks          int       `json:"tasks"` // tasks that ended, in any state
	Failed         int       `json:"failed"`
	Errors         int       `json:"errors"` // tasks lost to request errors
	WallSeconds    float64   `json:"wall_seconds"`
	TasksPerSecond float64   `json:"tasks_per_second"`
	LatencyMs      latencyMs `json:"latency_ms"`
	FirstError     string    `json:"first_error,omitempty"`
	// Baseline is this machine's own fork/exec rate, when asked for.
	Baseline *execBaseline `json:"exec_baseline,omitempty"`
	latency  latencies     // for the table
	wall     time.Duration
}

type latencyMs struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// benchState is shared by the bench goroutines.
type benchState struct {
	cfg     benchConfig
	claimed atomic.Int64
	ended   atomic.Int64 // tasks that ended, for the progress line
	errs    atomic.Int64

	mu       sync.Mutex
	lat      []time.Duration
	failed   int
	firstErr error
}

// cmdBench is a load generator: -c goroutines run or submit up to -n tasks.
func cmdBench(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	cfg := benchConfig{pollFor: 30 * time.Second}
	fs.IntVar(&cfg.n, "n", 10000, "number of tasks")
	fs.IntVar(&cfg.conc, "c", 8, "concurrent callers")
	fs.IntVar(&cfg.batch, "b", 1, "tasks per submit batch (mode submit)")
	fs.StringVar(&cfg.mode, "mode", "run", "run (synchronous runs) or submit (batches, then batched waits)")
	input := fs.String("input", "", "input `STRING` of every task")
	var data dataFlag
	fs.Var(&data, "data", "`NAME=REF`: every task reads cache entry REF at $FXD_DATA/NAME (as fx run --data); repeatable")
	fs.StringVar(&cfg.site, "site", "", "run every task at federated peer site `NAME` (or any), through this site")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Minute, "stop after this long even if -n tasks have not run")
	fs.BoolVar(&cfg.execBaseline, "exec-baseline", false, "also fork/exec /bin/true here -n times with -c callers and report the rate of fxd's tasks as a share of it")
	pos, err := parseN(fs, args, 1, 1, "the function NAME (or owner/name)")
	if err != nil {
		return err
	}
	switch {
	case cfg.mode != "run" && cfg.mode != "submit":
		return usageError("--mode %q: want run or submit", cfg.mode)
	case cfg.n < 1 || cfg.conc < 1 || cfg.batch < 1:
		return usageError("-n, -c and -b must be 1 or more")
	case cfg.duration <= 0:
		return usageError("--duration must be above 0")
	}
	cfg.function, cfg.input, cfg.data = pos[0], []byte(*input), data
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	s := runBench(ctx, cl, cfg, c.progress())
	if cfg.execBaseline {
		b, err := measureExec(ctx, cfg.n, cfg.conc, cfg.duration)
		if err != nil {
			return err
		}
		if b.TasksPerSecond > 0 {
			b.Ratio = s.TasksPerSecond / b.TasksPerSecond
		}
		s.Baseline = &b
	}
	if g.json {
		err = printJSON(c.stdout, s)
	} else {
		err = printBench(c.stdout, s)
	}
	if err != nil {
		return err
	}
	switch {
	case s.Errors > 0 && s.Tasks == 0:
		return &exitError{code: exitAPI, err: fmt.Errorf("every request failed: %s", s.FirstError)}
	case s.Errors > 0:
		return &exitError{code: exitTask, err: fmt.Errorf("%d tasks lost to request errors; the first: %s", s.Errors, s.FirstError)}
	case s.Failed > 0:
		return &exitError{code: exitTask, err: fmt.Errorf("%d tasks did not succeed; fx status ID shows why", s.Failed)}
	}
	return nil
}

// runBench runs the load and returns its summary. progress, if not nil,
// is called about four times a second and once at the end.
func runBench(ctx context.Context, cl *api.Client, cfg benchConfig, progress func(ended, errs, n int64, elapsed time.Duration, final bool)) benchSummary {
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	st := &benchState{cfg: cfg, lat: make([]time.Duration, 0, cfg.n)}
	start := time.Now()
	var wg sync.WaitGroup
	for range cfg.conc {
		wg.Go(func() {
			if cfg.mode == "submit" {
				st.submitLoop(ctx, cl)
			} else {
				st.runLoop(ctx, cl)
			}
		})
	}
	if progress != nil {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		tick := time.NewTicker(250 * time.Millisecond)
		for waiting := true; waiting; {
			select {
			case <-done:
				waiting = false
			case <-tick.C:
				progress(st.ended.Load(), st.errs.Load(), int64(cfg.n), time.Since(start), false)
			}
		}
		tick.Stop()
		progress(st.ended.Load(), st.errs.Load(), int64(cfg.n), time.Since(start), true)
	}
	wg.Wait()
	return st.summary(time.Since(start))
}

// claim takes up to k of the n tasks and returns how many it got.
func (st *benchState) claim(k int) int {
	end := st.claimed.Add(int64(k))
	return int(max(0, min(int64(k), int64(st.cfg.n)-(end-int64(k)))))
}

func (st *benchState) runLoop(ctx context.Context, cl *api.Client) {
	for ctx.Err() == nil && st.claim(1) == 1 {
		t0 := time.Now()
		var t api.Task
		var err error
		if len(st.cfg.data) > 0 || st.cfg.site != "" {
			t, err = cl.Run(ctx, st.cfg.function, api.TaskSpec{InputBase64: st.cfg.input, Data: st.cfg.data, Site: st.cfg.site})
		} else {
			t, err = cl.RunRaw(ctx, st.cfg.function, st.cfg.input, 0)
		}
		if err != nil {
			st.fail(ctx, err, 1)
			continue
		}
		st.record(time.Since(t0), t.State == api.StateSucceeded)
	}
}

// submitLoop submits batches and waits for each with batched long polls;
// a task's latency runs from its submit to the poll that saw it end.
func (st *benchState) submitLoop(ctx context.Context, cl *api.Client) {
	spec := api.TaskSpec{Function: st.cfg.function, InputBase64: st.cfg.input, Data: st.cfg.data, Site: st.cfg.site}
	for ctx.Err() == nil {
		k := st.claim(st.cfg.batch)
		if k == 0 {
			return
		}
		t0 := time.Now()
		pending, err := cl.Submit(ctx, slices.Repeat([]api.TaskSpec{spec}, k))
		if err != nil {
			st.fail(ctx, err, k)
			continue
		}
		for len(pending) > 0 && ctx.Err() == nil {
			ts, err := cl.Tasks(ctx, api.TasksRequest{IDs: pending, Wait: api.Duration(st.cfg.pollFor)})
			if err != nil {
				st.fail(ctx, err, len(pending))
				break
			}
			d := time.Since(t0)
			next := make([]string, 0, len(pending))
			for i, t := range ts {
				if t.State.Final() {
					st.record(d, t.State == api.StateSucceeded)
				} else {
					next = append(next, pending[i])
				}
			}
			pending = next
		}
	}
}

func (st *benchState) record(d time.Duration, ok bool) {
	st.mu.Lock()
	st.lat = append(st.lat, d)
	if !ok {
		st.failed++
	}
	st.mu.Unlock()
	st.ended.Add(1)
}

// fail counts k tasks lost to err, unless the bench is over (--duration or
// an interrupt): those are neither done nor errors.
func (st *benchState) fail(ctx context.Context, err error, k int) {
	if ctx.Err() != nil {
		return
	}
	st.mu.Lock()
	if st.firstErr == nil {
		st.firstErr = err
	}
	st.mu.Unlock()
	st.errs.Add(int64(k))
}

func (st *benchState) summary(wall time.Duration) benchSummary {
	st.mu.Lock()
	defer st.mu.Unlock()
	l := summarize(st.lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	s := benchSummary{
		Function: st.cfg.function, Mode: st.cfg.mode, Concurrency: st.cfg.conc, Batch: st.cfg.batch,
		Requested: st.cfg.n, Tasks: len(st.lat), Failed: st.failed, Errors: int(st.errs.Load()),
		WallSeconds: wall.Seconds(), LatencyMs: latencyMs{ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max)},
		latency: l, wall: wall,
	}
	if st.cfg.mode == "run" {
		s.Batch = 1
	}
	if wall > 0 {
		s.TasksPerSecond = float64(s.Tasks) / wall.Seconds()
	}
	if st.firstErr != nil {
		s.FirstError = st.firstErr.Error()
	}
	return s
}

func printBench(w io.Writer, s benchSummary) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "function:\t%s (mode %s, concurrency %d, batch %d)\n", s.Function, s.Mode, s.Concurrency, s.Batch)
	fmt.Fprintf(tw, "tasks:\t%d of %d\n", s.Tasks, s.Requested)
	fmt.Fprintf(tw, "failed tasks:\t%d\n", s.Failed)
	fmt.Fprintf(tw, "errors:\t%d\n", s.Errors)
	fmt.Fprintf(tw, "wall time:\t%s\n", s.wall.Round(time.Millisecond))
	fmt.Fprintf(tw, "tasks/s:\t%.1f\n", s.TasksPerSecond)
	what := "round trip"
	if s.Mode == "submit" {
		what = "submit to result"
	}
	l := s.latency
	fmt.Fprintf(tw, "%s:\tp50 %s  p90 %s  p99 %s  max %s\n", what, fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.Max))
	if b := s.Baseline; b != nil {
		fmt.Fprintf(tw, "fork/exec here:\t%.1f /s (%d of /bin/true, concurrency %d); fxd at %.0f%% of it\n", b.TasksPerSecond, b.Runs, b.Concurrency, 100*b.Ratio)
	}
	return tw.Flush()
}

// progress returns bench's progress printer: a line redrawn in place on a
// terminal, else only the final line.
func (c *cli) progress() func(ended, errs, n int64, elapsed time.Duration, final bool) {
	return func(ended, errs, n int64, elapsed time.Duration, final bool) {
		if !c.stderrTTY && !final {
			return
		}
		rate := 0.0
		if elapsed > 0 {
			rate = float64(ended) / elapsed.Seconds()
		}
		line := fmt.Sprintf("bench: %d/%d tasks, %d errors, %.0f tasks/s, %s", ended, n, errs, rate, elapsed.Round(100*time.Millisecond))
		switch {
		case c.stderrTTY && final:
			fmt.Fprintf(c.stderr, "\r\033[K%s\n", line)
		case c.stderrTTY:
			fmt.Fprintf(c.stderr, "\r\033[K%s", line)
		default:
			fmt.Fprintln(c.stderr, line)
		}
	}
}

// execBaseline is the machine's own rate of fork/exec of /bin/true, the
// yardstick for command functions.
type execBaseline struct {
	Runs           int     `json:"runs"`
	Concurrency    int     `json:"concurrency"`
	TasksPerSecond float64 `json:"tasks_per_second"`
	Ratio          float64 `json:"ratio"` // fxd's tasks/s over this one's
}

// measureExec runs /bin/true n times from conc goroutines, each run a plain
// fork/exec and wait, and returns the rate.
func measureExec(ctx context.Context, n, conc int, limit time.Duration) (execBaseline, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var next, done atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= int64(n) {
				if err := exec.CommandContext(ctx, "/bin/true").Run(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil && ctx.Err() == nil {
		return execBaseline{}, fmt.Errorf("exec baseline: run /bin/true: %w", err)
	}
	b := execBaseline{Runs: int(done.Load()), Concurrency: conc}
	if wall := time.Since(start); wall > 0 {
		b.TasksPerSecond = float64(b.Runs) / wall.Seconds()
	}
	return b, nil
}
