package isolation

import (
	"context"
	"io"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// Account is the local POSIX user a process tree runs as. UID 0 is refused
// everywhere.
type Account struct {
	Name   string
	UID    uint32
	GID    uint32   // primary group
	Groups []uint32 // supplementary groups
	Home   string
}

// Spec describes one process tree to start.
type Spec struct {
	// ID names the tree uniquely on this node; it becomes the cgroup's
	// leaf name ([A-Za-z0-9_.-]).
	ID      string
	Account Account
	Rootfs  string // "" runs on the host filesystem
	Argv    []string
	// Env is the whole environment; nothing of the daemon's is inherited.
	Env []string
	Dir string // working directory; "" = the account's home
	// Limits in runtime-spec vocabulary, applied to the tree's cgroup on
	// both cgroup v1 and v2: Memory.Limit, CPU.Quota/Period, Pids.Limit.
	Limits specs.LinuxResources
	// Stdin, Stdout and Stderr are as in os/exec.Cmd: nil means /dev/null;
	// an *os.File is handed to the process as is.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Executor starts process trees as accounts inside limits. It runs as root;
// what it starts never does. Safe for concurrent use.
type Executor interface {
	// Start creates the tree's cgroup with the limits, starts Argv in it as
	// the account and returns once the process runs. It fails with
	// api.ErrDenied for UID 0 and api.ErrInvalid for a bad spec.
	Start(ctx context.Context, s Spec) (Process, error)
}

// Process is a started process tree.
type Process interface {
	// Pid is the process ID of the tree's first process.
	Pid() int
	// Wait blocks until the first process exits, then kills whatever else
	// is left in the cgroup, removes the cgroup and reports how it ended.
	// It is safe to call from several goroutines; all get the same answer.
	Wait() (ExitStatus, error)
	// Kill stops every process of the tree (the whole cgroup) with SIGKILL.
	// Idempotent; Wait still reports the outcome.
	Kill() error
	// Procs counts the processes now in the tree's cgroup.
	Procs() (int, error)
	// OOMKills counts the tree's processes killed so far by the kernel for
	// exceeding the memory limit.
	OOMKills() (int, error)
}

// ExitStatus is how a tree's first process ended.
type ExitStatus struct {
	Code     int    // exit code, or -1 when killed by a signal
	Signal   string // "killed", "terminated", … when killed by a signal
	OOMKills int    // processes of the tree killed for memory
	Duration time.Duration
}
