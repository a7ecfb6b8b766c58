package runtimes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/internal/units"
	"fxd.dev/fxd/isolation"
)

// defaultMaxOutput is the output limit of a Job that sets none.
const defaultMaxOutput = 10 << 20

// Job is one task to run on a worker.
type Job struct {
	TaskID  string
	Attempt int
	// Function gives Kind, Runtime, Command and Env. A command function's
	// Command is an argv template: "{task_id}" and "{attempt}" in its
	// arguments are replaced.
	Function api.Function
	// Image is the digest of the image the function's runtime names, when
	// it was resolved already (a node agent runs what the daemon
	// resolved); "" resolves the runtime in this node's repository.
	Image   string
	Account isolation.Account
	// Limits are the worker's cgroup limits: the function's limits already
	// capped by the tenant's quota.
	Limits specs.LinuxResources
	Input  []byte
	// Timeout bounds the task's run on its worker (not its cold start);
	// 0 means none.
	Timeout time.Duration
	// MaxOutput bounds the output; <= 0 means 10 MiB.
	MaxOutput int64
	// Data are the cache files the task reads, at $FXD_DATA/<Name>; the
	// caller keeps them in the cache while the task runs. Workers are
	// kept per data set: a task runs on a worker that shows exactly its
	// files.
	Data []DataFile
}

// Result is how a task ended.
type Result struct {
	State    api.State // StateSucceeded, StateFailed, StateTimedOut or StateCancelled
	ExitCode int
	Output   []byte
	Stderr   string // the tail of the task's stderr
	// Error says, for people, why the task did not succeed and how to fix it.
	Error     string
	Cold      bool      // a worker was started for this task
	Worker    string    // the worker's id
	StartedAt time.Time // when the task began on the worker, after any cold start
}

// Stats are the pools' figures for metrics.
type Stats struct {
	Idle, Busy int   // workers now, by state (starting ones count as busy)
	ColdStarts int64 // workers started for a task since New
	// Keys counts workers per key, named "uid/runtime/kind[/function]".
	Keys map[string]KeyStats
}

// KeyStats counts the workers of one key.
type KeyStats struct{ Idle, Busy int }

// Pools keeps warm workers for every account. Safe for concurrent use.
type Pools struct {
	cfg  conf.Workers
	exec isolation.Executor
	ctr  *Containers // nil: no containers on this node
	log  zerolog.Logger
	shim string
	tag  string // random per Pools, in worker ids
	// dataDir holds a directory of task data per worker with data (see
	// makeData); "" runs no task with data. dataLock, its lock file, is
	// held until Close.
	dataDir  string
	dataLock *os.File

	mu       sync.Mutex
	accounts map[uint32]*account
	seq      int64
	cold     int64
	closed   bool
}

// account holds the workers of one account.
type account struct {
	n    int                  // workers counted against max_workers, starting ones included
	idle []*worker            // oldest first
	busy map[*worker]struct{} // running a task
	// waiters are the tasks waiting for a worker, first come first served.
	waiters []*waiter
}

// waiter is a task waiting for a worker of its key. A released worker of
// that key is handed to it directly (already busy); nil on wake means room
// may have freed (a worker stopped or went idle under another key) and it
// should look again. wake has room for one value, so senders never block.
type waiter struct {
	key  key
	wake chan *worker
}

// key says which tasks a worker can run.
type key struct {
	uid      uint32
	runtime  string
	kind     api.Kind
	function string // "owner/name@version" for servables
	limits   string // the limits as JSON
	data     string // the data set (dataKey), "" for none
}

func (k key) String() string {
	s := fmt.Sprintf("%d/%s/%s", k.uid, k.runtime, k.kind)
	if k.function != "" {
		s += "/" + k.function
	}
	return s
}

// New returns pools that start host workers with exec, running the
// fxd-shim at shim (from FindShim), and, with ctr, container workers for
// functions whose runtime is an image. dataDir, an absolute path on the
// file system of the data cache, holds the data directories of workers
// whose tasks read data (Job.Data); New creates it (root's, 0711) and
// removes what a previous run left in it, and it must be this Pools'
// alone. "" runs no task with data.
func New(cfg conf.Workers, shim string, exec isolation.Executor, ctr *Containers, dataDir string, log zerolog.Logger) (*Pools, error) {
	if exec == nil || (ctr != nil && (ctr.Exec == nil || ctr.Images == nil)) {
		return nil, fmt.Errorf("create worker pools: no executor: %w", api.ErrInvalid)
	}
	if err := executable(shim); err != nil {
		return nil, fmt.Errorf("create worker pools: fxd-shim %q: %w", shim, err)
	}
	log = log.With().Str("component", "runtimes").Logger()
	if p, mode, private := privatePath(shim); private {
		log.Error().Str("shim", shim).Str("path", p).Str("mode", fmt.Sprintf("%04o", mode)).
			Msg("other users cannot reach fxd-shim here, and workers run it as the tenant's account, so tasks will fail; " +
				"install it under directories every user can enter (make run copies it to /tmp/fxd-dev/bin) or set workers.shim")
	}
	b := make([]byte, 3)
	rand.Read(b)
	p := &Pools{
		cfg:      cfg,
		exec:     exec,
		ctr:      ctr,
		log:      log,
		shim:     shim,
		tag:      hex.EncodeToString(b),
		dataDir:  dataDir,
		accounts: make(map[uint32]*account),
	}
	if dataDir != "" {
		if err := p.prepareDataDir(); err != nil {
			return nil, fmt.Errorf("create worker pools: %w", err)
		}
	}
	return p, nil
}

