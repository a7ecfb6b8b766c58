package runtimes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/runtimes/wire"
)

func TestCommand(t *testing.T) {
	f := newFixture(t, conf.Workers{})
	tests := []struct {
		name   string
		argv   []string
		input  string
		state  api.State
		output string
		code   int
		stderr string
		err    string // substring of Error
	}{
		{"echo", []string{"cat"}, "hello", api.StateSucceeded, "hello", 0, "", ""},
		{"exit code and stderr", []string{"sh", "-c", "echo oops >&2; exit 3"}, "", api.StateFailed, "", 3, "oops\n", "exit status 3"},
		{"template and env", []string{"sh", "-c", `echo "$1 $FXD_TASK_ID $FXD_ATTEMPT $FXD_FUNCTION $GREETING $(pwd)"`, "sh", "{task_id}/{attempt}"},
			"", api.StateSucceeded, "task1/1 task1 1 " + f.acct.Name + "/f hi " + f.acct.Home + "\n", 0, "", ""},
		{"no such file", []string{"nosuchcommand"}, "", api.StateFailed, "", -1, "", `start the command: command "nosuchcommand": no such file`},
		{"signal", []string{"sh", "-c", "kill -TERM $$"}, "", api.StateFailed, "", -1, "", "killed by signal terminated"},
		{"output too large", []string{"head", "-c", "3000000", "/dev/zero"}, "", api.StateFailed, "", 0, "", "output of 2.9 MiB exceeds the site's result limit (1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := f.command(tt.argv...)
			j.Function.Env = map[string]string{"GREETING": "hi"}
			j.Input = []byte(tt.input)
			res := f.pools.Run(t.Context(), j, 2)
			if res.State != tt.state || string(res.Output) != tt.output || res.ExitCode != tt.code ||
				res.Stderr != tt.stderr || !strings.Contains(res.Error, tt.err) || (tt.err == "") != (res.Error == "") {
				t.Fatalf("Run(%q) = %+v\nwant state %s, output %q, code %d, stderr %q, error with %q",
					tt.argv, res, tt.state, tt.output, tt.code, tt.stderr, tt.err)
			}
		})
	}
}

func TestCommandWarm(t *testing.T) {
	f := newFixture(t, conf.Workers{})
	first := f.pools.Run(t.Context(), f.command("cat"), 2)
	if first.State != api.StateSucceeded || !first.Cold || first.Worker == "" || first.StartedAt.IsZero() {
		t.Fatalf("first Run = %+v, want a cold success", first)
	}
	for i := range 5 {
		res := f.pools.Run(t.Context(), f.command("cat"), 2)
		if res.State != api.StateSucceeded || res.Cold || res.Worker != first.Worker {
			t.Fatalf("Run %d = %+v, want warm on %s", i, res, first.Worker)
		}
	}
	if s := f.pools.Stats(); s.Idle != 1 || s.Busy != 0 || s.ColdStarts != 1 || len(s.Keys) != 1 {
		t.Fatalf("Stats = %+v, want 1 idle, 1 cold start, 1 key", s)
	}
}

func TestCommandKilled(t *testing.T) {
	f := newFixture(t, conf.Workers{})
	tests := []struct {
		name    string
		timeout time.Duration
		cancel  bool
		state   api.State
		err     string
	}{
		{"timeout", 300 * time.Millisecond, false, api.StateTimedOut, "timed out after 300ms"},
		{"cancel", 30 * time.Second, true, api.StateCancelled, "cancelled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.cancel {
				time.AfterFunc(300*time.Millisecond, cancel)
			}
			j := f.command("sh", "-c", "sleep 100 & sleep 100")
			j.Timeout = tt.timeout
			res := f.pools.Run(ctx, j, 2)
			if res.State != tt.state || !strings.Contains(res.Error, tt.err) {
				t.Fatalf("Run = %+v, want %s with %q", res, tt.state, tt.err)
			}
			f.noProcsLeft(t)
			if f.real {
				if cg := cgroupsNamed(res.Worker); len(cg) != 0 {
					t.Errorf("cgroups left after %s: %v", tt.name, cg)
				}
			}
			if s := f.pools.Stats(); s.Idle+s.Busy != 0 {
				t.Errorf("Stats = %+v, want the worker discarded", s)
			}
			next := f.pools.Run(t.Context(), f.command("true"), 2)
			if next.State != api.StateSucceeded || !next.Cold || next.Worker == res.Worker {
				t.Fatalf("next Run = %+v, want a cold success on a new worker", next)
			}
		})
	}
}

