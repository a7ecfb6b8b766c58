package runtimes

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/isolation"
)

// groupExecutor is a stand-in isolation.Executor for developing without
// cgroups: each tree is a process group, run as the account when the test
// runs as root. It enforces no limits and counts no OOM kills. The real
// executor (isolation/plain) is used whenever it can run.
type groupExecutor struct{}

func (groupExecutor) Start(ctx context.Context, s isolation.Spec) (isolation.Process, error) {
	if s.Account.UID == 0 {
		return nil, fmt.Errorf("start %s: uid 0: %w", s.ID, api.ErrDenied)
	}
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr = s.Env, s.Dir, s.Stdin, s.Stdout, s.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: s.Account.UID, Gid: s.Account.GID, NoSetGroups: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.ID, err)
	}
	g := &group{cmd: cmd, done: make(chan struct{})}
	go func() {
		start := time.Now()
		err := cmd.Wait()
		g.Kill()
		g.status = isolation.ExitStatus{Code: cmd.ProcessState.ExitCode(), Duration: time.Since(start)}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			g.status.Signal = ws.Signal().String()
		}
		if _, ok := err.(*exec.ExitError); !ok {
			g.err = err
		}
		close(g.done)
	}()
	return g, nil
}

type group struct {
	cmd    *exec.Cmd
	once   sync.Once
	done   chan struct{}
	status isolation.ExitStatus
	err    error
}

func (g *group) Pid() int { return g.cmd.Process.Pid }

func (g *group) Wait() (isolation.ExitStatus, error) {
	<-g.done
	return g.status, g.err
}

func (g *group) Kill() error {
	syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	return nil
}

// Procs counts live processes of the group, from /proc.
func (g *group) Procs() (int, error) {
	return len(groupPids(g.cmd.Process.Pid)), nil
}

func (g *group) OOMKills() (int, error) { return 0, nil }

// groupPids lists the live (not zombie) processes of process group pgid.
func groupPids(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
