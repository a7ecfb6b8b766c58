package local

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/batch"
)

// NodeEnv names the environment variable that gives each process of a
// block the name of the node it plays.
const NodeEnv = "FXD_BLOCK_NODE"

// EphemeralEnv is set for a local block's processes: their node's name
// (which carries the block's) is never used again, so its caches and
// images go when its agent ends.
const EphemeralEnv = "FXD_NODE_EPHEMERAL"

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
	// epoch is when the provider was made (base 36 milliseconds) and a
	// random tag: in its job ids, so that a restarted daemon's blocks never
	// take the ids of the blocks that ended with the daemon before, still
	// in its records, and two pools' providers never share ids.
	epoch string

	forkOnce  sync.Once
	forks     chan func()   // run on the forking thread (forkLoop)
	quit      chan struct{} // closed by Close: the forking thread ends
	closeOnce sync.Once

	// startNode starts one node's process of a block (start); kill
	// signals a process group (syscall.Kill). Tests replace them.
	startNode func(b batch.Block, node string) (*os.Process, error)
	kill      func(pid int, sig syscall.Signal) error

	mu   sync.Mutex
	seq  int
	jobs map[batch.JobID]*job
}

// job is one block's processes.
type job struct {
	name  string // the block's
	nodes []string
	procs []*os.Process
	// reaped is set once every process has exited, before they are
	// reaped: from then on their ids, and their groups', may be another's,
	// and they are signalled no more. Until then a process that has exited
	// is left a zombie, which keeps its id. Guarded by Provider.mu.
	reaped bool
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
	p := &Provider{log: log.With().Str("component", "batch.local").Logger(), host: host, jobs: map[batch.JobID]*job{},
		epoch: strconv.FormatInt(time.Now().UnixMilli(), 36) + strings.ToLower(rand.Text()[:4]), forks: make(chan func()), quit: make(chan struct{}), kill: syscall.Kill}
	p.startNode = p.start
	return p, nil
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
	seq := strconv.Itoa(p.seq)
	id := batch.JobID("local-" + p.epoch + "-" + seq)
	p.mu.Unlock()
	j := &job{name: b.Name, done: make(chan struct{})}
	for i := range b.Nodes {
		// Named by job: its id is unique among the daemon's pools (the
		// provider's epoch has a random tag) and short, whatever the
		// block's name.
		node := p.host + "-" + strings.TrimPrefix(string(id), "local-") + "-" + strconv.Itoa(i)
		proc, err := p.startNode(b, node)
		if err != nil {
			p.abandon(j.procs)
			return "", fmt.Errorf("submit block %s: %w", b.Name, err)
		}
		j.nodes, j.procs = append(j.nodes, node), append(j.procs, proc)
	}
	p.watch(id, j, b.Walltime)
	p.log.Info().Str("block", b.Name).Str("job", string(id)).Int("nodes", b.Nodes).Dur("walltime", b.Walltime).Msg("block started")
	return id, nil
}

// abandon kills the process groups of procs, the nodes of a block whose
// submit failed, and reaps them: no zombie is left.
func (p *Provider) abandon(procs []*os.Process) {
	for _, proc := range procs {
		p.kill(-proc.Pid, syscall.SIGKILL)
	}
	for _, proc := range procs {
		proc.Wait()
	}
}

// start starts one node's process of b: a shell that runs supervisor,
// in a process group of its own, sent SIGHUP when the daemon dies. It
// returns once the shell and the subshell that runs the block have set
// their signal handling, so that a cancel right after is not lost.
func (p *Provider) start(b batch.Block, node string) (*os.Process, error) {
	run := strings.Join(append(slices.Clone(b.Init), "exec "+batch.QuoteArgv(b.Command)), "\n")
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf(supervisor, int(killGrace/time.Second), run))
	cmd.Env = append(os.Environ(), NodeEnv+"="+node, EphemeralEnv+"=1")
	for k, v := range b.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGHUP}
	ready, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", node, err)
	}
	defer ready.Close()
	cmd.ExtraFiles = []*os.File{w} // fd 3, closed by both shells once set
	if ferr := p.onForkThread(func() { err = cmd.Start() }); ferr != nil {
		err = ferr
	}
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", node, err)
	}
	io.Copy(io.Discard, ready) // until EOF: both have closed fd 3, or died
	return cmd.Process, nil
}