// A task that leaves processes running, even daemonized ones, costs its
// worker; one whose background processes end in time keeps it warm.
func TestCommandLeftBehind(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		discarded    bool
	}{
		{"background", "sleep 100 > /dev/null 2>&1 & echo started", true},
		{"daemonized", "(setsid sleep 100 > /dev/null 2>&1 &); echo started", true},
		{"ended in time", "(sleep 0.01 &); sleep 0.2; echo started", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, conf.Workers{})
			res := f.pools.Run(t.Context(), f.command("sh", "-c", tc.script), 2)
			if res.State != api.StateSucceeded || string(res.Output) != "started\n" {
				t.Fatalf("Run = %+v, want success", res)
			}
			if s := f.pools.Stats(); (s.Idle+s.Busy == 0) != tc.discarded {
				t.Fatalf("Stats = %+v, want the worker discarded: %v", s, tc.discarded)
			}
			if tc.discarded {
				f.noProcsLeft(t)
			}
			if next := f.pools.Run(t.Context(), f.command("true"), 2); next.Cold != tc.discarded {
				t.Fatalf("next Run = %+v, want a cold start: %v", next, tc.discarded)
			}
		})
	}
}

func TestCommandOOM(t *testing.T) {
	f := newFixture(t, conf.Workers{})
	if !f.real {
		testenv.Unavailable(t, "needs the real executor (isolation/plain) with cgroups")
	}
	limit := int64(32 << 20)
	j := f.command("dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1")
	j.Limits = specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}
	res := f.pools.Run(t.Context(), j, 2)
	want := "out of memory: the worker's memory limit (32 MiB) was exceeded"
	if res.State != api.StateFailed || !strings.HasPrefix(res.Error, want) {
		t.Fatalf("Run = %+v, want failed with %q", res, want)
	}
}

