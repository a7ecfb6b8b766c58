package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
)

// TestRunSite: with --site, fx run sends the task spec as JSON, even for
// raw input, for only the JSON body carries the site.
func TestRunSite(t *testing.T) {
	f := newFakeAPI(t)
	in := filepath.Join(t.TempDir(), "in.bin")
	binary := "\x00\xffbinary\n"
	if err := os.WriteFile(in, []byte(binary), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		site  string
		input string // InputBytes of the spec sent
	}{
		{"raw file", []string{"run", "echo", "--input", in, "--site", "hpc-b"}, "hpc-b", binary},
		{"json input", []string{"run", "--site", "any", "bob/resize", "--json-input", `{"a":1}`}, "any", `{"a":1}`},
		{"stdin", []string{"run", "echo", "--input", "-", "--site=c", "--timeout", "3s"}, "c", "from stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			f.runs = nil
			f.mu.Unlock()
			code, stdout, stderr := fx(t, f.env(t), "from stdin", tt.args...)
			if code != 0 || stdout != tt.input {
				t.Errorf("fx %q = exit %d, stdout %q, stderr %q; want exit 0, stdout %q", tt.args, code, stdout, stderr, tt.input)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.runs) != 1 {
				t.Fatalf("fx %q sent %d runs, want 1", tt.args, len(f.runs))
			}
			r := f.runs[0]
			var spec api.TaskSpec
			if err := json.Unmarshal(r.body, &spec); r.contentType != "application/json" || err != nil {
				t.Fatalf("fx %q sent content type %q, body %q (%v); want a JSON TaskSpec", tt.args, r.contentType, r.body, err)
			}
			if spec.Site != tt.site || string(spec.InputBytes()) != tt.input {
				t.Errorf("fx %q sent site %q, input %q; want site %q, input %q", tt.args, spec.Site, spec.InputBytes(), tt.site, tt.input)
			}
		})
	}
}

