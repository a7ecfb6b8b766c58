package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"fxd.dev/fxd/api"
)

func TestRun(t *testing.T) {
	f := newFakeAPI(t)
	in := filepath.Join(t.TempDir(), "in.bin")
	binary := "\x00\xffbinary\n\x01"
	if err := os.WriteFile(in, []byte(binary), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name             string
		args             []string
		stdin            string
		code             int
		stdout           string
		stderrHas        string
		contentType      string // of the run request, "" if none is sent
		timeout, sentRaw string
	}{
		{name: "raw file", args: []string{"run", "echo", "--input", in}, stdout: binary, contentType: "application/octet-stream", sentRaw: binary},
		{name: "flags first", args: []string{"run", "--input", in, "--timeout", "3s", "echo"}, stdout: binary, contentType: "application/octet-stream", timeout: "3s", sentRaw: binary},
		{name: "stdin", args: []string{"run", "echo", "--input", "-"}, stdin: "from stdin", stdout: "from stdin", contentType: "application/octet-stream", sentRaw: "from stdin"},
		{name: "json input", args: []string{"run", "echo", "--json-input", `{"a":1}`}, stdout: `{"a":1}`, contentType: "application/json"},
		{name: "failed", args: []string{"run", "fail"}, code: exitTask, stdout: "partial", stderrHas: "boom\nfx run: task fail-1 failed (exit code 3): exit status 3", contentType: "application/octet-stream"},
		{name: "not found", args: []string{"run", "nope"}, code: exitAPI, stderrHas: "fx run: function nope: not found; fx functions lists yours", contentType: "application/octet-stream"},
		{name: "both inputs", args: []string{"run", "echo", "--input", in, "--json-input", "1"}, code: exitUsage, stderrHas: "not both"},
		{name: "bad json", args: []string{"run", "echo", "--json-input", "{a"}, code: exitUsage, stderrHas: "not valid JSON"},
		{name: "missing file", args: []string{"run", "echo", "--input", "/nonexistent/in"}, code: exitUsage, stderrHas: "read input"},
		{name: "two names", args: []string{"run", "a", "b"}, code: exitUsage, stderrHas: `unexpected argument "b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			f.runs = nil
			f.mu.Unlock()
			code, stdout, stderr := fx(t, f.env(t), tt.stdin, tt.args...)
			if code != tt.code || stdout != tt.stdout || !strings.Contains(stderr, tt.stderrHas) {
				t.Errorf("fx %q = exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr with %q", tt.args, code, stdout, stderr, tt.code, tt.stdout, tt.stderrHas)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if tt.contentType == "" {
				if len(f.runs) != 0 {
					t.Errorf("fx %q sent %d runs, want none", tt.args, len(f.runs))
				}
				return
			}
			if len(f.runs) != 1 {
				t.Fatalf("fx %q sent %d runs, want 1", tt.args, len(f.runs))
			}
			r := f.runs[0]
			if r.contentType != tt.contentType || r.timeout != tt.timeout || (tt.sentRaw != "" && string(r.body) != tt.sentRaw) {
				t.Errorf("fx %q sent %+v, want content type %s, timeout %q, body %q", tt.args, r, tt.contentType, tt.timeout, tt.sentRaw)
			}
		})
	}

	code, stdout, _ := fx(t, f.env(t), "", "run", "echo", "--json", "--json-input", `"hi"`)
	var task api.Task
	if err := json.Unmarshal([]byte(stdout), &task); code != 0 || err != nil || string(task.Output) != `"hi"` {
		t.Errorf("fx run --json = exit %d, %q (%v); want the Task JSON", code, stdout, err)
	}
}

func TestResultAndStatus(t *testing.T) {
	f := newFakeAPI(t)
	tests := []struct {
		name      string
		args      []string
		code      int
		stdoutHas []string
		stderrHas string
	}{
		{"result ok", []string{"result", "t1"}, 0, []string{"out:t1"}, ""},
		{"result failed", []string{"result", "--wait", "1s", "fail1"}, exitTask, nil, "task fail1 failed (exit code 3)"},
		{"result running", []string{"result", "run1"}, exitPending, nil, "fx result --wait 5m run1"},
		{"result gone", []string{"result", "gone1"}, exitAPI, nil, "task gone1: not found"},
		{"status", []string{"status", "t1", "fail1", "run1"}, 0,
			[]string{"ID  ", "t1  ", "succeeded", "cold", "2ms", "5ms", "fail1", "failed", "1s", "run1", "running"}, ""},
		{"status wait ok", []string{"status", "--wait", "1s", "t1", "t2"}, 0, []string{"t2"}, ""},
		{"status wait failed", []string{"status", "t1", "fail1", "run1", "--wait", "1s"}, exitTask, nil, ""},
		{"status wait pending", []string{"status", "t1", "run1", "--wait", "1s"}, exitPending, nil, "1 of 2 tasks still going"},
		{"status json", []string{"status", "--json", "t1"}, 0, []string{`"tasks": [`, `"state": "succeeded"`}, ""},
		{"cancel", []string{"cancel", "run1", "t1", "run2"}, exitAPI, []string{"run1", "cancelled", "run2"}, "fx cancel: t1: task t1 already succeeded"},
		{"submit", []string{"submit", "echo", "--count", "3", "--json-input", "[1]"}, 0, []string{"t0\nt1\nt2\n"}, ""},
		{"functions", []string{"functions"}, 0, []string{"NAME", "echo", "alice", "command", "model", "bob", "servable", "torch", "7", "federation,alice,carol"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := fx(t, f.env(t), "", tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderrHas) {
				t.Errorf("fx %q = exit %d, stderr %q; want exit %d, stderr with %q", tt.args, code, stderr, tt.code, tt.stderrHas)
			}
			for _, s := range tt.stdoutHas {
				if !strings.Contains(stdout, s) {
					t.Errorf("fx %q stdout = %q, want it to contain %q", tt.args, stdout, s)
				}
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.submitted) != 3 || string(f.submitted[2].Input) != "[1]" || f.submitted[0].Function != "echo" {
		t.Errorf("submitted %+v, want 3 tasks of echo with input [1]", f.submitted)
	}
}

func TestRegister(t *testing.T) {
	f := newFakeAPI(t)
	args := []string{"register", "resize", "--kind", "servable", "--env", "A=1", "--env", "B=x=y", "--memory", "512MiB",
		"--cpus", "0.5", "--pids", "64", "--timeout", "30s", "--share", "bob", "--share", "carol", "--description", "resize images",
		"--", "/usr/bin/python3", "-u", "resize.py", "--size", "{task_id}"}
	code, stdout, stderr := fx(t, f.env(t), "", args...)
	if code != 0 || stdout != "registered alice/resize version 2\n" {
		t.Fatalf("fx register = exit %d, %q, %q", code, stdout, stderr)
	}
	want := api.FunctionSpec{
		Name: "resize", Runtime: "host", Kind: api.KindServable,
		Command:     []string{"/usr/bin/python3", "-u", "resize.py", "--size", "{task_id}"},
		Env:         map[string]string{"A": "1", "B": "x=y"},
		Limits:      api.Limits{MemoryBytes: 512 << 20, CPUs: 0.5, Pids: 64, Timeout: api.Duration(30e9)},
		SharedWith:  []string{"bob", "carol"},
		Description: "resize images",
	}
	f.mu.Lock()
	got := f.registered[0]
	f.mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("registered %+v\nwant %+v", got, want)
	}
}

func TestUsageErrors(t *testing.T) {
	env := map[string]string{"HOME": t.TempDir(), "FX_ENDPOINT": "/nonexistent.sock"}
	tests := []struct {
		name      string
		args      []string
		stderrHas string
	}{
		{"no args", nil, "usage: fx COMMAND"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"run", "echo", "--frob"}, "flag provided but not defined: -frob\nusage: fx run NAME"},
		{"bad global flag", []string{"--nope", "site"}, "flag provided but not defined: -nope"},
		{"bad duration", []string{"status", "t1", "--wait", "soon"}, `invalid value "soon" for flag -wait`},
		{"missing name", []string{"run"}, "missing the function NAME"},
		{"status without ids", []string{"status"}, "missing one or more task IDs"},
		{"register without argv", []string{"register", "x"}, "give it after --"},
		{"register bad kind", []string{"register", "x", "--kind", "lambda", "--", "true"}, `--kind "lambda"`},
		{"register bad env", []string{"register", "x", "--env", "NOVALUE", "--", "true"}, "want KEY=VALUE"},
		{"register bad memory", []string{"register", "x", "--memory", "lots", "--", "true"}, "512MiB"},
		{"bench bad mode", []string{"bench", "echo", "--mode", "fast"}, `--mode "fast"`},
		{"bench zero c", []string{"bench", "echo", "-c", "0"}, "must be 1 or more"},
		{"submit zero count", []string{"submit", "echo", "--count", "0"}, "--count 0"},
		{"functions arg", []string{"functions", "x"}, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := fx(t, env, "", tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.stderrHas) || stdout != "" {
				t.Errorf("fx %q = exit %d, stdout %q, stderr %q; want exit 2 and %q", tt.args, code, stdout, stderr, tt.stderrHas)
			}
		})
	}
	for _, args := range [][]string{{"--help"}, {"help"}, {"run", "-h"}} {
		if code, _, _ := fx(t, env, "", args...); code != 0 {
			t.Errorf("fx %q = exit %d, want 0", args, code)
		}
	}
	if _, stdout, _ := fx(t, env, "", "--help"); !strings.Contains(stdout, "Exit codes:") || !strings.Contains(stdout, "FX_ENDPOINT") {
		t.Errorf("fx --help = %q, want the exit codes and settings", stdout)
	}
}
