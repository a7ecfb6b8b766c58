package agent

import (
	"testing"

	"fxd.dev/fxd/api"
)

// Results go in frames of about frameBudget bytes of output, the oldest
// first, at least one a frame; one too large for any frame is sent as a
// failure.
func TestBatchResults(t *testing.T) {
	out := func(n int) api.NodeResult {
		return api.NodeResult{ID: "t", State: api.StateSucceeded, Output: make([]byte, n)}
	}
	tests := []struct {
		name string
		in   []api.NodeResult
		want int
	}{
		{"none", nil, 0},
		{"small ones together", []api.NodeResult{out(10), out(10), out(10)}, 3},
		{"up to the budget", []api.NodeResult{out(frameBudget / 2), out(frameBudget / 2), out(1)}, 2},
		{"a large one alone", []api.NodeResult{out(frameBudget + 1), out(1)}, 1},
		{"too large for any frame", []api.NodeResult{out(maxResultOutput + 1), out(1)}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &agent{results: tt.in}
			got := a.batchResults()
			if len(got) != tt.want {
				t.Fatalf("batchResults = %d results, want %d", len(got), tt.want)
			}
			for _, r := range got {
				if len(r.Output) > maxResultOutput {
					t.Errorf("a result of %d bytes would not fit a frame", len(r.Output))
				}
			}
			if tt.name == "too large for any frame" && (got[0].State != api.StateFailed || got[0].Output != nil) {
				t.Errorf("too large result sent as %s with %d bytes, want failed with none", got[0].State, len(got[0].Output))
			}
		})
	}
}