func TestSubmitSite(t *testing.T) {
	f := newFakeAPI(t)
	args := []string{"submit", "bob/resize", "--count", "2", "--site", "any", "--json-input", "[1]"}
	if code, stdout, stderr := fx(t, f.env(t), "", args...); code != 0 || stdout != "t0\nt1\n" {
		t.Fatalf("fx %q = exit %d, stdout %q, stderr %q; want exit 0 and two ids", args, code, stdout, stderr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.submitted) != 2 || f.submitted[0].Site != "any" || f.submitted[1].Site != "any" || f.submitted[1].Function != "bob/resize" {
		t.Errorf("fx %q submitted %+v, want 2 tasks of bob/resize at site any", args, f.submitted)
	}
}

func TestRegisterFederated(t *testing.T) {
	f := newFakeAPI(t)
	for _, federated := range []bool{true, false} {
		args := []string{"register", "count", "--", "wc", "-l"}
		if federated {
			args = slices.Insert(args, 2, "--federated")
		}
		if code, _, stderr := fx(t, f.env(t), "", args...); code != 0 {
			t.Fatalf("fx %q = exit %d, stderr %q", args, code, stderr)
		}
		f.mu.Lock()
		got := f.registered[len(f.registered)-1]
		f.mu.Unlock()
		if got.Federated != federated {
			t.Errorf("fx %q registered federated %v, want %v", args, got.Federated, federated)
		}
	}
}

// TestSites: fx sites prints a row per peer, a down peer's error under
// its row, and the columns stay aligned across it.
func TestSites(t *testing.T) {
	f := newFakeAPI(t)
	code, stdout, stderr := fx(t, f.env(t), "", "sites")
	if code != 0 {
		t.Fatalf("fx sites = exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	want := [][]string{
		{"PEER", "HEALTH", "LATENCY", "LAST", "SEEN", "FORWARDED", "FUNCTIONS"},
		{"hpc-b", "ok", "1.2ms", "3s", "ago", "2", "2"},
		{"c", "down", "-", "10m", "ago", "1", "-"},
		{"error:", "dial", "tcp", "10.0.0.3:9444:", "connect:", "connection", "refused"},
		{"longer-name", "ok", "<0.1ms", "1s", "ago", "0", "-"},
	}
	if len(lines) != len(want) {
		t.Fatalf("fx sites printed %d lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); !slices.Equal(got, w) {
			t.Errorf("fx sites: line %d = %q, want %q\nstdout:\n%s", i, got, w, stdout)
		}
	}
	if !strings.HasPrefix(lines[3], "  error: ") {
		t.Errorf("fx sites: error line %q, want it indented under its peer", lines[3])
	}
	col := strings.Index(lines[0], "HEALTH")
	for _, i := range []int{1, 2, 4} {
		if len(lines[i]) <= col || lines[i][col-1] != ' ' || lines[i][col] == ' ' {
			t.Errorf("fx sites: line %q does not start its HEALTH cell at column %d, as the header does\nstdout:\n%s", lines[i], col, stdout)
		}
	}

	code, stdout, stderr = fx(t, f.env(t), "", "--json", "sites")
	var s api.SitesResponse
	if err := json.Unmarshal([]byte(stdout), &s); code != 0 || err != nil {
		t.Fatalf("fx --json sites = exit %d, %q (%v), stderr %q; want the SitesResponse", code, stdout, err, stderr)
	}
	if s.Site != "fake" || len(s.Peers) != 3 || s.Peers[0].Offers == nil || s.Peers[0].Offers.Capacity.Slots != 64 || s.Peers[1].Healthy {
		t.Errorf("fx --json sites = %+v, want the fake's three peers", s)
	}

	code, stdout, stderr = fx(t, f.env(t), "", "sites", "--offers")
	if code != 0 {
		t.Fatalf("fx sites --offers = exit %d, stderr %q", code, stderr)
	}
	for _, s := range []string{
		"hpc-b offers:\n  capacity: 64 slots, 3 running, 1 queued\n  cached datasets: 2\n  FUNCTION",
		"bob/resize", "torch", "servable", "resize images", "carol/count",
		"c offers:\n  nothing known", "longer-name offers:\n  nothing known",
	} {
		if !strings.Contains(stdout, s) {
			t.Errorf("fx sites --offers = %q, want it to contain %q", stdout, s)
		}
	}
	if code, _, stderr := fx(t, f.env(t), "", "sites", "b"); code != exitUsage || !strings.Contains(stderr, `unexpected argument "b"`) {
		t.Errorf("fx sites b = exit %d, stderr %q; want a usage error", code, stderr)
	}
}

// TestStatusSite: fx status shows where a forwarded task runs and where a
// task forwarded here comes from, under its row; fx result shows it when
// the task did not succeed.
func TestStatusSite(t *testing.T) {
	f := newFakeAPI(t)
	code, stdout, stderr := fx(t, f.env(t), "", "status", "t1", "fwd-t2", "from-t3", "t4")
	if code != 0 {
		t.Fatalf("fx status = exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	want := []string{"ID", "t1", "fwd-t2", "  site: b (remote id b-t2)", "from-t3", "  from: b/t3", "t4"}
	if len(lines) != len(want) {
		t.Fatalf("fx status printed %d lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("fx status: line %d = %q, want it to start with %q\nstdout:\n%s", i, lines[i], w, stdout)
		}
	}
	if col := strings.Index(lines[0], "STATE"); strings.Index(lines[6], "succeeded") != col {
		t.Errorf("fx status: the row after the notes is not aligned with the header:\n%s", stdout)
	}

	tests := []struct {
		name      string
		args      []string
		code      int
		stderrHas string
	}{
		{"failed", []string{"result", "fwd-fail1"}, exitTask, "site: b (remote id b-fail1)\n--- stderr of task fwd-fail1"},
		{"running", []string{"result", "fwd-run1"}, exitPending, "site: b (remote id b-run1)\nfx result: task fwd-run1 is running"},
		{"from a peer", []string{"result", "from-fail2"}, exitTask, "from: b/fail2\n"},
		{"succeeded", []string{"result", "fwd-t5"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := fx(t, f.env(t), "", tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderrHas) || (tt.stderrHas == "" && stderr != "") {
				t.Errorf("fx %q = exit %d, stderr %q; want exit %d, stderr with %q", tt.args, code, stderr, tt.code, tt.stderrHas)
			}
		})
	}
	code, stdout, _ = fx(t, f.env(t), "", "result", "--json", "fwd-t5")
	if code != 0 || !strings.Contains(stdout, `"site": "b"`) || !strings.Contains(stdout, `"remote_id": "b-t5"`) {
		t.Errorf("fx result --json fwd-t5 = exit %d, %q; want the Task with its site and remote id", code, stdout)
	}
}

func TestTaskPlaces(t *testing.T) {
	tests := []struct {
		name string
		task api.Task
		want []string
	}{
		{"here", api.Task{}, nil},
		{"forwarded", api.Task{Site: "b", RemoteID: "t9"}, []string{"site: b (remote id t9)"}},
		{"not accepted yet", api.Task{Site: "b"}, []string{"site: b"}},
		{"from a peer", api.Task{Origin: "b/t7"}, []string{"from: b/t7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := taskPlaces(tt.task); !slices.Equal(got, tt.want) {
				t.Errorf("taskPlaces(%+v) = %q, want %q", tt.task, got, tt.want)
			}
		})
	}
}

func TestSiteCells(t *testing.T) {
	now := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
	ages := []struct {
		name string
		at   time.Time
		want string
	}{
		{"never", time.Time{}, "-"},
		{"now", now, "0s ago"},
		{"seconds", now.Add(-3500 * time.Millisecond), "3s ago"},
		{"minutes", now.Add(-5*time.Minute - 10*time.Second), "5m ago"},
		{"hours", now.Add(-30 * time.Hour), "30h ago"},
		{"days", now.Add(-72 * time.Hour), "3d ago"},
		{"clock ahead", now.Add(time.Minute), "0s ago"},
	}
	for _, tt := range ages {
		t.Run(tt.name, func(t *testing.T) {
			if got := ago(tt.at, now); got != tt.want {
				t.Errorf("ago(%v, %v) = %q, want %q", tt.at, now, got, tt.want)
			}
		})
	}
	latencies := []struct {
		d    time.Duration
		want string
	}{
		{0, "-"},
		{20 * time.Microsecond, "<0.1ms"},
		{1234 * time.Microsecond, "1.2ms"},
		{850 * time.Microsecond, "0.9ms"},
		{42 * time.Millisecond, "42.0ms"},
		{2500 * time.Millisecond, "2500.0ms"},
	}
	for _, tt := range latencies {
		if got := latencyCell(tt.d); got != tt.want {
			t.Errorf("latencyCell(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