// FindShim resolves the fxd-shim binary: configured (workers.shim), else
// next to the running binary, else /usr/libexec/fxd, else on PATH.
func FindShim(configured string) (string, error) {
	if configured != "" {
		if err := executable(configured); err != nil {
			return "", fmt.Errorf("find fxd-shim: workers.shim %q: %w; install fxd-shim there or fix workers.shim", configured, err)
		}
		return configured, nil
	}
	var tried []string
	if self, err := os.Executable(); err == nil {
		tried = append(tried, filepath.Join(filepath.Dir(self), "fxd-shim"))
	}
	tried = append(tried, "/usr/libexec/fxd/fxd-shim")
	for _, p := range tried {
		if executable(p) == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("fxd-shim"); err == nil {
		return filepath.Abs(p)
	}
	return "", fmt.Errorf("find fxd-shim: not at %v nor on PATH: %w; install the fxd package's fxd-shim or set workers.shim to its path", tried, api.ErrNotFound)
}

// privatePath reports the first element of the path of file (the file
// itself, or a directory above it) that other users cannot enter or run,
// such as a checkout under /root. Group or ACL access may still let a
// tenant through, so callers warn rather than refuse.
func privatePath(file string) (string, os.FileMode, bool) {
	for p := file; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return "", 0, false
		}
		need := os.FileMode(0o001) // search (x) for directories
		if !st.IsDir() {
			need = 0o005 // read and run for the file
		}
		if st.Mode().Perm()&need != need {
			return p, st.Mode().Perm(), true
		}
		if p == filepath.Dir(p) {
			return "", 0, false
		}
	}
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("not an executable file: %w", api.ErrInvalid)
	}
	return nil
}

// keyOf returns the key of the workers that can run j.
func keyOf(j Job) key {
	lim, _ := json.Marshal(j.Limits)
	k := key{uid: j.Account.UID, runtime: j.Function.Runtime, kind: j.Function.Kind, limits: string(lim), data: dataKey(j.Data)}
	if k.runtime == "" {
		k.runtime = api.RuntimeHost
	}
	if k.kind == "" {
		k.kind = api.KindCommand
	}
	if k.kind == api.KindServable {
		k.function = fmt.Sprintf("%s@%d", j.Function.Ref(), j.Function.Version)
	}
	return k
}

// Run runs j on a worker of its key and blocks until it ends. It takes an
// idle worker; else starts one if the account has fewer than maxWorkers;
// else stops an idle worker of the account's other keys to make room; else
// waits for one to be released. When ctx is done the task's worker tree is
// killed and the task is cancelled.
func (p *Pools) Run(ctx context.Context, j Job, maxWorkers int) Result {
	if j.MaxOutput <= 0 {
		j.MaxOutput = defaultMaxOutput
	}
	k := keyOf(j)
	if err := check(j, k); err != nil {
		return Result{State: api.StateFailed, ExitCode: -1, Error: err.Error()}
	}
	if k.runtime != api.RuntimeHost {
		// Workers run one image: its digest, so that an image re-added
		// under the same name gets workers of its own.
		digest, err := p.image(j)
		if err != nil {
			return Result{State: api.StateFailed, ExitCode: -1, Error: err.Error()}
		}
		k.runtime = digest
	}
	for attempt := 0; ; attempt++ {
		w, cold, err := p.acquire(ctx, k, j, max(maxWorkers, 1))
		if err != nil {
			if ctx.Err() != nil {
				return Result{State: api.StateCancelled, ExitCode: -1, Error: "cancelled while waiting for a worker"}
			}
			return Result{State: api.StateFailed, ExitCode: -1, Error: err.Error(), Cold: cold}
		}
		var o outcome
		if k.kind == api.KindServable {
			o = p.runServable(ctx, w, j)
		} else {
			o = p.runCommand(ctx, w, j)
		}
		o.res.Cold, o.res.Worker = cold, w.id
		if o.keep {
			p.release(w)
		} else {
			p.discard(w)
		}
		if o.unsent && !cold && attempt < maxUnsent && ctx.Err() == nil {
			// A warm worker that died while idle, before the pools saw it
			// go: the task never reached it, so it runs on another.
			p.log.Debug().Str("task", j.TaskID).Str("worker", w.id).Msg("idle worker had ended; running the task on another")
			continue
		}
		if o.crashed && p.cfg.ServableRetry && attempt == 0 && ctx.Err() == nil {
			p.log.Warn().Str("task", j.TaskID).Str("function", j.Function.Ref()).Msg("servable crashed; retrying the task once on a fresh worker")
			continue
		}
		return o.res
	}
}

