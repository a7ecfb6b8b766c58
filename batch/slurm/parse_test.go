package slurm

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/batch"
)

func TestParseSubmit(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      batch.JobID
		bad       bool
	}{
		{"plain", "12345\n", "12345", false},
		{"cluster", "12345;perlmutter\n", "12345", false},
		{"a wrapper's notice first", "Submitted to the debug queue; see the site docs\n678\n", "678", false},
		{"empty", "", "", true},
		{"words", "sbatch: error: Batch job submission failed\n", "", true},
		{"an array id", "12_3\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := parseSubmit([]byte(tc.out))
			if id != tc.want || (err != nil) != tc.bad || tc.bad && !errors.Is(err, batch.ErrBadOutput) {
				t.Errorf("parseSubmit(%q) = %q, %v; want %q, bad %v", tc.out, id, err, tc.want, tc.bad)
			}
		})
	}
}

func TestParsePoll(t *testing.T) {
	out := "7|RUNNING|nid[0001-0002,0005]|None\n" +
		"8|PENDING||Resources\n" +
		"9|TIMEOUT|vm|None\n" +
		"10|BURSTING|vm|New in Slurm 99\n" +
		"11|CANCELLED|vm|a|b\n"
	got, err := parsePoll([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := map[batch.JobID]batch.Status{
		"7":  {State: batch.StateRunning, Nodes: []string{"nid0001", "nid0002", "nid0005"}},
		"8":  {State: batch.StatePending, Reason: "Resources"},
		"9":  {State: batch.StateDone, Reason: "TIMEOUT"},
		"10": {State: batch.StatePending, Reason: "New in Slurm 99"},
		"11": {State: batch.StateDone, Reason: "CANCELLED a|b"},
	}
	for id, w := range want {
		g := got[id]
		if g.State != w.State || g.Reason != w.Reason || !slices.Equal(g.Nodes, w.Nodes) {
			t.Errorf("job %s = %+v, want %+v", id, g, w)
		}
	}
	for name, bad := range map[string]string{
		"too few fields": "7|RUNNING\n",
		"not an id":      "x|RUNNING|vm|None\n",
		"no state":       "7||vm|None\n",
		"a broken list":  "7|RUNNING|nid[0001-|None\n",
		"html":           "<html><body>maintenance</body></html>\n",
	} {
		if _, err := parsePoll([]byte(bad)); !errors.Is(err, batch.ErrBadOutput) {
			t.Errorf("parsePoll(%s: %q) = %v, want batch.ErrBadOutput", name, bad, err)
		}
	}
}

func TestExpandHostlist(t *testing.T) {
	for in, want := range map[string][]string{
		"vm":                        {"vm"},
		"a,b":                       {"a", "b"},
		"nid[01-03]":                {"nid01", "nid02", "nid03"},
		"n[8-10]-ib,login1":         {"n8-ib", "n9-ib", "n10-ib", "login1"},
		"gpu[007,010-011],cpu[1-1]": {"gpu007", "gpu010", "gpu011", "cpu1"},
	} {
		if got, err := expandHostlist(in); err != nil || !slices.Equal(got, want) {
			t.Errorf("expandHostlist(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"n[1-", "n]1[", "n[3-1]", "n[a-b]", "n[1-2][3]", "a,,b", "n[1-99999999]", ",", "n[[1]]"} {
		if got, err := expandHostlist(bad); !errors.Is(err, batch.ErrBadOutput) {
			t.Errorf("expandHostlist(%q) = %v, %v; want batch.ErrBadOutput", bad, got, err)
		}
	}
}

func TestParseIdle(t *testing.T) {
	out := []byte("debug*|3\nregular|10\nregular|2\n")
	for part, want := range map[string]int{"": 3, "debug": 3, "regular": 12, "gpu": 0} {
		if got, err := parseIdle(out, part); err != nil || got != want {
			t.Errorf("parseIdle(%q) = %d, %v; want %d", part, got, err, want)
		}
	}
	if n, err := parseIdle(nil, ""); err != nil || n != 0 {
		t.Errorf("parseIdle(nothing idle) = %d, %v; want 0", n, err)
	}
	if _, err := parseIdle([]byte("debug* 3\n"), ""); !errors.Is(err, batch.ErrBadOutput) {
		t.Errorf("parseIdle(garbage) = %v, want batch.ErrBadOutput", err)
	}
}

func TestParseTestOnly(t *testing.T) {
	got, err := parseTestOnly("sbatch: Job 3 to start at 2026-12-05T16:12:20 using 2 processors on nodes vm in partition debug\n")
	if want := time.Date(2026, 12, 5, 16, 12, 20, 0, time.Local); err != nil || !got.Equal(want) {
		t.Errorf("parseTestOnly = %v, %v; want %v", got, err, want)
	}
	if _, err := parseTestOnly("sbatch: error: something else"); !errors.Is(err, batch.ErrBadOutput) {
		t.Errorf("parseTestOnly(garbage) = %v, want batch.ErrBadOutput", err)
	}
}

// The script has the directives of the block and starts its command once
// per node, its environment exported in the script only.
func TestScript(t *testing.T) {
	b := batch.Block{Name: "fxd-cpu-7", Nodes: 3, Walltime: 90 * time.Minute, Init: []string{"module load apptainer"},
		Env: map[string]string{"FXD_TOKEN": "t0k'en"}, Command: []string{"/usr/bin/fxd", "node", "--daemon", "https://login:8443"}}
	s := script(b)
	for _, want := range []string{"#!/bin/bash\n", "#SBATCH --job-name=fxd-cpu-7\n", "#SBATCH --nodes=3\n", "#SBATCH --time=90\n",
		"#SBATCH --exclusive\n", "export FXD_TOKEN='t0k'\\''en'\nmodule load apptainer\nexec srun ",
		"--ntasks-per-node=1", "/usr/bin/fxd node --daemon https://login:8443\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	if !strings.Contains(s, "#SBATCH --output=/dev/null\n#SBATCH --error=/dev/null\n") {
		t.Errorf("script without a log_dir keeps output:\n%s", s)
	}
	b.LogDir = "/scratch/fxd/blocks"
	s = script(b)
	if !strings.Contains(s, "#SBATCH --output=/scratch/fxd/blocks/%x-%j.log\n") || strings.Contains(s, "--error") || !strings.Contains(s, "exec srun --label ") {
		t.Errorf("script with a log_dir does not send labelled output there:\n%s", s)
	}
}

func FuzzPoll(f *testing.F) {
	f.Add([]byte("7|RUNNING|nid[0001-0002,0005]|None\n8|PENDING||Resources\n"))
	f.Add([]byte("n[1-2]-ib,login1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parsePoll(b)
		expandHostlist(string(b))
		parseIdle(b, "")
		parseSubmit(b)
	})
}

func TestParseFind(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      []batch.JobID
		bad       bool
	}{
		{"none", "", nil, false},
		{"pending and running", "41|fxd-cpu-3|PENDING\n42|fxd-cpu-3|RUNNING\n", []batch.JobID{"41", "42"}, false},
		{"completing left out", "41|fxd-cpu-3|COMPLETING\n42|fxd-cpu-3|SUSPENDED\n", []batch.JobID{"42"}, false},
		{"another name left out", "41|fxd-cpu-30|PENDING\n", nil, false},
		{"cluster suffix", "43;perlmutter|fxd-cpu-3|PENDING\n", []batch.JobID{"43"}, false},
		{"oldest first", "100|fxd-cpu-3|RUNNING\n99;perlmutter|fxd-cpu-3|PENDING\n1000|fxd-cpu-3|PENDING\n", []batch.JobID{"99", "100", "1000"}, false},
		{"not an id", "x|fxd-cpu-3|PENDING\n", nil, true},
		{"too few fields", "41|fxd-cpu-3\n", nil, true},
		{"no state", "41|fxd-cpu-3|\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFind([]byte(tc.out), "fxd-cpu-3")
			if !slices.Equal(got, tc.want) || (err != nil) != tc.bad || tc.bad && !errors.Is(err, batch.ErrBadOutput) {
				t.Errorf("parseFind(%q) = %q, %v; want %q, bad %v", tc.out, got, err, tc.want, tc.bad)
			}
		})
	}
}

// Find's reading of squeue never panics and returns only job ids that
// Poll and Cancel take, oldest first, or batch.ErrBadOutput.
func FuzzFind(f *testing.F) {
	// squeue --noheader --format=%i|%j|%T as Slurm prints it: pending and
	// running jobs of the name, a completing one, another name, a
	// multi-cluster id.
	f.Add([]byte("41|fxd-cpu-3|PENDING\n42|fxd-cpu-3|RUNNING\n"), "fxd-cpu-3")
	f.Add([]byte("100|fxd-cpu-3|RUNNING\n99;perlmutter|fxd-cpu-3|PENDING\n41|fxd-cpu-3|COMPLETING\n41|fxd-cpu-30|PENDING\n"), "fxd-cpu-3")
	f.Add([]byte("x|fxd-cpu-3|PENDING\n41|fxd-cpu-3\n"), "fxd-cpu-3")
	f.Fuzz(func(t *testing.T, out []byte, name string) {
		ids, err := parseFind(out, name)
		if err != nil {
			if !errors.Is(err, batch.ErrBadOutput) || ids != nil {
				t.Fatalf("parseFind(%q) = %q, %v; want no ids and batch.ErrBadOutput", out, ids, err)
			}
			return
		}
		for _, id := range ids {
			if !jobIDRE.MatchString(string(id)) || strings.Contains(string(id), ";") {
				t.Fatalf("parseFind(%q) = %q: %q is not a job id", out, ids, id)
			}
		}
		if !slices.IsSortedFunc(ids, batch.CompareJobIDs) {
			t.Fatalf("parseFind(%q) = %q, not oldest first", out, ids)
		}
	})
}
