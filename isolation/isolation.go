package isolation

import (
	"context"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"fxd.dev/fxd/api"
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
	// leaf name (1-128 of [A-Za-z0-9_.-], not "." or "..").
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
	// Binds are host directories to mount into a container (Rootfs set),
	// after the container's own mounts. Executors that start no container
	// (isolation/plain) refuse any.
	Binds []Bind
	// Stdin, Stdout and Stderr are as in os/exec.Cmd: nil means /dev/null;
	// an *os.File is handed to the process as is.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Bind is a host directory that a container sees at Destination. The
// executor opens Source as the Spec's account would (isolation/oci), so
// the account must be able to reach it; the mount is always nosuid and
// nodev.
type Bind struct {
	Source      string // host path of a directory, absolute and clean
	Destination string // container path, absolute and clean, not "/"
	ReadOnly    bool
}

var validID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// Check refuses what no executor may start: UID 0 and nobody
// (api.ErrDenied, as LookupAccount does), an ID
// that is not a cgroup leaf name of its own ("." and ".." would name the
// parent's or the root cgroup), an empty Argv, and a Bind whose paths are
// not absolute and clean or whose Destination is "/" (api.ErrInvalid).
// Executors call it first, then check what is theirs.
func (s Spec) Check() error {
	if err := checkUID(s.Account.Name, s.Account.UID, 0); err != nil {
		return err
	}
	switch {
	case !validID.MatchString(s.ID) || s.ID == "." || s.ID == "..":
		return fmt.Errorf("id %q: want 1-128 of [A-Za-z0-9_.-], other than \".\" and \"..\": %w", s.ID, api.ErrInvalid)
	case len(s.Argv) == 0 || s.Argv[0] == "":
		return fmt.Errorf("tree %s: empty argv; give the command to run: %w", s.ID, api.ErrInvalid)
	}
	for _, b := range s.Binds {
		if !cleanAbs(b.Source) || !cleanAbs(b.Destination) || b.Destination == "/" {
			return fmt.Errorf("tree %s: bind %q at %q: want absolute paths without \"..\", \".\" or doubled slashes, and a destination other than \"/\": %w",
				s.ID, b.Source, b.Destination, api.ErrInvalid)
		}
	}
	return nil
}

// cleanAbs reports whether p is an absolute path in its shortest form
// (no "..", ".", doubled or trailing slashes) without NUL bytes.
func cleanAbs(p string) bool {
	return path.IsAbs(p) && path.Clean(p) == p && !strings.ContainsRune(p, 0)
}

// Executor starts process trees as accounts inside limits. It runs as root;
// what it starts never does. Safe for concurrent use.
type Executor interface {
	// Start creates the tree's cgroup with the limits, starts Argv in it as
	// the account and returns once the process runs. It fails with
	// api.ErrDenied for UID 0 and api.ErrInvalid for a bad spec (see
	// Spec.Check).
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

// SwapCapped returns r with memory+swap capped at the memory limit when r
// limits memory and says nothing of swap, so that swap (and tmpfs pages,
// which swap) cannot stretch the limit. Both executors apply it.
func SwapCapped(r specs.LinuxResources) specs.LinuxResources {
	if m := r.Memory; m != nil && m.Limit != nil && m.Swap == nil {
		mem := *m
		mem.Swap = new(*m.Limit)
		r.Memory = &mem
	}
	return r
}
