package pbs

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"fxd.dev/fxd/batch"
)

// jobStates maps PBS's job_state letters (pbs_job_attributes(7B)) to
// fxd's states. A job that is held (H), waiting for its start time (W),
// in transit (T), suspended (S, or U while its workstation is busy) or
// begun (B, an array job) does not run the block now: pending. One that
// is exiting (E) has ended its script and only cleans up, and one moved
// (M) to another server is out of this provider's sight: both done, as
// are finished jobs and subjobs (F, X).
var jobStates = map[string]batch.State{
	"Q": batch.StatePending, "H": batch.StatePending, "W": batch.StatePending,
	"T": batch.StatePending, "S": batch.StatePending, "U": batch.StatePending,
	"B": batch.StatePending,
	"R": batch.StateRunning,
	"E": batch.StateDone, "F": batch.StateDone, "X": batch.StateDone, "M": batch.StateDone,
}

// stateWords say a state for a Reason when PBS gives no comment.
var stateWords = map[string]string{
	"Q": "queued", "H": "held", "W": "waiting for its start time", "T": "in transit",
	"S": "suspended", "U": "suspended while its workstation is busy", "B": "begun",
	"E": "exiting", "F": "finished", "X": "finished", "M": "moved to another server",
}

// qstatJob is the part of one job of qstat -f -F json that Poll reads.
type qstatJob struct {
	State      string `json:"job_state"`
	ExecHost   string `json:"exec_host"`
	ExecVnode  string `json:"exec_vnode"`
	Comment    string `json:"comment"`
	ExitStatus number `json:"Exit_status"`
}

// status is the batch.Status of job j. A state letter this PBS has and
// fxd does not know is read as pending, as the Slurm provider does: the
// block is then counted, and not used, until it says more. A job_state
// that is not a letter is bad output.
func (j qstatJob) status() (batch.Status, error) {
	if len(j.State) != 1 || j.State[0] < 'A' || j.State[0] > 'Z' {
		return batch.Status{}, fmt.Errorf("job_state %q is not a PBS state letter: %w", batch.Clip(j.State, 80), batch.ErrBadOutput)
	}
	s, ok := jobStates[j.State]
	if !ok {
		return batch.Status{State: batch.StatePending, Reason: cmp.Or(j.Comment, "job_state "+j.State+", new to fxd")}, nil
	}
	st := batch.Status{State: s}
	switch s {
	case batch.StatePending:
		st.Reason = cmp.Or(j.Comment, stateWords[j.State])
	case batch.StateRunning:
		st.Nodes = j.hosts()
	case batch.StateDone:
		st.Nodes = j.hosts()
		st.Reason = endReason(j.State, j.ExitStatus, j.Comment)
	}
	return st, nil
}

// endReason says how a job ended: its exit status as PBS reports it
// (over 256 when a signal killed it, negative when PBS could not start
// it) and PBS's comment.
func endReason(state string, exit number, comment string) string {
	r := stateWords[state]
	switch {
	case !exit.set:
	case exit.n > 256:
		r = fmt.Sprintf("exit %d (signal %d)", exit.n, exit.n-256)
	case exit.n < 0:
		r = fmt.Sprintf("exit %d (PBS could not run the job; see tracejob)", exit.n)
	default:
		r = fmt.Sprintf("exit %d", exit.n)
	}
	if comment != "" {
		r += ": " + comment
	}
	return r
}

// hosts are the distinct hosts of the job, in order: from exec_host
// ("node1/0*4+node2/0*4", "node1/0+node1/1", or with the MoM's port as
// in exec_host2, "node1:15002/0"), or when PBS gives none, the vnodes of
// exec_vnode ("(node1:ncpus=4+node1[1]:mem=1gb)+(node2:ncpus=4)").
func (j qstatJob) hosts() []string {
	var hosts []string
	add := func(h string) {
		if h = strings.TrimSpace(h); h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	for _, part := range strings.Split(j.ExecHost, "+") {
		h, _, _ := strings.Cut(part, "/")
		h, _, _ = strings.Cut(h, ":")
		add(h)
	}
	if len(hosts) == 0 {
		for _, part := range strings.Split(strings.NewReplacer("(", "", ")", "").Replace(j.ExecVnode), "+") {
			v, _, _ := strings.Cut(part, ":")
			add(v)
		}
	}
	return hosts
}