func TestMaxWorkers(t *testing.T) {
	f := newFixture(t, conf.Workers{})
	const tasks, maxWorkers = 10, 2
	var wg sync.WaitGroup
	results := make([]Result, tasks)
	for i := range tasks {
		wg.Go(func() { results[i] = f.pools.Run(t.Context(), f.command("sleep", "0.1"), maxWorkers) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	most := 0
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(2 * time.Millisecond):
		}
		s := f.pools.Stats()
		most = max(most, s.Idle+s.Busy)
	}
	workers := map[string]bool{}
	for i, r := range results {
		if r.State != api.StateSucceeded {
			t.Fatalf("task %d = %+v", i, r)
		}
		workers[r.Worker] = true
	}
	if most > maxWorkers || len(workers) > maxWorkers {
		t.Fatalf("saw %d workers at once and %d in all, want at most %d", most, len(workers), maxWorkers)
	}
}

// Tasks of two keys contending for fewer workers than they need all run:
// released workers go to waiters of their key, and waiters of the other
// key get room by stopping idle ones. Some waiters give up meanwhile.
func TestWaitersMixedKeys(t *testing.T) {
	f := newFixture(t, conf.Workers{})
	const tasks, maxWorkers = 40, 2
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	results := make([]Result, tasks)
	var wg sync.WaitGroup
	for i := range tasks {
		job := f.command("true")
		if i%2 == 1 { // another key: other limits
			job.Limits.Pids = &specs.LinuxPids{Limit: new(int64(100))}
		}
		if i%3 == 0 { // a third wait with a short deadline
			wg.Go(func() {
				short, stop := context.WithTimeout(ctx, time.Millisecond)
				defer stop()
				results[i] = f.pools.Run(short, job, maxWorkers)
			})
			continue
		}
		wg.Go(func() { results[i] = f.pools.Run(ctx, job, maxWorkers) })
	}
	wg.Wait()
	for i, r := range results {
		ok := r.State == api.StateSucceeded || (i%3 == 0 && r.State == api.StateCancelled)
		if !ok {
			t.Errorf("task %d = %+v", i, r)
		}
	}
	if s := f.pools.Stats(); s.Busy != 0 || s.Idle > maxWorkers {
		t.Errorf("Stats after = %+v, want no busy worker and at most %d idle", s, maxWorkers)
	}
}

func TestEvictOtherKey(t *testing.T) {
	f := newFixture(t, conf.Workers{})
	cmd := f.pools.Run(t.Context(), f.command("true"), 1)
	srv := f.pools.Run(t.Context(), f.servable(python(t, "servable.py")...), 1)
	if cmd.State != api.StateSucceeded || srv.State != api.StateSucceeded || !srv.Cold {
		t.Fatalf("Run = %+v then %+v, want two cold successes", cmd, srv)
	}
	if s := f.pools.Stats(); s.Idle != 1 {
		t.Fatalf("Stats = %+v, want the command worker stopped for the servable", s)
	}
	// With the only worker busy, a task of another key waits until its ctx ends.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	busy := make(chan Result)
	go func() { busy <- f.pools.Run(ctx, f.servable(python(t, "servable.py")...).with("sleep"), 1) }()
	for i := 0; f.pools.Stats().Busy == 0 && i < 250; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer wcancel()
	if res := f.pools.Run(wctx, f.command("true"), 1); res.State != api.StateCancelled || !strings.Contains(res.Error, "waiting for a worker") {
		t.Fatalf("Run while the only worker is busy = %+v, want cancelled while waiting", res)
	}
	cancel()
	if res := <-busy; res.State != api.StateCancelled {
		t.Fatalf("busy Run = %+v, want cancelled", res)
	}
}

func TestServable(t *testing.T) {
	f := newFixture(t, conf.Workers{})
	argv := python(t, "upper.py")
	var worker string
	for i := range 50 {
		j := f.servable(argv...)
		j.Input = []byte(fmt.Sprintf("hello %d", i))
		res := f.pools.Run(t.Context(), j, 2)
		if res.State != api.StateSucceeded || string(res.Output) != fmt.Sprintf("HELLO %d", i) || res.Cold != (i == 0) {
			t.Fatalf("Run %d = %+v, want HELLO %d", i, res, i)
		}
		if worker == "" {
			worker = res.Worker
		}
		if res.Worker != worker {
			t.Fatalf("Run %d on %s, want %s", i, res.Worker, worker)
		}
	}
}

func TestServableAnswers(t *testing.T) {
	f := newFixture(t, conf.Workers{})
	argv := python(t, "servable.py")
	tests := []struct {
		input, output string
		state         api.State
		err           string
	}{
		{"ping", "ping", api.StateSucceeded, ""},
		{"error", "", api.StateFailed, "servable error: bad input"},
		{"big", "", api.StateFailed, "output of 4.9 KiB exceeds the site's result limit (1000 B"},
		{"env", f.acct.Name + "/f hi", api.StateSucceeded, ""},
	}
	var worker string
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			j := f.servable(argv...)
			j.Function.Env = map[string]string{"GREETING": "hi"}
			j.Input, j.MaxOutput = []byte(tt.input), 1000
			res := f.pools.Run(t.Context(), j, 2)
			if res.State != tt.state || string(res.Output) != tt.output || !strings.Contains(res.Error, tt.err) {
				t.Fatalf("Run(%q) = %+v, want %s %q %q", tt.input, res, tt.state, tt.output, tt.err)
			}
			if worker == "" {
				worker = res.Worker
			}
			if res.Worker != worker {
				t.Fatalf("Run(%q) on %s, want the worker kept (%s)", tt.input, res.Worker, worker)
			}
		})
	}
}

func TestServableCrash(t *testing.T) {
	tests := []struct {
		name  string
		retry bool
		input string
		state api.State
	}{
		{"fails", false, "crash", api.StateFailed},
		{"retried", true, "crash-once", api.StateSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, conf.Workers{ServableRetry: tt.retry})
			j := f.servable(python(t, "servable.py")...)
			first := f.pools.Run(t.Context(), j, 2)
			j.Input = []byte(tt.input)
			res := f.pools.Run(t.Context(), j, 2)
			if res.State != tt.state {
				t.Fatalf("Run(%s) = %+v, want %s", tt.input, res, tt.state)
			}
			if tt.state == api.StateFailed {
				want := "servable exited with status 1 while running the task: boom: asked to crash"
				if res.Error != want || res.Stderr != "boom: asked to crash\n" || res.Worker != first.Worker {
					t.Fatalf("Run(crash) = %+v, want error %q on %s", res, want, first.Worker)
				}
			} else if string(res.Output) != "crash-once" || res.Worker == first.Worker {
				t.Fatalf("Run(crash-once) = %+v, want it retried on a new worker", res)
			}
			j.Input = []byte("pong")
			next := f.pools.Run(t.Context(), j, 2)
			if next.State != api.StateSucceeded || string(next.Output) != "pong" || next.Worker == first.Worker {
				t.Fatalf("next Run = %+v, want success on a new worker", next)
			}
		})
	}
}

