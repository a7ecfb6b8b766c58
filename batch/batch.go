package batch

import (
	"context"
	"errors"
	"time"
)

// JobID is the scheduler's name of a block's job: "12345" for Slurm,
// "123.server" for PBS, "local-<epoch>-<n>" for local (unique across
// restarts of the daemon).
type JobID string

// State is where a block's job is in its scheduler.
type State string

// The states of a job, as every provider maps its scheduler's own.
const (
	// StatePending: queued, not started (also held or configuring).
	StatePending State = "pending"
	// StateRunning: its nodes are allocated and running the block.
	StateRunning State = "running"
	// StateDone: ended, whether completed, failed, cancelled or out of
	// time; Status.Reason says how.
	StateDone State = "done"
	// StateGone: the scheduler no longer knows the job (purged after it
	// ended, or never had it).
	StateGone State = "gone"
)

// Status is what the scheduler says of one job.
type Status struct {
	State State
	// Nodes are the host names of the job's nodes, once it runs.
	Nodes []string
	// Reason is the scheduler's own words: why it pends ("Resources",
	// "Priority") or how it ended ("COMPLETED", "TIMEOUT", exit 1).
	Reason string
}

// Block is what one Submit asks of the scheduler.
type Block struct {
	// Name is the job's name, for people reading the queue and for
	// Finder: letters, digits, "-", "_" and "." only ("fxd-cpu-3"). The
	// scaler makes it unique per pool and block.
	Name string
	// Nodes is how many nodes, Walltime for how long (whole minutes:
	// schedulers count in minutes; providers round up).
	Nodes    int
	Walltime time.Duration
	// Init are shell lines each node runs before Command (a pool's
	// worker_init).
	Init []string
	// Command is the argv each node of the block runs, once per node: the
	// node agent. The block ends when it has ended on every node.
	Command []string
	// Env is set for Init and Command. It carries the block's credential,
	// so providers keep it out of command lines, which any user of a
	// node can read.
	Env map[string]string
	// Options are extra scheduler options, passed as given (a pool's
	// options).
	Options []string
	// LogDir is where the job writes its output (a pool's log_dir); ""
	// sends it nowhere.
	LogDir string
}

// Provider obtains blocks from one scheduler, for one pool (the queue,
// account and the like come with the provider's config). It is safe for
// concurrent use, and every method returns when ctx is done. Scheduler
// commands run as the daemon's user; their failures come back with the
// command's stderr, and callers retry with backoff.
type Provider interface {
	// Submit asks the scheduler for block b and returns once the scheduler
	// has accepted it, with its job id.
	Submit(ctx context.Context, b Block) (JobID, error)
	// Poll returns the status of each job in ids; a job the scheduler does
	// not know comes back as StateGone.
	Poll(ctx context.Context, ids []JobID) (map[JobID]Status, error)
	// Cancel ends job id, pending or running. Cancelling a job that has
	// ended or is gone is not an error.
	Cancel(ctx context.Context, id JobID) error
}

// Finder is implemented by providers that can look jobs up by their
// name (Block.Name). The scaler records a block before it submits it, and
// asks a Finder, after a restart, whether the scheduler took it: a daemon
// that stopped between the scheduler accepting a job and learning its id
// would otherwise leave a job nothing knows, holding nodes until its
// walltime.
type Finder interface {
	// Find returns the jobs named name exactly that have not ended
	// (pending or running, in Poll's terms), of the daemon's own user
	// only: none when the scheduler has no such job.
	Find(ctx context.Context, name string) ([]JobID, error)
}

// WindowFinder is implemented by providers that can see the scheduler's
// backfill holes.
type WindowFinder interface {
	// Windows returns the room that blocks like like (its options) could
	// have if submitted now, up to like.Nodes nodes and like.Walltime:
	// for some counts of free nodes, how long they stay free before a
	// reservation or a higher-priority job needs them. None when no node
	// is free.
	Windows(ctx context.Context, like Block) ([]Window, error)
}

// Window is room the scheduler has now: Nodes nodes free for Duration. A
// Duration of 0 means no end is known within the walltime asked about.
type Window struct {
	Nodes    int
	Duration time.Duration
}

// ErrBadOutput is wrapped by errors about scheduler output fxd cannot
// read: a scheduler of another version, or a wrapper printing noise. The
// caller logs it and retries, as for a failed command.
var ErrBadOutput = errors.New("unreadable scheduler output")