// supervisor is the shell script of each node of a block, given the kill
// grace in seconds and the lines that run the block (its init lines and
// the exec of its command). The shell runs them in a subshell and stays
// their parent: it waits for the command and exits with its status. Both
// close fd 3 once their traps are set (the subshell's reset), which start
// waits for. SIGTERM, which Cancel sends the whole process group, leaves
// the shell waiting.
// SIGHUP is its Pdeathsig: when the daemon dies, even by SIGKILL, the
// shell ends its process group as Cancel would (SIGTERM, then SIGKILL
// after the grace), so that no process of the block outlives the daemon:
// a restarted daemon could neither see nor stop it.
const supervisor = `trap 'kill -s TERM 0; i=0; while [ $i -lt %d ] && kill -0 "$cmd" 2> /dev/null; do sleep 1; i=$((i + 1)); done; kill -s KILL 0' HUP
trap : TERM
(
exec 3>&-
%s
) &
cmd=$!
exec 3>&-
status=0
wait "$cmd" || status=$?
while kill -0 "$cmd" 2> /dev/null; do
	wait "$cmd"
	status=$?
done
exit "$status"
`

// onForkThread runs f, which forks, on the provider's forking thread. The
// kernel sends Pdeathsig when the thread that forked a process ends, not
// its process (golang/go#27505), and Go ends the thread of a goroutine
// that exits locked to it, as isolation's namespace code does: a block
// forked on such a thread would be stopped while the daemon runs. The
// forking thread ends only after Close.
func (p *Provider) onForkThread(f func()) error {
	p.forkOnce.Do(func() { go p.forkLoop() })
	done := make(chan struct{})
	select {
	case p.forks <- func() { f(); close(done) }:
	case <-p.quit:
		return fmt.Errorf("%w: the local provider is closed", api.ErrUnavailable)
	}
	<-done
	return nil
}

// forkLoop runs the provider's forks on its own thread until Close.
func (p *Provider) forkLoop() {
	runtime.LockOSThread() // never unlocked: the thread ends with the loop
	for {
		select {
		case f := <-p.forks:
			f()
		case <-p.quit:
			return
		}
	}
}

// watch records j under id, reaps its processes once they have all
// exited, and stops them at walltime.
func (p *Provider) watch(id batch.JobID, j *job, walltime time.Duration) {
	var once sync.Once
	why := "exited"
	j.stop = func(reason string) {
		once.Do(func() {
			p.mu.Lock()
			if j.reaped { // ended: nothing to stop, and its ids may be another's
				p.mu.Unlock()
				return
			}
			why = reason
			p.mu.Unlock()
			p.signal(j, syscall.SIGTERM)
			go func() {
				select {
				case <-j.done:
				case <-time.After(killGrace):
					p.signal(j, syscall.SIGKILL)
				}
			}()
		})
	}
	timer := time.AfterFunc(walltime, func() { j.stop("walltime reached") })
	p.mu.Lock()
	p.jobs[id] = j
	p.mu.Unlock()
	go func() {
		for _, proc := range j.procs {
			waitExit(proc.Pid)
		}
		p.mu.Lock()
		j.reaped = true
		p.mu.Unlock()
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

// signal sends sig to the process group of each of j's processes, and
// to none once they have all exited: their ids may be another's.
func (p *Provider) signal(j *job, sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if j.reaped {
		return
	}
	for _, proc := range j.procs {
		p.kill(-proc.Pid, sig)
	}
}

// waitExit returns once process pid, a child, has exited, without
// reaping it: its id stays taken, as a zombie's, until it is.
func waitExit(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return // exited, or not a child: Wait tells
		}
	}
}

// goneReason says why a block this provider does not know is gone.
const goneReason = "not a block of this daemon: local blocks end with the daemon that started them"

// Poll reports the blocks of ids: running until all their processes have
// exited, then done for a while, then gone. The blocks of an earlier
// daemon are gone: they ended with it.
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
			got[id] = batch.Status{State: batch.StateGone, Reason: goneReason}
		case j.ended.IsZero():
			got[id] = batch.Status{State: batch.StateRunning, Nodes: slices.Clone(j.nodes)}
		default:
			got[id] = batch.Status{State: batch.StateDone, Reason: j.reason}
		}
	}
	return got, nil
}

// Find returns the blocks named name whose processes run. Blocks of an
// earlier daemon are never found: they ended with it.
func (p *Provider) Find(ctx context.Context, name string) ([]batch.JobID, error) {
	if err := batch.CheckName(name); err != nil {
		return nil, fmt.Errorf("find local blocks: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("find local blocks: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []batch.JobID
	for id, j := range p.jobs {
		if j.name == name && j.ended.IsZero() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Cancel stops block id's processes: SIGTERM to their groups, SIGKILL
// after a grace. A block that has ended or is unknown is not an error, and
// is sent no signal.
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
// processes to exit. Then the provider's forking thread ends, and the
// processes still there get their Pdeathsig: they end within the kill
// grace. Submit fails after Close.
func (p *Provider) Close(ctx context.Context) error {
	defer p.closeOnce.Do(func() { close(p.quit) })
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

var (
	_ batch.Provider = (*Provider)(nil)
	_ batch.Finder   = (*Provider)(nil)
)
