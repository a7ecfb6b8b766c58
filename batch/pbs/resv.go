package pbs

import (
	"fmt"
	"strings"
	"time"

	"fxd.dev/fxd/batch"
)

// rstatTime is how pbs_rstat -f prints reserve_start: strftime's
// "%a %b %d %H:%M:%S %Y", in the local time of the host it runs on.
const rstatTime = "Mon Jan 02 15:04:05 2006"

// parseRstat reads pbs_rstat -f's output, a block per reservation:
//
//	Resv ID: R5310.pbs01
//	Reserve_Name = maint
//	reserve_state = RESV_CONFIRMED
//	reserve_start = Mon Jun 03 12:00:00 2024
//	...
//
// and returns when each starts (for a standing reservation, its current
// or next occurrence). No reservations print nothing.
func parseRstat(out []byte) (map[string]time.Time, error) {
	starts := map[string]time.Time{}
	id := ""
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if v, ok := strings.CutPrefix(line, "Resv ID:"); ok {
			if id != "" && starts[id].IsZero() {
				return nil, fmt.Errorf("pbs_rstat -f: reservation %s has no reserve_start: %w", batch.Clip(id, 80), batch.ErrBadOutput)
			}
			id = strings.TrimSpace(v)
			if _, dup := starts[id]; dup || id == "" {
				return nil, fmt.Errorf("pbs_rstat -f printed %q, not a new reservation: %w", batch.Clip(line, 120), batch.ErrBadOutput)
			}
			starts[id] = time.Time{}
			continue
		}
		k, v, ok := strings.Cut(line, " = ")
		if !ok || id == "" {
			return nil, fmt.Errorf("pbs_rstat -f printed %q, not \"Resv ID:\" or attribute = value: %w", batch.Clip(line, 120), batch.ErrBadOutput)
		}
		if k == "reserve_start" {
			t, err := time.ParseInLocation(rstatTime, strings.TrimSpace(v), time.Local)
			if err != nil || t.IsZero() {
				return nil, fmt.Errorf("pbs_rstat -f: reservation %s starts %q, not a time: %w", batch.Clip(id, 80), batch.Clip(v, 80), batch.ErrBadOutput)
			}
			starts[id] = t
		}
	}
	if id != "" && starts[id].IsZero() {
		return nil, fmt.Errorf("pbs_rstat -f: reservation %s has no reserve_start: %w", batch.Clip(id, 80), batch.ErrBadOutput)
	}
	return starts, nil
}
