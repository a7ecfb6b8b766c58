package batch

import (
	"slices"
	"testing"
)

// Job ids sort by their number, however long, then as strings.
func TestCompareJobIDs(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []JobID
		want []JobID
	}{
		{"slurm", []JobID{"100", "99", "1000", "7"}, []JobID{"7", "99", "100", "1000"}},
		{"pbs", []JobID{"1000.pbs01", "999.pbs01", "2001.pbs02", "2001.pbs01"}, []JobID{"999.pbs01", "1000.pbs01", "2001.pbs01", "2001.pbs02"}},
		{"leading zeros", []JobID{"010", "9"}, []JobID{"9", "010"}},
		{"beyond 64 bits", []JobID{"100000000000000000000", "99999999999999999999"}, []JobID{"99999999999999999999", "100000000000000000000"}},
		{"no number first", []JobID{"x", "1", "local-b"}, []JobID{"local-b", "x", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.Clone(tc.in)
			slices.SortFunc(got, CompareJobIDs)
			if !slices.Equal(got, tc.want) {
				t.Errorf("sorted %q = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
