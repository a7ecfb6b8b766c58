package pbs

import (
	"context"
	"fmt"
	"os/user"
	"slices"
	"strings"

	"fxd.dev/fxd/batch"
)

// Find lists the server's jobs that have not finished with qstat -f -F
// json (no ids, no -x) and returns those named name and owned by the
// daemon's user. qstat -u does not go with -f, so the owner is read from
// each job's Job_Owner ("fxd@login01"). The listing holds every user's
// jobs (unless the server sets query_other_jobs false), which on a big
// system is megabytes: the scaler asks only after a submit was cut short.
func (p *Provider) Find(ctx context.Context, name string) ([]batch.JobID, error) {
	if err := batch.CheckName(name); err != nil {
		return nil, fmt.Errorf("find pbs jobs: %w", err)
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("find pbs jobs named %s: look up the daemon's user: %w", name, err)
	}
	out, err := batch.Run(ctx, "", "qstat", "-f", "-F", "json")
	if err != nil {
		return nil, fmt.Errorf("find pbs jobs named %s: %w", name, err)
	}
	ids, err := parseFind(out, name, u.Username)
	if err != nil {
		return nil, fmt.Errorf("find pbs jobs named %s: %w", name, err)
	}
	return ids, nil
}

// namedJob is the part of one job of qstat -f -F json that Find reads.
type namedJob struct {
	Name  string `json:"Job_Name"`
	Owner string `json:"Job_Owner"`
	State string `json:"job_state"`
}

// parseFind reads qstat -f -F json's listing: the ids of the jobs named
// name, owned by owner, that have not ended, oldest first (by sequence
// number: "999.pbs01" before "1000.pbs01").
func parseFind(out []byte, name, owner string) ([]batch.JobID, error) {
	var q struct {
		Jobs map[string]namedJob `json:"Jobs"`
	}
	if err := decode("qstat -f -F json", out, &q); err != nil {
		return nil, err
	}
	var ids []batch.JobID
	for id, j := range q.Jobs {
		if o, _, _ := strings.Cut(j.Owner, "@"); j.Name != name || o != owner {
			continue
		}
		if !jobIDRE.MatchString(id) {
			return nil, fmt.Errorf("qstat -f -F json: job id %q of job %s: not a PBS job id: %w", batch.Clip(id, 80), name, batch.ErrBadOutput)
		}
		st, err := qstatJob{State: j.State}.status()
		if err != nil {
			return nil, fmt.Errorf("qstat -f -F json: job %s: %w", batch.Clip(id, 80), err)
		}
		if st.State == batch.StatePending || st.State == batch.StateRunning {
			ids = append(ids, batch.JobID(id))
		}
	}
	slices.SortFunc(ids, batch.CompareJobIDs)
	return ids, nil
}
