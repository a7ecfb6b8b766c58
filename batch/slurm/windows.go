package slurm

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"fxd.dev/fxd/batch"
)

// startSlack is how late a --test-only start time may be and still be
// "now": the time it takes Slurm to answer, and its one-second clock.
const startSlack = 30 * time.Second

// Windows finds the room blocks like like could have now: for the count of
// idle nodes in the partition (at most like.Nodes), and for halves of it
// down to one node, the longest walltime (at most like.Walltime) with
// which sbatch --test-only says such a job starts at once. A reservation
// or a higher-priority job due on the nodes ends that time. The duration
// is one minute short of the longest that fits, so that the block still
// fits when it is submitted a moment later; 0 when like.Walltime fits.
func (p *Provider) Windows(ctx context.Context, like batch.Block) ([]batch.Window, error) {
	idle, err := p.idleNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("find slurm windows: %w", err)
	}
	var windows []batch.Window
	for n := min(idle, like.Nodes); n >= 1; n /= 2 {
		minutes, err := p.longestStart(ctx, like, n)
		if err != nil {
			return nil, fmt.Errorf("find slurm windows: %w", err)
		}
		switch {
		case minutes == like.Minutes():
			windows = append(windows, batch.Window{Nodes: n})
		case minutes > 1:
			windows = append(windows, batch.Window{Nodes: n, Duration: time.Duration(minutes-1) * time.Minute})
		}
		if minutes == like.Minutes() {
			break // fewer nodes cannot stay free longer than asked about
		}
	}
	return windows, nil
}

// idleNodes counts the idle nodes of the provider's partition, or of the
// cluster's default one.
func (p *Provider) idleNodes(ctx context.Context) (int, error) {
	out, err := batch.Run(ctx, "", "sinfo", "--noheader", "--states=idle", "--format=%P|%D")
	if err != nil {
		return 0, err
	}
	return parseIdle(out, p.c.Partition)
}

// parseIdle sums the node counts of sinfo's "%P|%D" lines for partition,
// or for the default partition (marked "*") when partition is "".
func parseIdle(out []byte, partition string) (int, error) {
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		part, count, ok := strings.Cut(line, "|")
		c, err := strconv.Atoi(strings.TrimSpace(count))
		if !ok || err != nil || c < 0 {
			return 0, fmt.Errorf("sinfo printed %q, not partition|nodes: %w", batch.Clip(line, 120), batch.ErrBadOutput)
		}
		if partition == "" && strings.HasSuffix(part, "*") || strings.TrimSuffix(part, "*") == partition && partition != "" {
			n += c
		}
	}
	return n, nil
}

// longestStart is the longest walltime in minutes, at most like's, with
// which a job of nodes nodes like like starts now; 0 when none does. It
// halves its way there: a few --test-only calls.
func (p *Provider) longestStart(ctx context.Context, like batch.Block, nodes int) (int64, error) {
	lo, hi := int64(0), like.Minutes() // lo starts now (0 trivially), hi+1 does not
	if ok, err := p.startsNow(ctx, like, nodes, hi); err != nil || ok {
		if ok {
			return hi, nil
		}
		return 0, err
	}
	hi--
	for lo < hi {
		mid := (lo + hi + 1) / 2
		ok, err := p.startsNow(ctx, like, nodes, mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}

// startsNow asks sbatch --test-only whether a job of nodes nodes like
// like, for minutes, would start at once.
func (p *Provider) startsNow(ctx context.Context, like batch.Block, nodes int, minutes int64) (bool, error) {
	args := append([]string{"--test-only", "--nodes=" + strconv.Itoa(nodes), "--ntasks-per-node=1", "--exclusive",
		"--time=" + strconv.FormatInt(minutes, 10), "--output=/dev/null"}, p.placement()...)
	args = append(args, like.Options...)
	args = append(args, "--wrap=true")
	asked := time.Now()
	_, stderr, err := batch.RunStderr(ctx, "", "sbatch", args...)
	var ce *batch.CommandError
	if errors.As(err, &ce) && ce.ExitCode() > 0 && unplaceable(ce.Stderr) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	start, err := parseTestOnly(string(stderr))
	if err != nil {
		return false, err
	}
	return start.Sub(asked) <= startSlack, nil
}

// unplaceable says whether sbatch refused a job for want of room, not
// for a mistake in it.
func unplaceable(stderr string) bool {
	for _, s := range []string{"Requested node configuration is not available", "Requested time limit is invalid",
		"Node count specification invalid", "Requested nodes are busy"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// testOnlyRE is what sbatch --test-only prints on stderr: "sbatch: Job 3
// to start at 2026-12-05T16:12:20 using 2 processors on nodes vm in
// partition debug".
var testOnlyRE = regexp.MustCompile(`Job \d+ to start at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)`)

// parseTestOnly reads the start time (Slurm prints the local time) out
// of sbatch --test-only's stderr.
func parseTestOnly(stderr string) (time.Time, error) {
	m := testOnlyRE.FindStringSubmatch(stderr)
	if m == nil {
		return time.Time{}, fmt.Errorf("sbatch --test-only printed %q, not a start time: %w", batch.Clip(stderr, 120), batch.ErrBadOutput)
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", m[1], time.Local)
	if err != nil {
		return time.Time{}, fmt.Errorf("sbatch --test-only start time %q: %w", m[1], batch.ErrBadOutput)
	}
	return t, nil
}
