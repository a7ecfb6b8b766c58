package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// bench against a fake that answers at once: the counts must add up. No
// timing is asserted.
func TestBench(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		runs     int // synchronous runs the fake must see
		submits  int // tasks it must see submitted
		failed   int
		code     int
		function string
	}{
		{"run", []string{"bench", "echo", "-n", "200", "-c", "4", "--input", "x"}, 200, 0, 0, 0, "echo"},
		{"submit", []string{"bench", "echo", "-n", "200", "-c", "4", "-b", "7", "--mode", "submit"}, 0, 200, 0, 0, "echo"},
		{"failing", []string{"bench", "fail", "-n", "20", "-c", "4"}, 20, 0, 20, exitTask, "fail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			code, stdout, stderr := fx(t, f.env(t), "", append(tt.args, "--json")...)
			if code != tt.code {
				t.Errorf("fx %q = exit %d (%s), want %d", tt.args, code, stderr, tt.code)
			}
			var s benchSummary
			if err := json.Unmarshal([]byte(stdout), &s); err != nil {
				t.Fatalf("fx bench --json printed %q: %v", stdout, err)
			}
			n := max(tt.runs, tt.submits)
			if s.Tasks != n || s.Requested != n || s.Errors != 0 || s.Failed != tt.failed || s.Concurrency != 4 || s.Function != tt.function {
				t.Errorf("summary = %+v, want %d tasks, %d failed, no errors", s, n, tt.failed)
			}
			if s.WallSeconds <= 0 || s.TasksPerSecond <= 0 || s.LatencyMs.Max < s.LatencyMs.P99 || s.LatencyMs.P99 < s.LatencyMs.P90 || s.LatencyMs.P90 < s.LatencyMs.P50 {
				t.Errorf("summary = %+v, want positive wall and rate and ordered percentiles", s)
			}
			if !strings.HasPrefix(stderr, "bench: "+itoa(n)+"/"+itoa(n)+" tasks, 0 errors") {
				t.Errorf("stderr = %q, want one final progress line", stderr)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.runs) != tt.runs || len(f.submitted) != tt.submits {
				t.Errorf("fake saw %d runs and %d submitted tasks, want %d and %d", len(f.runs), len(f.submitted), tt.runs, tt.submits)
			}
			if tt.name == "run" && (string(f.runs[0].body) != "x" || f.runs[0].contentType != "application/octet-stream") {
				t.Errorf("run input = %q as %s, want raw x", f.runs[0].body, f.runs[0].contentType)
			}
		})
	}

	f := newFakeAPI(t)
	code, stdout, _ := fx(t, f.env(t), "", "bench", "echo", "-n", "50", "-c", "3")
	for _, want := range []string{"tasks:", "50 of 50", "errors:", "failed tasks:", "wall time:", "tasks/s:", "round trip:", "p50", "p99", "max"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("fx bench = exit %d, %q; want it to contain %q", code, stdout, want)
		}
	}

	env := map[string]string{"HOME": t.TempDir(), "FX_ENDPOINT": "/nonexistent/fxd.sock"}
	if code, _, stderr := fx(t, env, "", "bench", "echo", "-n", "10"); code != exitAPI || !strings.Contains(stderr, "every request failed") {
		t.Errorf("fx bench with no daemon = exit %d, %q; want 3", code, stderr)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