// check refuses jobs no worker can run.
func check(j Job, k key) error {
	if k.kind != api.KindCommand && k.kind != api.KindServable {
		return fmt.Errorf("kind %q: want command or servable: %w", k.kind, api.ErrInvalid)
	}
	if len(j.Function.Command) == 0 {
		return fmt.Errorf("function %s has no command; register it with one: %w", j.Function.Ref(), api.ErrInvalid)
	}
	if j.Account.UID == 0 {
		return fmt.Errorf("account %q: uid 0 is refused; map the identity to an unprivileged user: %w", j.Account.Name, api.ErrDenied)
	}
	return checkData(j.Data)
}

// outcome is a Result and what to do with the worker.
type outcome struct {
	res     Result
	keep    bool // the worker may run more tasks
	crashed bool // the servable died during the task
	unsent  bool // the worker was gone before the task reached it
}

// errUnsent wraps the error of a task that could not be written to its
// worker: the worker's end of the pipe was closed before any byte of the
// task reached it, so nothing of the task ran.
var errUnsent = errors.New("the task did not reach its worker")

// send writes one task to a worker's stdin with write. Its error wraps
// errUnsent only when not one byte reached the pipe: a servable's own
// process reads its stdin, so once part of a request larger than the pipe
// buffer was written it may have been read, and acted on, before the
// process died. Such a task is not moved to another worker (only
// servable_retry runs it again).
func send(stdin io.Writer, write func(io.Writer) error) error {
	cw := &countingWriter{w: stdin}
	err := write(cw)
	switch {
	case err == nil:
		return nil
	case cw.n == 0:
		return fmt.Errorf("%w: %w", errUnsent, err)
	}
	return fmt.Errorf("write the task to its worker (%s of it written): %w", units.Bytes(cw.n), err)
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// maxUnsent bounds how often one task moves on to another warm worker
// because the one it was given had ended.
const maxUnsent = 2

// Stats returns the pools' figures now.
func (p *Pools) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{ColdStarts: p.cold, Keys: make(map[string]KeyStats)}
	for _, a := range p.accounts {
		s.Idle += len(a.idle)
		s.Busy += a.n - len(a.idle)
		for _, w := range a.idle {
			ks := s.Keys[w.key.String()]
			ks.Idle++
			s.Keys[w.key.String()] = ks
		}
		for w := range a.busy {
			ks := s.Keys[w.key.String()]
			ks.Busy++
			s.Keys[w.key.String()] = ks
		}
	}
	return s
}

// Close stops every worker, idle or busy (tasks on busy ones fail), waits
// for them to exit, their data directories removed, and lets go of the
// data dir. Later Runs fail.
func (p *Pools) Close() error {
	p.mu.Lock()
	p.closed = true
	var all []*worker
	for _, a := range p.accounts {
		all = append(all, a.idle...)
		for w := range a.busy {
			all = append(all, w)
		}
		a.idle = nil
		for len(a.waiters) > 0 {
			a.wakeFirst()
		}
	}
	p.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, w := range all {
		wg.Go(func() {
			if err := w.stop(); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		})
	}
	wg.Wait()
	// The workers' data went with them: the data dir is free.
	p.mu.Lock()
	lock := p.dataLock
	p.dataLock = nil
	p.mu.Unlock()
	if lock != nil {
		lock.Close()
	}
	return errors.Join(errs...)
}

// handOff gives w, busy, to the first waiter for its key and reports
// whether there was one.
func (a *account) handOff(w *worker) bool {
	for i, wt := range a.waiters {
		if wt.key == w.key {
			a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
			a.busy[w] = struct{}{}
			wt.wake <- w
			return true
		}
	}
	return false
}

// wakeFirst tells the first waiter, if any, to look again.
func (a *account) wakeFirst() {
	if len(a.waiters) == 0 {
		return
	}
	wt := a.waiters[0]
	a.waiters = a.waiters[1:]
	wt.wake <- nil
}

// removeWaiter takes wt out of the queue and reports whether it was
// still there (false: it was woken meanwhile).
func (a *account) removeWaiter(wt *waiter) bool {
	for i, q := range a.waiters {
		if q == wt {
			a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
			return true
		}
	}
	return false
}
