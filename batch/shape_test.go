package batch

import (
	"testing"
	"time"
)

func TestShape(t *testing.T) {
	const m = time.Minute
	b := Bounds{Nodes: 2, Walltime: 60 * m, MinNodes: 1, MaxNodes: 8, MinWalltime: 10 * m}
	tests := []struct {
		name    string
		windows []Window
		want    int
		nodes   int
		wall    time.Duration
		fits    bool
	}{
		{"no window", nil, 4, 2, 60 * m, false},
		{"no end known", []Window{{Nodes: 16}}, 4, 4, 60 * m, true},
		{"demand unknown: the configured nodes", []Window{{Nodes: 16}}, 0, 2, 60 * m, true},
		{"capped by max_nodes", []Window{{Nodes: 16}}, 100, 8, 60 * m, true},
		{"fewer nodes free than wanted", []Window{{Nodes: 3}}, 8, 3, 60 * m, true},
		{"ends before a reservation", []Window{{Nodes: 4, Duration: 25*m + 40*time.Second}}, 4, 4, 25 * m, true},
		{"capped by walltime", []Window{{Nodes: 4, Duration: 5 * time.Hour}}, 4, 4, 60 * m, true},
		{"too short", []Window{{Nodes: 4, Duration: 9 * m}}, 4, 2, 60 * m, false},
		{"most node-time wins", []Window{{Nodes: 8, Duration: 15 * m}, {Nodes: 2, Duration: 0}, {Nodes: 4, Duration: 40 * m}}, 8, 4, 40 * m, true},
		{"a tie goes to more nodes", []Window{{Nodes: 2, Duration: 40 * m}, {Nodes: 4, Duration: 20 * m}}, 8, 4, 20 * m, true},
		{"a zero-node window", []Window{{Nodes: 0}}, 4, 2, 60 * m, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, w, fits := Shape(b, tt.windows, tt.want)
			if n != tt.nodes || w != tt.wall || fits != tt.fits {
				t.Errorf("Shape(%+v, want %d) = %d nodes, %v, fits %v; want %d, %v, %v", tt.windows, tt.want, n, w, fits, tt.nodes, tt.wall, tt.fits)
			}
		})
	}
	// A pool that needs 2 nodes at least skips a 1-node window.
	if n, _, fits := Shape(Bounds{Nodes: 2, Walltime: time.Hour, MinNodes: 2, MaxNodes: 4, MinWalltime: m}, []Window{{Nodes: 1}}, 4); fits || n != 2 {
		t.Errorf("Shape(min_nodes 2, a 1-node window) = %d, fits %v; want the configured 2, not fitting", n, fits)
	}
}
