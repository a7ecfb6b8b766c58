package shim

import (
	"bytes"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"fxd.dev/fxd/runtimes/wire"
)

var env = []string{"PATH=/usr/bin:/bin", "LANG=C"}

func TestExec(t *testing.T) {
	tests := []struct {
		name  string
		argv  []string
		input string
		max   int64
		want  wire.Result
		out   string
	}{
		{"echo", []string{"cat"}, "hello", 100, wire.Result{OutputBytes: 5}, "hello"},
		{"exit code and stderr", []string{"sh", "-c", "echo bad >&2; exit 3"}, "", 100, wire.Result{ExitCode: 3, Stderr: "bad\n"}, ""},
		{"truncated", []string{"sh", "-c", "head -c 1000 /dev/zero"}, "", 10, wire.Result{OutputBytes: 1000, OutputTruncated: true}, strings.Repeat("\x00", 10)},
		{"signal", []string{"sh", "-c", "kill -9 $$"}, "", 10, wire.Result{ExitCode: -1, Signal: "killed"}, ""},
		{"env", []string{"sh", "-c", "echo $LANG"}, "", 10, wire.Result{OutputBytes: 2}, "C\n"},
		{"task ignores input", []string{"true"}, strings.Repeat("x", 1<<20), 10, wire.Result{}, ""},
		{"no such command", []string{"nosuchcommand"}, "", 10, wire.Result{ExitCode: -1,
			Error: `command "nosuchcommand": no such file on PATH /usr/bin:/bin; use an absolute path or fix PATH in the function's env`}, ""},
		{"empty argv", nil, "", 10, wire.Result{ExitCode: -1, Error: "empty command; give the function a command"}, ""},
		{"output at the cap", []string{"head", "-c", "10", "/dev/zero"}, "", 10, wire.Result{OutputBytes: 10}, strings.Repeat("\x00", 10)},
		{"output one over the cap", []string{"head", "-c", "11", "/dev/zero"}, "", 10, wire.Result{OutputBytes: 11, OutputTruncated: true}, strings.Repeat("\x00", 10)},
		{"no output kept", []string{"echo", "hi"}, "", 0, wire.Result{OutputBytes: 3, OutputTruncated: true}, ""},
		{"stdin larger than a pipe buffer", []string{"cat"}, strings.Repeat("0123456789", 100_000), 1 << 20, wire.Result{OutputBytes: 1_000_000}, strings.Repeat("0123456789", 100_000)},
		{"reads part of stdin", []string{"head", "-c", "5"}, strings.Repeat("x", 1<<20), 10, wire.Result{OutputBytes: 5}, "xxxxx"},
		{"closes stdout early", []string{"sh", "-c", "echo out; exec >&-; echo err >&2; exit 4"}, "", 10, wire.Result{ExitCode: 4, Stderr: "err\n", OutputBytes: 4}, "out\n"},
		{"closes every pipe early", []string{"sh", "-c", "exec <&- >&- 2>&-; sleep 0.1; exit 5"}, "in", 10, wire.Result{ExitCode: 5}, ""},
		{"not executable", []string{"/etc/passwd"}, "", 10, wire.Result{ExitCode: -1, Error: "fork/exec /etc/passwd: permission denied"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, out := Exec(wire.Run{Argv: tt.argv, Env: env, MaxOutput: tt.max}, []byte(tt.input))
			if res != tt.want || string(out) != tt.out {
				t.Fatalf("Exec(%q) = %+v, %q; want %+v, %q", tt.argv, res, out, tt.want, tt.out)
			}
		})
	}
}

func TestExecStderrTail(t *testing.T) {
	res, _ := Exec(wire.Run{Argv: []string{"sh", "-c", "head -c 10000 /dev/zero | tr '\\0' a >&2; echo END >&2"}, Env: env}, nil)
	if len(res.Stderr) != StderrTail || !strings.HasSuffix(res.Stderr, "aaaEND\n") {
		t.Fatalf("stderr tail: %d bytes ending %q; want %d bytes ending \"aaaEND\\n\"", len(res.Stderr), res.Stderr[max(0, len(res.Stderr)-10):], StderrTail)
	}
}

