package wire

import (
	"encoding/json"
	"reflect"
	"testing"
)

var headerRuns = []Run{
	{},
	{Argv: []string{}, Env: []string{}},
	{Argv: []string{"/bin/true"}, Env: []string{"A=1", "PATH=/bin"}, Dir: "/home/a", MaxOutput: 1 << 20},
	{Argv: []string{"sh", "-c", `echo "<a> & \b"` + "\t\n\x00\x7f"}, Env: []string{"U=é✓\u2028", "BAD=\xff\xfe"}, MaxOutput: -1},
	{Argv: []string{""}, Dir: "ünïcode dir", MaxOutput: 9223372036854775807},
}

var headerResults = []Result{
	{},
	{ExitCode: -1, Signal: "killed", Error: `command "x": no such file`},
	{ExitCode: 3, Stderr: "tail\nwith <html> & \"quotes\" \\ \u2029 \xc3", OutputBytes: 1 << 40, OutputTruncated: true, LeftBehind: true},
	{ExitCode: -2147483648, OutputBytes: -9223372036854775808},
}

func TestHeaderEncoding(t *testing.T) {
	for _, r := range headerRuns {
		want, _ := json.Marshal(r)
		if got := appendRun(nil, &r); string(got) != string(want) {
			t.Errorf("appendRun(%+v) = %s, want %s as json.Marshal", r, got, want)
		}
		checkRun(t, want)
	}
	for _, r := range headerResults {
		want, _ := json.Marshal(r)
		if got := appendResult(nil, &r); string(got) != string(want) {
			t.Errorf("appendResult(%+v) = %s, want %s as json.Marshal", r, got, want)
		}
		checkResult(t, want)
	}
}

func TestHeaderDecoding(t *testing.T) {
	// What the fast decoders leave to encoding/json must come out the same.
	for _, h := range []string{
		`{"argv":["a"],"argv":["b"],"env":null}`,
		`{"ARGV":["a"],"Max_Output":5}`,
		`{"argv":["\u0061\n"],"dir":null}`,
		` {"argv":[ "a" ]} `,
		`{"max_output":-0}`, `{"max_output":01}`, `{"max_output":1e3}`, `{"max_output":1.0}`, `{"max_output":99999999999999999999}`,
		`{"unknown":{"x":[1,2]},"argv":["a"]}`,
		`{"argv":["a"]}x`, `{"argv":["a"]`, `{"argv":["a",]}`, `{}`, `null`, `[]`, `{"argv":"a"}`,
		"{\"dir\":\"\xff\"}", "{\"dir\":\"a\tb\"}",
	} {
		checkRun(t, []byte(h))
	}
	for _, h := range []string{
		`{"exit_code":1,"exit_code":2}`,
		`{"exit_code":true}`, `{"output_truncated":1}`, `{"left_behind":false,"left_behind":true}`,
		`{"stderr":"a\"b"}`, `{"exit_code":9223372036854775808}`, `{"signal":null}`,
	} {
		checkResult(t, []byte(h))
	}
}

// checkRun fails t unless decodeRun and json.Unmarshal agree on h.
func checkRun(t *testing.T, h []byte) {
	t.Helper()
	var got, want Run
	gerr, werr := decodeRun(h, &got), json.Unmarshal(h, &want)
	if (gerr == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
		t.Errorf("decodeRun(%q) = %#v, %v; json.Unmarshal: %#v, %v", h, got, gerr, want, werr)
	}
}

// checkResult fails t unless decodeResult and json.Unmarshal agree on h.
func checkResult(t *testing.T, h []byte) {
	t.Helper()
	var got, want Result
	gerr, werr := decodeResult(h, &got), json.Unmarshal(h, &want)
	if (gerr == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
		t.Errorf("decodeResult(%q) = %#v, %v; json.Unmarshal: %#v, %v", h, got, gerr, want, werr)
	}
}

// FuzzHeader checks the fast header decoders against encoding/json.
func FuzzHeader(f *testing.F) {
	for _, r := range headerRuns {
		f.Add(appendRun(nil, &r))
	}
	for _, r := range headerResults {
		f.Add(appendResult(nil, &r))
	}
	f.Fuzz(func(t *testing.T, h []byte) {
		checkRun(t, h)
		checkResult(t, h)
	})
}

// FuzzHeaderEncoding checks the header encoders against json.Marshal.
func FuzzHeaderEncoding(f *testing.F) {
	f.Add("sh", "A=<b>", "/tmp", int64(5), "killed", "\xff")
	f.Fuzz(func(t *testing.T, arg, env, dir string, n int64, signal, stderr string) {
		run := Run{Argv: []string{arg, env}, Env: []string{env}, Dir: dir, MaxOutput: n}
		if got, want := appendRun(nil, &run), must(json.Marshal(run)); string(got) != string(want) {
			t.Fatalf("appendRun = %s, want %s", got, want)
		}
		res := Result{ExitCode: int(n), Signal: signal, Stderr: stderr, OutputBytes: n, OutputTruncated: n%2 == 0, Error: dir, LeftBehind: n%3 == 0}
		if got, want := appendResult(nil, &res), must(json.Marshal(res)); string(got) != string(want) {
			t.Fatalf("appendResult = %s, want %s", got, want)
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