func TestServableTimeout(t *testing.T) {
	f := newFixture(t, conf.Workers{})
	j := f.servable(python(t, "servable.py")...)
	j.Input, j.Timeout = []byte("sleep"), 500*time.Millisecond
	res := f.pools.Run(t.Context(), j, 2)
	if res.State != api.StateTimedOut {
		t.Fatalf("Run = %+v, want timed out", res)
	}
	f.noProcsLeft(t)
}

func TestReap(t *testing.T) {
	f := newFixture(t, conf.Workers{IdleTimeout: conf.Duration(time.Minute)})
	if res := f.pools.Run(t.Context(), f.command("true"), 2); res.State != api.StateSucceeded {
		t.Fatalf("Run = %+v", res)
	}
	if n := f.pools.reap(time.Now()); n != 0 {
		t.Fatalf("reap(now) stopped %d workers, want 0", n)
	}
	if n := f.pools.reap(time.Now().Add(time.Minute + time.Second)); n != 1 {
		t.Fatalf("reap(in a minute) stopped %d workers, want 1", n)
	}
	if s := f.pools.Stats(); s.Idle+s.Busy != 0 {
		t.Fatalf("Stats = %+v, want no workers", s)
	}
}

func TestReapLoop(t *testing.T) {
	f := newFixture(t, conf.Workers{IdleTimeout: conf.Duration(50 * time.Millisecond)})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- f.pools.Reap(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Reap = %v", err)
		}
	}()
	if res := f.pools.Run(t.Context(), f.command("true"), 2); res.State != api.StateSucceeded {
		t.Fatalf("Run = %+v", res)
	}
	for range 250 {
		if s := f.pools.Stats(); s.Idle == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("Stats = %+v after 5s, want the idle worker reaped", f.pools.Stats())
}

func TestRefused(t *testing.T) {
	f := newFixture(t, conf.Workers{})
	tests := []struct {
		name string
		edit func(*Job)
		err  string
	}{
		{"root", func(j *Job) { j.Account.UID = 0 }, "uid 0 is refused"},
		{"image without containers", func(j *Job) { j.Function.Runtime = "pytorch" }, `runtime "pytorch": this node runs no containers`},
		{"no command", func(j *Job) { j.Function.Command = nil }, "has no command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := f.command("true")
			tt.edit(&j)
			if res := f.pools.Run(t.Context(), j, 1); res.State != api.StateFailed || !strings.Contains(res.Error, tt.err) {
				t.Fatalf("Run = %+v, want failed with %q", res, tt.err)
			}
		})
	}
}

