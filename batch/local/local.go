package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/batch"
)

// NodeEnv names the environment variable that gives each process of a
// block the name of the node it plays.
const NodeEnv = "FXD_BLOCK_NODE"

// keepEnded is how long an ended block is still reported (as done)
// before it is forgotten (gone), as a scheduler purges old jobs.
const keepEnded = 10 * time.Minute

// killGrace is how long a cancelled or timed-out block's processes have
// between SIGTERM and SIGKILL.
const killGrace = 5 * time.Second

// Provider runs blocks as child processes. It is safe for concurrent use.
type Provider struct {
	log  zerolog.Logger
	host string

	mu   sync.Mutex
	seq  int
	jobs map[batch.JobID]*job
}

// job is one block's processes.
type job struct {
	nodes  []string
	procs  []*os.Process
	done   chan struct{} // closed when every process has exited
	reason string        // how it ended; guarded by Provider.mu
	ended  time.Time     // guarded by Provider.mu
	stop   func(why string)
}

// New returns a provider of blocks on this machine.
func New(log zerolog.Logger) (*Provider, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("local batch provider: %w", err)
	}
	return &Provider{log: log.With().Str("component", "batch.local").Logger(), host: host, jobs: map[batch.JobID]*job{}}, nil
}

// Submit starts b's command b.Nodes times, after its init lines, each in
// a process group of its own with b.Env and NodeEnv set, as the daemon's
// user. The block ends when they all have; at its walltime they are
// stopped.
func (p *Provider) Submit(ctx context.Context, b batch.Block) (batch.JobID, error) {
	if err := b.Check(); err != nil {
		return "", fmt.Errorf("submit block: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("submit block %s: %w", b.Name, err)
	}
	p.mu.Lock()
	p.seq++
	id := batch.JobID("local-" + strconv.Itoa(p.seq))
	p.mu.Unlock()
	j := &job{done: make(chan struct{})}
	for i := range b.Nodes {
		node := p.host + "-" + strings.TrimPrefix(string(id), "local-") + "-" + strconv.Itoa(i)
		proc, err := start(b, node)
		if err != nil {
			killAll(j.procs, syscall.SIGKILL)
			return "", fmt.Errorf("submit block %s: %w", b.Name, err)
		}
		j.nodes, j.procs = append(j.nodes, node), append(j.procs, proc)
	}
	p.watch(id, j, b.Walltime)
	p.log.Info().Str("block", b.Name).Str("job", string(id)).Int("nodes", b.Nodes).Dur("walltime", b.Walltime).Msg("block started")
	return id, nil
}

// start starts one node's process of b.
func start(b batch.Block, node string) (*os.Process, error) {
	script := strings.Join(append(slices.Clone(b.Init), "exec "+batch.QuoteArgv(b.Command)), "\n")
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), NodeEnv+"="+node)
	for k, v := range b.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node %s: %w", node, err)
	}
	return cmd.Process, nil
}

// watch records j under id, reaps its processes, and stops them at
// walltime.
func (p *Provider) watch(id batch.JobID, j *job, walltime time.Duration) {
	var once sync.Once
	why := "exited"
	j.stop = func(reason string) {
		once.Do(func() {
			p.mu.Lock()
			why = reason
			p.mu.Unlock()
			killAll(j.procs, syscall.SIGTERM)
			go func() {
				select {
				case <-j.done:
				case <-time.After(killGrace):
					killAll(j.procs, syscall.SIGKILL)
				}
			}()
		})
	}
	timer := time.AfterFunc(walltime, func() { j.stop("walltime reached") })
	p.mu.Lock()
	p.jobs[id] = j
	p.mu.Unlock()
	go func() {
		var codes []string
		for _, proc := range j.procs {
			st, err := proc.Wait()
			if err != nil {
				codes = append(codes, err.Error())
			} else {
				codes = append(codes, st.String())
			}
		}
		timer.Stop()
		p.mu.Lock()
		j.reason, j.ended = why+" ("+strings.Join(codes, ", ")+")", time.Now()
		p.mu.Unlock()
		close(j.done)
	}()
}

// killAll signals the process group of each of procs.
func killAll(procs []*os.Process, sig syscall.Signal) {
	for _, proc := range procs {
		syscall.Kill(-proc.Pid, sig)
	}
}

// Poll reports the blocks of ids: running until all their processes have
// exited, then done for a while, then gone.
func (p *Provider) Poll(ctx context.Context, ids []batch.JobID) (map[batch.JobID]batch.Status, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("poll local blocks: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, j := range p.jobs {
		if !j.ended.IsZero() && time.Since(j.ended) > keepEnded {
			delete(p.jobs, id)
		}
	}
	got := make(map[batch.JobID]batch.Status, len(ids))
	for _, id := range ids {
		j := p.jobs[id]
		switch {
		case j == nil:
			got[id] = batch.Status{State: batch.StateGone}
		case j.ended.IsZero():
			got[id] = batch.Status{State: batch.StateRunning, Nodes: slices.Clone(j.nodes)}
		default:
			got[id] = batch.Status{State: batch.StateDone, Reason: j.reason}
		}
	}
	return got, nil
}

// Cancel stops block id's processes: SIGTERM to their groups, SIGKILL
// after a grace. A block that has ended or is unknown is not an error.
func (p *Provider) Cancel(ctx context.Context, id batch.JobID) error {
	p.mu.Lock()
	j := p.jobs[id]
	p.mu.Unlock()
	if j == nil {
		return nil
	}
	j.stop("cancelled")
	return nil
}

// Close stops every block and waits, at most until ctx is done, for their
// processes to exit.
func (p *Provider) Close(ctx context.Context) error {
	p.mu.Lock()
	jobs := make([]*job, 0, len(p.jobs))
	for _, j := range p.jobs {
		jobs = append(jobs, j)
	}
	p.mu.Unlock()
	for _, j := range jobs {
		j.stop("daemon stopping")
	}
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-ctx.Done():
			return fmt.Errorf("stop local blocks: %w: %w", api.ErrUnavailable, ctx.Err())
		}
	}
	return nil
}

var _ batch.Provider = (*Provider)(nil)
