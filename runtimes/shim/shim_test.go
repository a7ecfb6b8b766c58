package shim

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

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

func TestExecLeftBehind(t *testing.T) {
	// A background child keeps stdout open; the shim answers anyway.
	start := time.Now()
	res, out := Exec(wire.Run{Argv: []string{"sh", "-c", "sleep 3 & echo hi"}, Env: env, MaxOutput: 10}, nil)
	if res.ExitCode != 0 || string(out) != "hi\n" {
		t.Fatalf("Exec = %+v, %q", res, out)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Exec waited %v for a background child", d)
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