func TestClose(t *testing.T) {
	f := newFixture(t, conf.Workers{})
	ctx := t.Context()
	busy := make(chan Result)
	go func() { busy <- f.pools.Run(ctx, f.command("sleep", "100"), 2) }()
	for range 250 {
		if f.pools.Stats().Busy == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := f.pools.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if res := <-busy; res.State != api.StateFailed {
		t.Fatalf("busy Run after Close = %+v, want failed", res)
	}
	if res := f.pools.Run(ctx, f.command("true"), 2); res.State != api.StateFailed || !strings.Contains(res.Error, "closed") {
		t.Fatalf("Run after Close = %+v, want failed", res)
	}
	f.noProcsLeft(t)
}

func TestFindShim(t *testing.T) {
	if _, err := FindShim("/nonexistent/fxd-shim"); err == nil || !strings.Contains(err.Error(), "workers.shim") {
		t.Fatalf("FindShim(missing) = %v, want an error naming workers.shim", err)
	}
	if _, err := FindShim(""); err == nil || !strings.Contains(err.Error(), "set workers.shim") {
		t.Fatalf("FindShim(\"\") = %v, want an error saying how to fix it", err)
	}
}

func TestPrivatePath(t *testing.T) {
	dir, err := os.MkdirTemp("", "fxd-privatepath-") // t.TempDir's parent is 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	shim := filepath.Join(dir, "fxd-shim")
	if err := os.WriteFile(shim, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, _, private := privatePath(shim); private {
		t.Errorf("privatePath(%s) = %s, want reachable", shim, p)
	}
	os.Chmod(dir, 0o700)
	if p, mode, private := privatePath(shim); !private || p != dir || mode != 0o700 {
		t.Errorf("privatePath under a 0700 dir = %s %04o %v, want %s 0700 private", p, mode, private, dir)
	}
	os.Chmod(dir, 0o755)
	os.Chmod(shim, 0o700)
	if p, _, private := privatePath(shim); !private || p != shim {
		t.Errorf("privatePath of a 0700 file = %s %v, want the file itself", p, private)
	}
}

func TestFunctionEnv(t *testing.T) {
	base := []string{"HOME=/home/a", "PATH=/usr/bin:/bin", "FXD_WORKER=w1"}
	for _, tc := range []struct {
		name string
		fn   map[string]string
		fxd  []string
		want []string
	}{
		{"no function env", nil, []string{"FXD_TASK_ID=t1"}, []string{"HOME=/home/a", "PATH=/usr/bin:/bin", "FXD_WORKER=w1", "FXD_TASK_ID=t1"}},
		{"function env overrides base in place, sorted", map[string]string{"PATH": "/opt/bin", "B": "2", "A": "1"}, nil,
			[]string{"HOME=/home/a", "PATH=/opt/bin", "FXD_WORKER=w1", "A=1", "B=2"}},
		{"fxd's own variables win", map[string]string{"FXD_TASK_ID": "forged", "FXD_WORKER": "forged"}, []string{"FXD_TASK_ID=t1"},
			[]string{"HOME=/home/a", "PATH=/usr/bin:/bin", "FXD_WORKER=forged", "FXD_TASK_ID=t1"}},
	} {
		if got := functionEnv(base, tc.fn, tc.fxd...); !slices.Equal(got, tc.want) {
			t.Errorf("%s: functionEnv = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestSend: a task is unsent, and may move to another worker, only when
// not one byte of it reached the worker.
func TestSend(t *testing.T) {
	input := make([]byte, 1000)
	tests := []struct {
		name   string
		after  int // bytes the worker takes before its end closes; -1 takes all
		unsent bool
	}{
		{"nothing reached", 0, true},
		{"header reached", 5, false},
		{"part of the input reached", 600, false},
		{"all reached", -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fw := &failAfter{left: tt.after}
			err := send(fw, func(w io.Writer) error { return wire.WriteRequest(w, input) })
			if tt.after < 0 {
				if err != nil {
					t.Fatalf("send = %v, want nil", err)
				}
				return
			}
			if err == nil || errors.Is(err, errUnsent) != tt.unsent || !errors.Is(err, syscall.EPIPE) {
				t.Fatalf("send after %d bytes = %v, want EPIPE, unsent %v", tt.after, err, tt.unsent)
			}
		})
	}
}

// failAfter takes left bytes (all when left < 0), then fails as a pipe
// whose reader is gone.
type failAfter struct{ left int }

func (f *failAfter) Write(p []byte) (int, error) {
	switch {
	case f.left < 0:
		return len(p), nil
	case len(p) <= f.left:
		f.left -= len(p)
		return len(p), nil
	}
	n := f.left
	f.left = 0
	return n, syscall.EPIPE
}

// TestServableDied: a task whose warm servable stopped reading while
// idle, before the pools saw it go, runs on another worker; one whose
// servable died after reading part of it is not run again without
// servable_retry, for the servable may have acted on what it read.
func TestServableDied(t *testing.T) {
	tests := []struct {
		name  string
		first string // the input of the task before
		input []byte
		state api.State
		moved bool // run on another worker than the task before
	}{
		{"idle", "close-stdin", []byte("pong"), api.StateSucceeded, true},
		{"reading", "ping", make([]byte, 4<<20), api.StateFailed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, conf.Workers{ServableRetry: false})
			j := f.servable(python(t, "servable.py")...)
			first := f.pools.Run(t.Context(), j.with(tt.first), 2)
			if first.State != api.StateSucceeded {
				t.Fatalf("Run(%s) = %+v", tt.first, first)
			}
			j.Input = tt.input
			res := f.pools.Run(t.Context(), j, 2)
			if res.State != tt.state || (res.Worker != first.Worker) != tt.moved {
				t.Fatalf("Run = %s %q on %s (the task before on %s), want %s, moved %v", res.State, res.Error, res.Worker, first.Worker, tt.state, tt.moved)
			}
			if !tt.moved && !strings.Contains(res.Error, "servable exited with status 1") {
				t.Errorf("Run error = %q, want the servable's exit", res.Error)
			}
		})
	}
}