func TestExecDir(t *testing.T) {
	dir := t.TempDir()
	res, out := Exec(wire.Run{Argv: []string{"pwd"}, Env: env, Dir: dir, MaxOutput: 100}, nil)
	if res != (wire.Result{OutputBytes: int64(len(dir) + 1)}) || string(out) != dir+"\n" {
		t.Fatalf("Exec(pwd) in %s = %+v, %q", dir, res, out)
	}
	missing := filepath.Join(dir, "missing")
	res, _ = Exec(wire.Run{Argv: []string{"pwd"}, Env: env, Dir: missing, MaxOutput: 100}, nil)
	if want := "chdir " + missing + ": no such file or directory"; res.ExitCode != -1 || res.Error != want {
		t.Fatalf("Exec(pwd) in a missing dir = %+v, want error %q", res, want)
	}
}

func TestExecEnv(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want wire.Result
		out  string
	}{
		{"passed as given", []string{"A=1", "B=2", "PATH=/usr/bin:/bin"}, wire.Result{OutputBytes: 22}, "1 2 /usr/bin:/bin A B\n"},
	}
	script := `echo "$A $B $PATH $(env | cut -d= -f1 | grep -v -e PATH -e PWD -e SHLVL -e '^_' | sort | tr '\n' ' ' | sed 's/ $//')"`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, out := Exec(wire.Run{Argv: []string{"/bin/sh", "-c", script}, Env: tt.env, MaxOutput: 100}, nil)
			if res != tt.want || string(out) != tt.out {
				t.Fatalf("Exec with env %q = %+v, %q; want %+v, %q", tt.env, res, out, tt.want, tt.out)
			}
		})
	}
}

func TestExecLeftBehind(t *testing.T) {
	// A background child keeps stdout open: the shim answers anyway, while
	// it still runs, with what the task wrote.
	res, out := Exec(wire.Run{Argv: []string{"sh", "-c", "sleep 30 & echo $!"}, Env: env, MaxOutput: 10}, nil)
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if res.ExitCode != 0 || err != nil {
		t.Fatalf("Exec = %+v, %q", res, out)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the background sleep (pid %d) no longer runs: Exec waited for it", pid)
	}
}

func TestExecWaitDelay(t *testing.T) {
	// What a background child writes after the task exited, while it
	// still holds stdout, is kept (within waitDelay).
	res, out := Exec(wire.Run{Argv: []string{"sh", "-c", "echo fg; (while kill -0 $$ 2>/dev/null; do sleep 0.01; done; echo bg; echo bg2 >&2) &"},
		Env: env, MaxOutput: 100}, nil)
	if res != (wire.Result{OutputBytes: 6, Stderr: "bg2\n"}) || string(out) != "fg\nbg\n" {
		t.Fatalf("Exec = %+v, %q; want the background child's output too", res, out)
	}
}

func TestExecNoPidfd(t *testing.T) {
	// Before Linux 5.2 there is no pidfd: the shim looks for the exit.
	noPidfd.Store(true)
	t.Cleanup(func() { noPidfd.Store(false) })
	tests := []struct {
		argv  []string
		input string
		want  wire.Result
		out   string
	}{
		{[]string{"cat"}, "hello", wire.Result{OutputBytes: 5}, "hello"},
		{[]string{"sh", "-c", "exec >&- 2>&-; exit 3"}, "", wire.Result{ExitCode: 3}, ""},
		{[]string{"sh", "-c", "echo fg; (while kill -0 $$ 2>/dev/null; do sleep 0.01; done; echo bg) &"}, "", wire.Result{OutputBytes: 6}, "fg\nbg\n"},
	}
	for _, tt := range tests {
		res, out := Exec(wire.Run{Argv: tt.argv, Env: env, MaxOutput: 100}, []byte(tt.input))
		if res != tt.want || string(out) != tt.out {
			t.Fatalf("Exec(%q) = %+v, %q; want %+v, %q", tt.argv, res, out, tt.want, tt.out)
		}
	}
}

func TestServe(t *testing.T) {
	var in bytes.Buffer
	for _, s := range []string{"one", "two"} {
		wire.WriteRun(&in, wire.Run{Argv: []string{"cat"}, Env: env, MaxOutput: 10}, []byte(s))
	}
	var out bytes.Buffer
	if err := Serve(&in, &out); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	for _, want := range []string{"one", "two"} {
		res, got, err := wire.ReadResult(&out, 10)
		if err != nil || string(got) != want || res.ExitCode != 0 {
			t.Fatalf("ReadResult = %+v, %q, %v; want %q", res, got, err, want)
		}
	}
	if _, _, err := wire.ReadResult(&out, 10); err != io.EOF {
		t.Fatalf("extra result: %v", err)
	}
	if err := Serve(strings.NewReader("garbage!!!"), io.Discard); err == nil {
		t.Fatal("Serve(garbage) = nil, want an error")
	}
}

