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

// dirty is a task that leaves its stdout and stderr as changed as a task
// that leaves no process behind can: written to, and non-blocking and
// appending (flags the shim's write ends share).
var dirty = job{run: wire.Run{Argv: []string{"python3", "-c", `import fcntl, os, sys
print("dirty"); print("dirty", file=sys.stderr); sys.stdout.flush()
for fd in 1, 2: fcntl.fcntl(fd, fcntl.F_SETFL, os.O_NONBLOCK | os.O_APPEND)`}, MaxOutput: 100}}

func TestServeTasks(t *testing.T) {
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
		{"stdout and stderr blocking", []string{"python3", "-c", "import fcntl, os; print(*(bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK) for fd in (1, 2)))"},
			"", 100, wire.Result{OutputBytes: 12}, "False False\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each task gets the pipes dirty left, as in a worker whose
			// previous task changed them; a task alone would get new ones.
			res, out := serve(t, dirty, job{wire.Run{Argv: tt.argv, Env: env, MaxOutput: tt.max}, tt.input})
			if res[0] != (wire.Result{OutputBytes: 6, Stderr: "dirty\n"}) || out[0] != "dirty\n" {
				t.Fatalf("Serve(dirty) = %+v, %q; want it to run alone", res[0], out[0])
			}
			if res[1] != tt.want || out[1] != tt.out {
				t.Fatalf("Serve(%q) = %+v, %q; want %+v, %q", tt.argv, res[1], out[1], tt.want, tt.out)
			}
		})
	}
}

func TestServeStderrTail(t *testing.T) {
	res, _ := serve(t, job{run: wire.Run{Argv: []string{"sh", "-c", "head -c 10000 /dev/zero | tr '\\0' a >&2; echo END >&2"}}})
	if len(res[0].Stderr) != StderrTail || !strings.HasSuffix(res[0].Stderr, "aaaEND\n") {
		t.Fatalf("stderr tail: %d bytes ending %q; want %d bytes ending \"aaaEND\\n\"", len(res[0].Stderr), res[0].Stderr[max(0, len(res[0].Stderr)-10):], StderrTail)
	}
}

func TestServeDir(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	res, out := serve(t,
		job{run: wire.Run{Argv: []string{"pwd"}, Dir: dir, MaxOutput: 100}},
		job{run: wire.Run{Argv: []string{"pwd"}, Dir: missing, MaxOutput: 100}},
	)
	if res[0] != (wire.Result{OutputBytes: int64(len(dir) + 1)}) || out[0] != dir+"\n" {
		t.Fatalf("Serve(pwd) in %s = %+v, %q", dir, res[0], out[0])
	}
	if want := "chdir " + missing + ": no such file or directory"; res[1].ExitCode != -1 || res[1].Error != want {
		t.Fatalf("Serve(pwd) in a missing dir = %+v, want error %q", res[1], want)
	}
}

func TestServeEnv(t *testing.T) {
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
			res, out := serve(t, job{run: wire.Run{Argv: []string{"/bin/sh", "-c", script}, Env: tt.env, MaxOutput: 100}})
			if res[0] != tt.want || out[0] != tt.out {
				t.Fatalf("Serve with env %q = %+v, %q; want %+v, %q", tt.env, res[0], out[0], tt.want, tt.out)
			}
		})
	}
}

func TestServeDoesNotWait(t *testing.T) {
	// A background child keeps stdout open: the shim answers anyway, while
	// it still runs, with what the task wrote, and says it left it behind.
	res, out := serve(t, job{run: wire.Run{Argv: []string{"sh", "-c", "sleep 30 & echo $!"}, MaxOutput: 10}})
	pid, err := strconv.Atoi(strings.TrimSpace(out[0]))
	if res[0].ExitCode != 0 || err != nil {
		t.Fatalf("Serve = %+v, %q", res[0], out[0])
	}
	t.Cleanup(func() {
		// Reap it too (this process is its subreaper): running or not
		// yet reaped, later tests would find it left behind.
		syscall.Kill(pid, syscall.SIGKILL)
		syscall.Wait4(pid, nil, 0, nil)
	})
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the background sleep (pid %d) no longer runs: Serve waited for it", pid)
	}
	if !res[0].LeftBehind {
		t.Errorf("Serve = %+v; want LeftBehind: the background sleep (pid %d) runs", res[0], pid)
	}
}

