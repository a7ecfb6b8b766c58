package slurm

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"fxd.dev/fxd/batch"
)

// findFormat is squeue's output per job for Find: id, name, state.
const findFormat = "%i|%j|%T"

// Find asks squeue for the daemon's user's jobs named name that have not
// ended. squeue lists only jobs the controller still holds, and without
// --states only those pending, running or suspended, and completing ones,
// which Find leaves out.
func (p *Provider) Find(ctx context.Context, name string) ([]batch.JobID, error) {
	if err := batch.CheckName(name); err != nil {
		return nil, fmt.Errorf("find slurm jobs: %w", err)
	}
	out, err := batch.Run(ctx, "", "squeue", "--noheader", "--user="+strconv.Itoa(os.Getuid()),
		"--name="+name, "--format="+findFormat)
	if err != nil {
		return nil, fmt.Errorf("find slurm jobs named %s: %w", name, err)
	}
	ids, err := parseFind(out, name)
	if err != nil {
		return nil, fmt.Errorf("find slurm jobs named %s: %w", name, err)
	}
	slices.SortFunc(ids, batch.CompareJobIDs)
	return ids, nil
}

// parseFind reads squeue's findFormat lines: the ids of the jobs named
// name that have not ended, oldest first (squeue lists them in its own
// order), so that the scaler adopts the same one whatever squeue's order.
func parseFind(out []byte, name string) ([]batch.JobID, error) {
	var ids []batch.JobID
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.SplitN(line, "|", 3)
		var m []string
		if len(f) == 3 {
			m = jobIDRE.FindStringSubmatch(f[0])
		}
		if m == nil || f[2] == "" {
			return nil, fmt.Errorf("squeue printed %q, not id|name|state: %w", batch.Clip(line, 120), batch.ErrBadOutput)
		}
		if f[1] == name && stateOf(f[2]) != batch.StateDone {
			ids = append(ids, batch.JobID(m[1])) // the id as sbatch --parsable gives it
		}
	}
	slices.SortFunc(ids, batch.CompareJobIDs)
	return ids, nil
}
