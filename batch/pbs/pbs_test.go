package pbs

import (
	"cmp"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/batch"
	"fxd.dev/fxd/batch/batchtest"
	"fxd.dev/fxd/conf"
)

// The tests run against fakes: PBS cannot run here. testdata/bin holds
// qsub, qstat, qdel, pbsnodes, pbs_rstat and pbs_tmrsh scripts that
// replay recorded OpenPBS output (testdata/README.md), keeping their jobs
// in a state directory; the provider's own exec-and-parse code runs.

// fake puts the fake PBS commands first on PATH with a state directory of
// their own, and returns the directory.
func fake(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs("testdata/bin")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	t.Setenv("FXD_PBS_FAKE_DIR", dir)
	return dir
}

// newProvider is a provider for c that logs to the test.
func newProvider(t *testing.T, c conf.PBSPool) *Provider {
	t.Helper()
	p, err := New(c, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// setState puts the fake's job id in state (Q, H, R, E, F, F271, the
// names of testdata/qstat/job-*.json), or forgets it for "".
func setState(t *testing.T, dir string, id batch.JobID, state string) {
	t.Helper()
	seq, _, _ := strings.Cut(string(id), ".")
	job := filepath.Join(dir, "jobs", seq)
	if state == "" {
		if err := os.RemoveAll(job); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(filepath.Join(job, "state"), []byte(state+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replay makes the fake cmd print the file out (relative to the package),
// stderr on its stderr, and exit with rc, until the test ends.
func replay(t *testing.T, dir, cmd, out, stderr string, rc int) {
	t.Helper()
	if out == "" {
		out = "/dev/null"
	} else if !filepath.IsAbs(out) {
		var err error
		if out, err = filepath.Abs(out); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(dir, cmd+".replay"), out)
	write(t, filepath.Join(dir, cmd+".stderr"), stderr)
	write(t, filepath.Join(dir, cmd+".rc"), strconv.Itoa(rc))
	t.Cleanup(func() {
		for _, ext := range []string{".replay", ".stderr", ".rc"} {
			os.Remove(filepath.Join(dir, cmd+ext))
		}
	})
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// calls is what the fake cmd was run with, one line per run.
func calls(t *testing.T, dir, cmd string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, cmd+".calls"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// A block's life: submitted, pending, running on its nodes, cancelled,
// finished, and at last forgotten by PBS.
func TestCycle(t *testing.T) {
	dir := fake(t)
	p := newProvider(t, conf.PBSPool{Queue: "workq", Account: "m1234"})
	b := batch.Block{Name: "fxd-cpu-3", Nodes: 2, Walltime: 90 * time.Minute,
		Command: []string{"/usr/bin/fxd", "node"}, Env: map[string]string{"FXD_TOKEN": "s3cret"}}
	id, err := p.Submit(t.Context(), b)
	if err != nil || id != "1000.pbs01" {
		t.Fatalf("Submit = %q, %v; want 1000.pbs01", id, err)
	}
	if args := read(t, filepath.Join(dir, "jobs/1000/args")); args != "-f\n" {
		t.Errorf("qsub args = %q, want just -f: the script says the rest", args)
	}
	if script := read(t, filepath.Join(dir, "jobs/1000/script")); !strings.Contains(script, "#PBS -q workq\n") ||
		!strings.Contains(script, "#PBS -A m1234\n") || !strings.Contains(script, "s3cret") {
		t.Errorf("job script on qsub's stdin lacks the queue, account or environment:\n%s", script)
	}

	poll := func(want batch.State) batch.Status {
		t.Helper()
		got, err := p.Poll(t.Context(), []batch.JobID{id})
		if err != nil || got[id].State != want {
			t.Fatalf("Poll(%s) = %+v, %v; want %s", id, got, err, want)
		}
		return got[id]
	}
	if st := poll(batch.StatePending); !strings.Contains(st.Reason, "Insufficient amount of resource") || st.Nodes != nil {
		t.Errorf("pending status = %+v, want PBS's comment and no nodes", st)
	}
	setState(t, dir, id, "R")
	if st := poll(batch.StateRunning); strings.Join(st.Nodes, ",") != "cn001,cn002" {
		t.Errorf("running status = %+v, want nodes cn001,cn002", st)
	}
	if err := p.Cancel(t.Context(), id); err != nil {
		t.Fatalf("Cancel(running) = %v", err)
	}
	if st := poll(batch.StateDone); !strings.HasPrefix(st.Reason, "exit 271 (signal 15): Job run at") {
		t.Errorf("cancelled status = %+v, want exit 271 (signal 15) and PBS's comment", st)
	}
	setState(t, dir, id, "")
	poll(batch.StateGone)
	want := "-f -F json -x 1000.pbs01"
	if got := calls(t, dir, "qstat"); len(got) != 4 || got[0] != want {
		t.Errorf("qstat ran as %q, want 4 times %q", got, want)
	}
}

func TestNew(t *testing.T) {
	for name, c := range map[string]conf.PBSPool{
		"queue with space":   {Queue: "work q"},
		"queue option":       {Queue: "-x"},
		"account with quote": {Account: `m"1`},
		"account newline":    {Account: "m1\n#PBS -l select=100"},
		"account hash":       {Account: "m#1"},
		"account space":      {Account: "m 1"},
	} {
		if _, err := New(c, zerolog.Nop()); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("New(%s: %+v) = %v, want api.ErrInvalid", name, c, err)
		}
	}
	for _, c := range []conf.PBSPool{{}, {Queue: "workq"}, {Queue: "debug@pbs01.example.org", Account: "PRJ-0042_a"}} {
		if _, err := New(c, zerolog.Nop()); err != nil {
			t.Errorf("New(%+v) = %v", c, err)
		}
	}
}

// The conformance suite, against the fakes: blocks move between states
// when the suite says, as the fakes do not run them (Options.Runs false).
func TestConformance(t *testing.T) {
	dir := fake(t)
	states := map[batch.State]string{batch.StatePending: "Q", batch.StateRunning: "R", batch.StateDone: "F", batch.StateGone: ""}
	batchtest.Run(t, func(t *testing.T) batch.Provider { return newProvider(t, conf.PBSPool{}) }, batchtest.Options{
		Advance:   func(t *testing.T, id batch.JobID, s batch.State) { setState(t, dir, id, states[s]) },
		UnknownID: "999999.pbs01",
		Idle:      true,
		Timeout:   10 * time.Second,
	})
}

// One qstat answers for many ids: the ones it knows, those it does not
// (gone), ids that cannot be PBS's (gone, never asked), each once.
func TestPollMany(t *testing.T) {
	dir := fake(t)
	p := newProvider(t, conf.PBSPool{})
	var ids []batch.JobID
	for _, state := range []string{"Q", "H", "R", "E", "F"} {
		id, err := p.Submit(t.Context(), batch.Block{Name: "fxd-" + state, Nodes: 1, Walltime: time.Minute, Command: []string{"/bin/true"}})
		if err != nil {
			t.Fatal(err)
		}
		setState(t, dir, id, state)
		ids = append(ids, id)
	}
	ids = append(ids, "4711.pbs01", "not a job", ids[0], "1000")
	got, err := p.Poll(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	want := map[batch.JobID]batch.State{"1000.pbs01": batch.StatePending, "1001.pbs01": batch.StatePending,
		"1002.pbs01": batch.StateRunning, "1003.pbs01": batch.StateDone, "1004.pbs01": batch.StateDone,
		"4711.pbs01": batch.StateGone, "not a job": batch.StateGone, "1000": batch.StatePending}
	for id, w := range want {
		if got[id].State != w {
			t.Errorf("Poll: %s = %+v, want %s", id, got[id], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Poll = %d statuses, want %d: %+v", len(got), len(want), got)
	}
	if c := calls(t, dir, "qstat"); len(c) != 1 || c[0] != "-f -F json -x 1000.pbs01 1001.pbs01 1002.pbs01 1003.pbs01 1004.pbs01 4711.pbs01 1000" {
		t.Errorf("qstat ran as %q, want once with each PBS id", c)
	}
}

// A server that keeps no job history refuses -x: Poll asks again without
// it, and a finished job is gone.
func TestPollNoHistory(t *testing.T) {
	dir := fake(t)
	write(t, filepath.Join(dir, "nohistory"), "")
	p := newProvider(t, conf.PBSPool{})
	b := batch.Block{Name: "fxd-x", Nodes: 1, Walltime: time.Minute, Command: []string{"/bin/true"}}
	run, _ := p.Submit(t.Context(), b)
	done, _ := p.Submit(t.Context(), b)
	setState(t, dir, run, "R")
	setState(t, dir, done, "F")
	got, err := p.Poll(t.Context(), []batch.JobID{run, done})
	if err != nil || got[run].State != batch.StateRunning || got[done].State != batch.StateGone {
		t.Fatalf("Poll = %+v, %v; want %s running and %s gone", got, err, run, done)
	}
	if c := calls(t, dir, "qstat"); len(c) != 2 || !strings.Contains(c[0], "-x") || strings.Contains(c[1], "-x") {
		t.Errorf("qstat ran as %q, want with -x, then without", c)
	}
}

// Cancel is idempotent: a job that has finished, is exiting, or that PBS
// does not know is no error, whatever qdel's exit status.
func TestCancelIdempotent(t *testing.T) {
	for _, state := range []string{"Q", "R", "E", "F", "F271", ""} {
		t.Run("state "+cmp.Or(state, "unknown"), func(t *testing.T) {
			dir := fake(t)
			p := newProvider(t, conf.PBSPool{})
			id, err := p.Submit(t.Context(), batch.Block{Name: "fxd-x", Nodes: 1, Walltime: time.Minute, Command: []string{"/bin/true"}})
			if err != nil {
				t.Fatal(err)
			}
			setState(t, dir, id, state)
			for i := range 2 {
				if err := p.Cancel(t.Context(), id); err != nil {
					t.Errorf("Cancel(%s) #%d = %v, want nil", id, i+1, err)
				}
			}
		})
	}
	p := newProvider(t, conf.PBSPool{})
	if err := p.Cancel(t.Context(), "rm -rf"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Cancel(not a job id) = %v, want api.ErrInvalid", err)
	}
}

// A command that fails comes back as a *batch.CommandError with what it
// said on stderr, wrapped with what the provider was doing.
func TestCommandFailure(t *testing.T) {
	like := batch.Block{Name: "fxd-x", Nodes: 1, Walltime: time.Hour, Command: []string{"/bin/true"}}
	for _, tc := range []struct {
		cmd, stderr string
		rc          int
		call        func(p *Provider) error
	}{
		{"qsub", "qsub: Unknown queue", 170, func(p *Provider) error { _, err := p.Submit(t.Context(), like); return err }},
		{"qsub", "qsub: Job violates queue and/or server resource limits", 38, func(p *Provider) error { _, err := p.Submit(t.Context(), like); return err }},
		{"qstat", "qstat: cannot connect to server pbs01 (errno=15010)", 1, func(p *Provider) error { _, err := p.Poll(t.Context(), []batch.JobID{"1.pbs01"}); return err }},
		{"qstat", "qstat: Unknown Job Id 1.pbs01\nqstat: Unauthorized Request  2.pbs01", 159, func(p *Provider) error {
			_, err := p.Poll(t.Context(), []batch.JobID{"1.pbs01", "2.pbs01"})
			return err
		}},
		{"qdel", "qdel: Unauthorized Request  1.pbs01", 159, func(p *Provider) error { return p.Cancel(t.Context(), "1.pbs01") }},
		{"pbsnodes", "pbsnodes: cannot connect to server pbs01, error=15010", 1, func(p *Provider) error { _, err := p.Windows(t.Context(), like); return err }},
	} {
		t.Run(tc.cmd+" "+strconv.Itoa(tc.rc), func(t *testing.T) {
			dir := fake(t)
			replay(t, dir, tc.cmd, "", tc.stderr, tc.rc)
			err := tc.call(newProvider(t, conf.PBSPool{}))
			var ce *batch.CommandError
			if !errors.As(err, &ce) || ce.ExitCode() != tc.rc || ce.Stderr != tc.stderr || !strings.HasPrefix(ce.Command, tc.cmd+" ") {
				t.Errorf("%s failing = %v, want a *batch.CommandError of exit %d with its stderr %q", tc.cmd, err, tc.rc, tc.stderr)
			}
		})
	}
	t.Run("pbs_rstat", func(t *testing.T) {
		dir := fake(t)
		replay(t, dir, "pbs_rstat", "", "pbs_rstat: cannot connect to server (errno=15010)", 1)
		var ce *batch.CommandError
		if _, err := newProvider(t, conf.PBSPool{}).Windows(t.Context(), like); !errors.As(err, &ce) || !strings.Contains(ce.Stderr, "cannot connect") {
			t.Errorf("Windows with pbs_rstat failing = %v, want its *batch.CommandError", err)
		}
	})
	t.Run("not installed", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := newProvider(t, conf.PBSPool{}).Submit(t.Context(), like)
		var ce *batch.CommandError
		if !errors.As(err, &ce) || !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("Submit without qsub = %v, want a *batch.CommandError wrapping exec.ErrNotFound", err)
		}
	})
}

// Output the provider cannot read is an error wrapping batch.ErrBadOutput,
// never a panic nor a guess.
func TestGarbageOutput(t *testing.T) {
	like := batch.Block{Name: "fxd-x", Nodes: 1, Walltime: time.Hour, Command: []string{"/bin/true"}}
	for _, tc := range []struct {
		cmd, out string
		call     func(p *Provider) error
	}{
		{"qsub", "Your job has been submitted\n", func(p *Provider) error { _, err := p.Submit(t.Context(), like); return err }},
		{"qsub", "", func(p *Provider) error { _, err := p.Submit(t.Context(), like); return err }},
		{"qstat", "<html><body>maintenance</body></html>\n", func(p *Provider) error { _, err := p.Poll(t.Context(), []batch.JobID{"1.pbs01"}); return err }},
		{"qstat", "", func(p *Provider) error { _, err := p.Poll(t.Context(), []batch.JobID{"1.pbs01"}); return err }},
		{"qstat", `{"Jobs":{"1.pbs01":{"job_state":"Running"}}}`, func(p *Provider) error { _, err := p.Poll(t.Context(), []batch.JobID{"1.pbs01"}); return err }},
		{"pbsnodes", `{"timestamp":1,"pbs_version":"2023.1.1"`, func(p *Provider) error { _, err := p.Windows(t.Context(), like); return err }},
		{"pbsnodes", "", func(p *Provider) error { _, err := p.Windows(t.Context(), like); return err }},
		{"pbs_rstat", "Resv ID: R5310.pbs01\nreserve_start = soon\n", func(p *Provider) error { _, err := p.Windows(t.Context(), like); return err }},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			dir := fake(t)
			path := filepath.Join(t.TempDir(), "out")
			write(t, path, tc.out)
			replay(t, dir, tc.cmd, path, "", 0)
			if err := tc.call(newProvider(t, conf.PBSPool{})); !errors.Is(err, batch.ErrBadOutput) {
				t.Errorf("%s printing %q: %v, want batch.ErrBadOutput", tc.cmd, tc.out, err)
			}
		})
	}
}

// Windows, through the fakes, at the fake's now: the cluster's free
// hosts, bounded by the reservation due in 40 minutes on two of them.
func TestWindowsFake(t *testing.T) {
	fake(t)
	for _, tc := range []struct {
		name  string
		c     conf.PBSPool
		like  batch.Block
		nodes []int
		long  []bool // Duration 0
	}{
		{"an hour", conf.PBSPool{}, batch.Block{Nodes: 10, Walltime: time.Hour}, []int{4, 6}, []bool{true, false}},
		{"the gpu queue", conf.PBSPool{Queue: "gpu@pbs01"}, batch.Block{Nodes: 10, Walltime: time.Hour}, []int{5, 7}, []bool{true, false}},
		{"-q in options", conf.PBSPool{}, batch.Block{Nodes: 10, Walltime: time.Hour, Options: []string{"-q gpu"}}, []int{5, 7}, []bool{true, false}},
		{"half an hour", conf.PBSPool{}, batch.Block{Nodes: 10, Walltime: 30 * time.Minute}, []int{6}, []bool{true}},
		{"two nodes", conf.PBSPool{}, batch.Block{Nodes: 2, Walltime: time.Hour}, []int{2}, []bool{true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := newProvider(t, tc.c).Windows(t.Context(), tc.like)
			if err != nil {
				t.Fatal(err)
			}
			if len(ws) != len(tc.nodes) {
				t.Fatalf("Windows = %+v, want %d windows of %v nodes", ws, len(tc.nodes), tc.nodes)
			}
			for i, w := range ws {
				bounded := w.Duration > 36*time.Minute && w.Duration <= 38*time.Minute
				if w.Nodes != tc.nodes[i] || tc.long[i] != (w.Duration == 0) || !tc.long[i] && !bounded {
					t.Errorf("Windows = %+v: #%d want %d nodes, for %s", ws, i, tc.nodes[i], map[bool]string{true: "the walltime", false: "38 minutes"}[tc.long[i]])
				}
			}
		})
	}
}

// Find runs qstat -f -F json without ids or -x, through the fake, and
// finds the submitted jobs of the name that have not finished.
func TestFind(t *testing.T) {
	dir := fake(t)
	p := newProvider(t, conf.PBSPool{})
	b := batch.Block{Name: "fxd-cpu-7", Nodes: 1, Walltime: time.Minute, Command: []string{"/bin/true"}}
	var ids []batch.JobID
	for _, state := range []string{"Q", "R", "E", "F"} {
		id, err := p.Submit(t.Context(), b)
		if err != nil {
			t.Fatal(err)
		}
		setState(t, dir, id, state)
		ids = append(ids, id)
	}
	got, err := p.Find(t.Context(), "fxd-cpu-7")
	if err != nil || !slices.Equal(got, ids[:2]) {
		t.Fatalf("Find = %q, %v; want the queued and the running job %q", got, err, ids[:2])
	}
	if c := calls(t, dir, "qstat"); len(c) != 1 || c[0] != "-f -F json" {
		t.Errorf("qstat ran as %q, want once as -f -F json", c)
	}
	if got, err := p.Find(t.Context(), "fxd-cpu-8"); err != nil || len(got) != 0 {
		t.Errorf("Find(a name without jobs) = %q, %v; want none", got, err)
	}
	replay(t, dir, "qstat", "", "qstat: cannot connect to server pbs01 (errno=15010)", 1)
	var ce *batch.CommandError
	if _, err := p.Find(t.Context(), "fxd-cpu-7"); !errors.As(err, &ce) {
		t.Errorf("Find with qstat failing = %v, want its *batch.CommandError", err)
	}
}
