package batch

import "time"

// Bounds are what a pool allows for one block.
type Bounds struct {
	// Nodes and Walltime are the shape asked for when no window fits.
	Nodes    int
	Walltime time.Duration
	// MinNodes to MaxNodes and MinWalltime to Walltime bound a block
	// reshaped to fit a window.
	MinNodes, MaxNodes int
	MinWalltime        time.Duration
}

// Shape returns the nodes and walltime to ask for, for a block that needs
// want nodes (the demand; 0 or less is read as Bounds.Nodes), given the
// windows that start now. It picks the window that gives most node-time
// within the bounds: nodes up to the smaller of want and MaxNodes, and at
// least MinNodes; walltime up to Walltime, ending before the window does,
// and at least MinWalltime. Walltimes are whole minutes, rounded down, so
// the block ends before the window. fits is false when no window is
// useful: the configured Nodes and Walltime come back, and the block
// waits in the queue like any job.
func Shape(b Bounds, windows []Window, want int) (nodes int, walltime time.Duration, fits bool) {
	if want <= 0 {
		want = b.Nodes
	}
	best := time.Duration(0)
	for _, w := range windows {
		n := min(w.Nodes, want, b.MaxNodes)
		if n < b.MinNodes || n < 1 {
			continue
		}
		d := b.Walltime
		if w.Duration > 0 {
			d = min(w.Duration.Truncate(time.Minute), b.Walltime)
		}
		if d < b.MinWalltime || d <= 0 {
			continue
		}
		if area := time.Duration(n) * d; area > best || area == best && n > nodes {
			best, nodes, walltime = area, n, d
		}
	}
	if best == 0 {
		return b.Nodes, b.Walltime, false
	}
	return nodes, walltime, true
}
