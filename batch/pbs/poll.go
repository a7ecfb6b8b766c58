package pbs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"fxd.dev/fxd/batch"
)

// Poll asks qstat -f -F json -x about ids, finished jobs included (PBS
// keeps them for the server's job_history_duration when
// job_history_enable is set). A job qstat does not know, or an id that
// cannot be a PBS job, is StateGone: qstat says "Unknown Job Id" for it
// on stderr and exits non-zero, still printing the jobs it knows, and
// that is no error. A server without job history refuses -x: Poll asks
// again without it, and a finished job is then gone at once.
func (p *Provider) Poll(ctx context.Context, ids []batch.JobID) (map[batch.JobID]batch.Status, error) {
	got := make(map[batch.JobID]batch.Status, len(ids))
	var ask []string
	for _, id := range ids {
		if !jobIDRE.MatchString(string(id)) {
			got[id] = batch.Status{State: batch.StateGone}
		} else if !slices.Contains(ask, string(id)) {
			ask = append(ask, string(id))
		}
	}
	if len(ask) == 0 { // qstat with no ids would list every job
		return got, nil
	}
	listed, stderr, err := qstat(ctx, true, ask)
	if err == nil && len(listed) == 0 && historyOff(stderr) {
		listed, _, err = qstat(ctx, false, ask)
	}
	if err != nil {
		return nil, fmt.Errorf("poll pbs jobs: %w", err)
	}
	for _, id := range ask {
		got[batch.JobID(id)] = lookup(listed, id)
	}
	return got, nil
}

// qstat runs qstat -f -F json (and -x if history) on ids and returns the
// jobs it lists, by their names, and what it said on stderr.
func qstat(ctx context.Context, history bool, ids []string) (map[string]batch.Status, []byte, error) {
	args := []string{"-f", "-F", "json"}
	if history {
		args = append(args, "-x")
	}
	out, stderr, err := batch.RunStderr(ctx, "", "qstat", append(args, ids...)...)
	var ce *batch.CommandError
	unknown := errors.As(err, &ce) && ce.ExitCode() > 0 && onlyUnknown(stderr)
	if unknown {
		err = nil // the jobs named on stderr are gone; the others are in out
	}
	if err != nil {
		return nil, stderr, err
	}
	if unknown && len(bytes.TrimSpace(out)) == 0 {
		return nil, stderr, nil // it knew none of them
	}
	listed, err := parseQstat(out)
	return listed, stderr, err
}

// unknownRE is what qstat says on stderr of a job it does not know, or
// (without -x) of one that has finished.
var unknownRE = regexp.MustCompile(`^qstat: (Unknown Job Id( Error)? \S+|\S+ Job has finished\b.*|Job has finished \S+)$`)

// onlyUnknown says whether qstat printed something on stderr, and every
// line of it is about a job it does not know.
func onlyUnknown(stderr []byte) bool {
	s := strings.TrimSpace(string(stderr))
	if s == "" {
		return false
	}
	for _, l := range strings.Split(s, "\n") {
		if !unknownRE.MatchString(strings.TrimSpace(l)) {
			return false
		}
	}
	return true
}

// historyOff says whether qstat's stderr says the server keeps no job
// history, so that -x fails (qstat then exits 0 and lists nothing).
func historyOff(stderr []byte) bool {
	return bytes.Contains(bytes.ToLower(stderr), []byte("job_history_enable"))
}

// lookup is the status of id in what qstat listed: under its own name,
// or under the one job whose sequence number is id's (qstat names jobs
// by their full server name, which may be longer than the one given).
func lookup(listed map[string]batch.Status, id string) batch.Status {
	if st, ok := listed[id]; ok {
		return st
	}
	seq, _, _ := strings.Cut(id, ".")
	var found []batch.Status
	for k, st := range listed {
		if s, _, _ := strings.Cut(k, "."); s == seq {
			found = append(found, st)
		}
	}
	if len(found) == 1 {
		return found[0]
	}
	return batch.Status{State: batch.StateGone}
}

// parseQstat reads qstat -f -F json's output: the status of each job, by
// the name qstat gives it. Output without "Jobs" lists none (qstat
// prints only its header when it knows none of the ids).
func parseQstat(out []byte) (map[string]batch.Status, error) {
	var q struct {
		Jobs map[string]qstatJob `json:"Jobs"`
	}
	if err := decode("qstat -f -F json", out, &q); err != nil {
		return nil, err
	}
	listed := make(map[string]batch.Status, len(q.Jobs))
	for id, j := range q.Jobs {
		st, err := j.status()
		if err != nil {
			return nil, fmt.Errorf("qstat -f -F json: job %s: %w", batch.Clip(id, 80), err)
		}
		listed[id] = st
	}
	return listed, nil
}