func TestServeWaitDelay(t *testing.T) {
	// What a background child writes after the task exited, while it
	// still holds stdout, is kept (within waitDelay).
	res, out := serve(t, job{run: wire.Run{Argv: []string{"sh", "-c", "echo fg; (while kill -0 $$ 2>/dev/null; do sleep 0.01; done; echo bg; echo bg2 >&2) &"},
		MaxOutput: 100}})
	// The child closes the pipes as it exits, and may not have exited
	// when the shim looks: LeftBehind can go either way.
	res[0].LeftBehind = false
	if res[0] != (wire.Result{OutputBytes: 6, Stderr: "bg2\n"}) || out[0] != "fg\nbg\n" {
		t.Fatalf("Serve = %+v, %q; want the background child's output too", res[0], out[0])
	}
}

func TestServeNoPidfd(t *testing.T) {
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
	var jobs []job
	for _, tt := range tests {
		jobs = append(jobs, job{wire.Run{Argv: tt.argv, MaxOutput: 100}, tt.input})
	}
	res, out := serve(t, jobs...)
	res[2].LeftBehind = false // as in TestServeWaitDelay
	for i, tt := range tests {
		if res[i] != tt.want || out[i] != tt.out {
			t.Fatalf("Serve(%q) = %+v, %q; want %+v, %q", tt.argv, res[i], out[i], tt.want, tt.out)
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

// job is a Run frame and the task input it carries.
type job struct {
	run   wire.Run
	input string
}

// serve runs jobs through one Serve, in this process, and returns their
// results and outputs. Serve makes the test binary a subreaper, as it
// makes fxd-shim: the tasks take the path they take in a worker. A job
// without an Env gets env.
func serve(t *testing.T, jobs ...job) ([]wire.Result, []string) {
	t.Helper()
	var in bytes.Buffer
	var maxOutput int64
	for _, j := range jobs {
		if j.run.Env == nil {
			j.run.Env = env
		}
		maxOutput = max(maxOutput, j.run.MaxOutput)
		if err := wire.WriteRun(&in, j.run, []byte(j.input)); err != nil {
			t.Fatalf("WriteRun = %v", err)
		}
	}
	var out bytes.Buffer
	if err := Serve(&in, &out); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	var results []wire.Result
	var outputs []string
	for range jobs {
		res, got, err := wire.ReadResult(&out, maxOutput)
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
	stdoutPipe := job{run: wire.Run{Argv: []string{"readlink", "/proc/self/fd/1"}, MaxOutput: 100}}
	res, out := serve(t,
		stdoutPipe,
		job{run: wire.Run{Argv: []string{"sh", "-c", "printf one; printf err1 >&2"}, MaxOutput: 100}},
		job{run: wire.Run{Argv: []string{"python3", "-c", nonblock}, MaxOutput: 100}},
		job{run: wire.Run{Argv: []string{"python3", "-c", nonblock}, MaxOutput: 100}},
		job{run: wire.Run{Argv: []string{"sh", "-c", "printf two"}, MaxOutput: 100}},
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
		job{run: wire.Run{Argv: []string{"sh", "-c", "printf one; readlink /proc/self/fd/1 >&2; (sleep 0.3; echo late; echo late >&2) & echo $! >&2"}, MaxOutput: 100}},
		job{run: wire.Run{Argv: []string{"sh", "-c", "sleep 0.5; printf two; readlink /proc/self/fd/1 >&2"}, MaxOutput: 100}},
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
