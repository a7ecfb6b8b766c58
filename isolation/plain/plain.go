package plain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/isolation/cgroup"
)

// Config says where the executor makes its cgroups.
type Config struct {
	// CgroupParent is the group under which each tree gets its own, relative
	// to each hierarchy's root ("fxd" = /sys/fs/cgroup/<controller>/fxd).
	CgroupParent string
}

// Executor starts trees on the host. It runs as root; what it starts
// never does. Safe for concurrent use.
type Executor struct {
	parent string
	log    zerolog.Logger
}

// New checks that this process can start trees as other accounts in
// cgroups: it must run as root on a host with cgroups.
func New(c Config, log zerolog.Logger) (*Executor, error) {
	if euid := os.Geteuid(); euid != 0 {
		return nil, fmt.Errorf("running as uid %d, but fxd must start as root: it runs each task as its caller's own account, "+
			"in a cgroup, which only root may do (it never runs a task as root). "+
			"From a checkout, run the dev daemon with: sudo make run; an installed fxd runs from systemd: sudo systemctl start fxd", euid)
	}
	if err := cgroup.Available(); err != nil {
		return nil, err
	}
	if err := cgroup.CheckParent(c.CgroupParent); err != nil {
		return nil, fmt.Errorf("workers.cgroup_parent: %w: %w", err, api.ErrInvalid)
	}
	return &Executor{parent: "/" + c.CgroupParent, log: log.With().Str("component", "isolation.plain").Logger()}, nil
}

// Cleanup kills and removes every tree cgroup a previous run left under
// the parent (after a crash of the daemon).
func (e *Executor) Cleanup() error {
	names, err := cgroup.Children(e.parent)
	if err != nil {
		return fmt.Errorf("list leftover cgroups: %w", err)
	}
	var errs []error
	for _, n := range names {
		g, err := cgroup.Load(path.Join(e.parent, n))
		if err == nil {
			err = g.Delete()
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e.log.Info().Str("cgroup", n).Msg("removed a worker cgroup left by a previous run")
	}
	return errors.Join(errs...)
}

// Start implements isolation.Executor.
func (e *Executor) Start(ctx context.Context, s isolation.Spec) (isolation.Process, error) {
	if err := check(s); err != nil {
		return nil, err
	}
	g, err := cgroup.New(path.Join(e.parent, s.ID), &s.Limits)
	if err != nil {
		return nil, err
	}
	cmd := command(s)
	if err := g.Start(cmd); err != nil {
		g.Delete()
		return nil, fmt.Errorf("start %s as %s: %w", s.Argv[0], s.Account.Name, err)
	}
	p := &process{Tree: cgroup.NewTree(g), cmd: cmd, started: time.Now()}
	go p.wait(g)
	return p, nil
}

func check(s isolation.Spec) error {
	if err := s.Check(); err != nil {
		return err
	}
	if s.Rootfs != "" {
		return fmt.Errorf("the plain executor runs on the host file system; images need the oci executor: %w", api.ErrInvalid)
	}
	if len(s.Binds) > 0 {
		return fmt.Errorf("tree %s: the plain executor mounts nothing (binds need the oci executor); give host processes the host paths instead: %w", s.ID, api.ErrInvalid)
	}
	return nil
}

func command(s isolation.Spec) *exec.Cmd {
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Env = s.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = s.Dir
	if cmd.Dir == "" {
		cmd.Dir = s.Account.Home
	}
	if st, err := os.Stat(cmd.Dir); err != nil || !st.IsDir() {
		cmd.Dir = "/"
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.Stdin, s.Stdout, s.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: s.Account.UID, Gid: s.Account.GID, Groups: s.Account.Groups},
		Setsid:     true,
		// The tree dies with the daemon; a restarted daemon removes the
		// cgroups with Cleanup.
		Pdeathsig: syscall.SIGKILL,
	}
	return cmd
}

// process is a started tree.
type process struct {
	*cgroup.Tree
	cmd     *exec.Cmd
	started time.Time
}

func (p *process) Pid() int { return p.cmd.Process.Pid }

// wait reaps the first process, then empties and removes the group.
func (p *process) wait(g *cgroup.Group) {
	err := p.cmd.Wait()
	st := isolation.ExitStatus{Code: p.cmd.ProcessState.ExitCode(), Duration: time.Since(p.started)}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		st.Signal = ws.Signal().String()
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		err = fmt.Errorf("wait for %s: %w", p.cmd.Path, err)
	} else {
		err = nil
	}
	p.End(st, err, g.Delete)
}

var _ isolation.Executor = (*Executor)(nil)
