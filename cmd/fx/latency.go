package main

import (
	"math"
	"slices"
	"time"
)

// latencies are the percentiles of a set of round trips.
type latencies struct {
	P50, P90, P99, Max time.Duration
}

// summarize sorts ds in place and returns its percentiles.
func summarize(ds []time.Duration) latencies {
	slices.Sort(ds)
	return latencies{
		P50: percentile(ds, 50), P90: percentile(ds, 90), P99: percentile(ds, 99), Max: percentile(ds, 100),
	}
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values at
// or below it. It is 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank-1, 0), len(sorted)-1)]
}
