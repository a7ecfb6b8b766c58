package slurm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"fxd.dev/fxd/batch"
)

// pollFormat is squeue's output per job: id, state, nodes, reason.
const pollFormat = "%i|%T|%N|%r"

// Poll asks squeue about ids, in any state. Jobs squeue does not list
// (purged after MinJobAge, or never known) are StateGone.
func (p *Provider) Poll(ctx context.Context, ids []batch.JobID) (map[batch.JobID]batch.Status, error) {
	got := make(map[batch.JobID]batch.Status, len(ids))
	if len(ids) == 0 {
		return got, nil
	}
	list := make([]string, len(ids))
	for i, id := range ids {
		if !jobIDRE.MatchString(string(id)) {
			return nil, fmt.Errorf("poll slurm jobs: job id %q is not a Slurm job id", id)
		}
		list[i] = string(id)
	}
	out, err := batch.Run(ctx, "", "squeue", "--noheader", "--states=all", "--jobs="+strings.Join(list, ","), "--format="+pollFormat)
	var ce *batch.CommandError
	switch {
	case errors.As(err, &ce) && strings.Contains(ce.Stderr, "Invalid job id specified"):
		out = nil // none of them is known any more
	case err != nil:
		return nil, fmt.Errorf("poll slurm jobs: %w", err)
	}
	listed, err := parsePoll(out)
	if err != nil {
		return nil, fmt.Errorf("poll slurm jobs: %w", err)
	}
	for _, id := range ids {
		st, ok := listed[id]
		if !ok {
			st = batch.Status{State: batch.StateGone}
		}
		got[id] = st
	}
	return got, nil
}

// parsePoll reads squeue's pollFormat lines.
func parsePoll(out []byte) (map[batch.JobID]batch.Status, error) {
	listed := map[batch.JobID]batch.Status{}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.SplitN(line, "|", 4)
		if len(f) != 4 || !jobIDRE.MatchString(f[0]) || f[1] == "" {
			return nil, fmt.Errorf("squeue printed %q, not id|state|nodes|reason: %w", batch.Clip(line, 120), batch.ErrBadOutput)
		}
		st := batch.Status{State: stateOf(f[1]), Reason: strings.TrimSpace(f[3])}
		if st.Reason == "None" {
			st.Reason = ""
		}
		if st.State == batch.StateDone {
			st.Reason = strings.TrimSpace(f[1] + " " + st.Reason)
		}
		if f[2] != "" && f[2] != "(null)" && st.State == batch.StateRunning {
			nodes, err := expandHostlist(f[2])
			if err != nil {
				return nil, fmt.Errorf("squeue job %s: %w", f[0], err)
			}
			st.Nodes = nodes
		}
		listed[batch.JobID(f[0])] = st
	}
	return listed, nil
}

// stateOf maps a Slurm job state (squeue %T) to a batch.State. A state this
// Slurm has and fxd does not know is read as pending: the block is then
// counted, and not used, until it says more.
func stateOf(s string) batch.State {
	switch s {
	case "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED", "STOPPED":
		return batch.StatePending
	case "RUNNING":
		return batch.StateRunning
	case "COMPLETING", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
		"DEADLINE", "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED", "SIGNALING", "STAGE_OUT":
		return batch.StateDone
	}
	return batch.StatePending
}