// serve runs runs through Serve and returns their results and outputs.
func serve(t *testing.T, runs ...wire.Run) ([]wire.Result, []string) {
	t.Helper()
	var in bytes.Buffer
	for _, r := range runs {
		if r.Env == nil {
			r.Env = env
		}
		if r.MaxOutput == 0 {
			r.MaxOutput = 100
		}
		wire.WriteRun(&in, r, nil)
	}
	var out bytes.Buffer
	if err := Serve(&in, &out); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	var results []wire.Result
	var outputs []string
	for range runs {
		res, got, err := wire.ReadResult(&out, 100)
		if err != nil {
			t.Fatalf("ReadResult = %v", err)
		}
		results, outputs = append(results, res), append(outputs, string(got))
	}
	return results, outputs
}

func TestServeKeepsPipes(t *testing.T) {
	// The pipes of a task that left nothing behind serve the next one:
	// nothing of the first shows in the second, and the status flags the
	// first set on its stdout are gone.
	nonblock := `import fcntl, os, sys; print(bool(fcntl.fcntl(1, fcntl.F_GETFL) & os.O_NONBLOCK)); sys.stdout.flush(); fcntl.fcntl(1, fcntl.F_SETFL, os.O_NONBLOCK | os.O_APPEND)`
	stdoutPipe := wire.Run{Argv: []string{"readlink", "/proc/self/fd/1"}}
	res, out := serve(t,
		stdoutPipe,
		wire.Run{Argv: []string{"sh", "-c", "printf one; printf err1 >&2"}},
		wire.Run{Argv: []string{"python3", "-c", nonblock}},
		wire.Run{Argv: []string{"python3", "-c", nonblock}},
		wire.Run{Argv: []string{"sh", "-c", "printf two"}},
		stdoutPipe,
	)
	want := []string{"", "one", "False\n", "False\n", "two", ""}
	for i := range want {
		if want[i] != "" && out[i] != want[i] || res[i].ExitCode != 0 || res[i].LeftBehind {
			t.Errorf("task %d: %+v, %q; want %q", i, res[i], out[i], want[i])
		}
	}
	if res[1].Stderr != "err1" || res[4].Stderr != "" {
		t.Errorf("stderr: %q, %q; want \"err1\", \"\"", res[1].Stderr, res[4].Stderr)
	}
	// The same pipe served them all.
	if !strings.HasPrefix(out[0], "pipe:[") || out[0] != out[5] {
		t.Errorf("stdout of the first and last task: %q and %q; want the same pipe", out[0], out[5])
	}
}

func TestServeLeftBehind(t *testing.T) {
	// A task that leaves a process behind gets LeftBehind, and its pipes
	// serve no other task: what that process writes later goes nowhere.
	res, out := serve(t,
		wire.Run{Argv: []string{"sh", "-c", "printf one; readlink /proc/self/fd/1 >&2; (sleep 0.3; echo late; echo late >&2) & echo $! >&2"}},
		wire.Run{Argv: []string{"sh", "-c", "sleep 0.5; printf two; readlink /proc/self/fd/1 >&2"}},
	)
	lines := strings.Fields(res[0].Stderr) // its pipe, the background pid
	if len(lines) == 2 {
		if pid, err := strconv.Atoi(lines[1]); err == nil {
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		}
	}
	if out[0] != "one" || !res[0].LeftBehind || len(lines) != 2 {
		t.Errorf("first task: %+v, %q; want \"one\", left behind", res[0], out[0])
	}
	second := strings.TrimSpace(res[1].Stderr)
	if out[1] != "two" || res[1].ExitCode != 0 || !strings.HasPrefix(second, "pipe:[") {
		t.Errorf("second task: %+v, %q; want \"two\" alone", res[1], out[1])
	}
	if len(lines) == 2 && lines[0] == second {
		t.Errorf("second task got the pipe of the first (%s), which a process left behind still holds", second)
	}
}
