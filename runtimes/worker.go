package runtimes

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/runtimes/shim"
)

// worker is one warm process tree.
type worker struct {
	id     string
	key    key
	proc   isolation.Process
	stdin  *os.File      // to the worker
	stdout *bufio.Reader // from the worker
	rd     *os.File      // under stdout
	stderr *ring
	env    []string // the worker's environment
	dir    string   // where tasks start: the home on the host, "" (the work dir) in a container
	// data is the host directory of the worker's task data (makeData),
	// "" without; dataEnv is FXD_DATA=<where tasks see it>, or "".
	data, dataEnv string
	// oomSeen is the tree's OOM-kill count already reported; only the task
	// holding the worker reads or writes it.
	oomSeen int

	idleSince time.Time // guarded by Pools.mu

	dead    chan struct{} // closed when the worker has exited and its tree is gone
	exit    isolation.ExitStatus
	exitErr error
}

// acquire returns a worker of k for j, marked busy, and whether it was
// started for j.
func (p *Pools) acquire(ctx context.Context, k key, j Job, maxWorkers int) (*worker, bool, error) {
	woken := false // woken for room that another task took first
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, false, fmt.Errorf("run task: the worker pools are closed (the daemon is stopping): %w", api.ErrUnavailable)
		}
		a := p.accounts[k.uid]
		if a == nil {
			a = &account{busy: make(map[*worker]struct{})}
			p.accounts[k.uid] = a
		}
		if w := a.takeIdle(func(w *worker) bool { return w.key == k }); w != nil {
			select {
			case <-w.dead: // died while idle
				a.n--
				p.mu.Unlock()
				w.stop()
				p.mu.Lock()
				continue
			default:
			}
			a.busy[w] = struct{}{}
			p.mu.Unlock()
			return w, false, nil
		}
		var victim *worker
		if a.n >= maxWorkers {
			victim = a.takeIdle(func(*worker) bool { return true })
		}
		if a.n < maxWorkers || victim != nil {
			if victim == nil {
				a.n++
			}
			p.mu.Unlock()
			if victim != nil {
				p.log.Debug().Str("worker", victim.id).Str("account", j.Account.Name).Msg("stop idle worker of another key to make room")
				victim.stop()
			}
			w, err := p.start(ctx, k, j)
			p.mu.Lock()
			if err != nil {
				a.n--
				a.wakeFirst()
				p.mu.Unlock()
				return nil, true, err
			}
			if p.closed {
				a.n--
				p.mu.Unlock()
				w.stop()
				return nil, true, fmt.Errorf("run task: the worker pools are closed (the daemon is stopping): %w", api.ErrUnavailable)
			}
			a.busy[w] = struct{}{}
			p.cold++
			p.mu.Unlock()
			return w, true, nil
		}
		wt := &waiter{key: k, wake: make(chan *worker, 1)}
		if woken {
			a.waiters = slices.Insert(a.waiters, 0, wt) // keep its turn
		} else {
			a.waiters = append(a.waiters, wt)
		}
		p.mu.Unlock()
		var w *worker
		select {
		case w = <-wt.wake:
		case <-ctx.Done():
			p.mu.Lock()
			if a.removeWaiter(wt) {
				p.mu.Unlock()
				return nil, false, ctx.Err()
			}
			p.mu.Unlock()
			// Woken at the same time: pass on what it was given.
			if w = <-wt.wake; w != nil {
				p.release(w)
			} else {
				p.mu.Lock()
				a.wakeFirst()
				p.mu.Unlock()
			}
			return nil, false, ctx.Err()
		}
		if w != nil {
			select {
			case <-w.dead: // died between its last task and this one
				p.discard(w)
			default:
				return w, false, nil
			}
		}
		woken = true
		p.mu.Lock()
	}
}

// takeIdle removes and returns the newest idle worker that ok accepts.
func (a *account) takeIdle(ok func(*worker) bool) *worker {
	for i := len(a.idle) - 1; i >= 0; i-- {
		if w := a.idle[i]; ok(w) {
			a.idle = append(a.idle[:i], a.idle[i+1:]...)
			return w
		}
	}
	return nil
}

// release makes a busy worker idle again.
func (p *Pools) release(w *worker) {
	p.mu.Lock()
	a := p.accounts[w.key.uid]
	delete(a.busy, w)
	if p.closed {
		a.n--
		p.mu.Unlock()
		w.stop()
		return
	}
	if a.handOff(w) {
		p.mu.Unlock()
		return
	}
	w.idleSince = time.Now()
	a.idle = append(a.idle, w)
	// A waiter for another key may stop this idle worker to make room.
	a.wakeFirst()
	p.mu.Unlock()
}

// discard stops a busy worker and frees its place.
func (p *Pools) discard(w *worker) {
	w.stop()
	p.mu.Lock()
	a := p.accounts[w.key.uid]
	delete(a.busy, w)
	a.n--
	a.wakeFirst()
	p.mu.Unlock()
}

// workerPrefix begins every worker's id.
const workerPrefix = "fxd-w-"

// start starts a worker of k as j's account.
func (p *Pools) start(ctx context.Context, k key, j Job) (*worker, error) {
	p.mu.Lock()
	p.seq++
	id := workerPrefix + p.tag + "-" + strconv.FormatInt(p.seq, 10)
	p.mu.Unlock()
	w := &worker{id: id, key: k, stderr: &ring{}, dead: make(chan struct{}), dir: j.Account.Home}
	w.env = append(j.Account.Env(), "FXD_WORKER="+id)
	exec, rootfs, argv := p.exec, "", []string{p.shim}
	release := func() {} // the image and the data, once the worker's tree is gone
	if k.runtime != api.RuntimeHost {
		var err error
		if rootfs, release, err = p.ctr.Images.Mount(ctx, k.runtime); err != nil {
			return nil, fmt.Errorf("start worker for %s as %s: %w", k.kind, j.Account.Name, err)
		}
		exec, argv, w.dir = p.ctr.Exec, []string{p.ctr.ShimPath}, ""
		w.env = p.ctr.containerEnv(w.env)
	}
	var binds []isolation.Bind
	if k.data != "" {
		var err error
		if binds, err = p.showData(w, j, rootfs != ""); err != nil {
			release()
			return nil, fmt.Errorf("start worker for %s as %s: %w", k.kind, j.Account.Name, err)
		}
		img := release
		release = func() { img(); p.removeData(w.data) }
	}
	var err error
	if k.kind == api.KindServable {
		argv = j.Function.Command
		if rootfs != "" { // PID 1 of its container: the shim's init reaps and passes signals on
			argv = append([]string{p.ctr.ShimPath, shim.InitCommand, "--"}, argv...)
		}
		w.env = functionEnv(w.env, j.Function.Env, w.fxdEnv("FXD_FUNCTION="+j.Function.Ref())...)
	}
	// Every stream is a pipe of our own, so no executor has to copy them
	// and processes a task leaves behind cannot hold up its Wait.
	var pipes [6]*os.File // stdin r/w, stdout r/w, stderr r/w
	for i := 0; i < len(pipes); i += 2 {
		if pipes[i], pipes[i+1], err = os.Pipe(); err != nil {
			closeAll(pipes[:i])
			release()
			return nil, fmt.Errorf("start worker: %w", err)
		}
	}
	inR, inW, outR, outW, errR, errW := pipes[0], pipes[1], pipes[2], pipes[3], pipes[4], pipes[5]
	// The worker outlives the task that started it: only the start itself
	// follows ctx.
	proc, err := exec.Start(context.WithoutCancel(ctx), isolation.Spec{
		ID:      id,
		Account: j.Account,
		Rootfs:  rootfs,
		Argv:    argv,
		Env:     w.env,
		Dir:     w.dir,
		Limits:  j.Limits,
		Binds:   binds,
		Stdin:   inR,
		Stdout:  outW,
		Stderr:  errW,
	})
	closeAll([]*os.File{inR, outW, errW})
	if err != nil {
		closeAll([]*os.File{inW, outR, errR})
		release()
		return nil, fmt.Errorf("start worker for %s as %s: %w", k.kind, j.Account.Name, err)
	}
	copied := make(chan struct{})
	go func() {
		io.Copy(w.stderr, errR)
		errR.Close()
		close(copied)
	}()
	w.proc, w.stdin, w.rd, w.stdout = proc, inW, outR, bufio.NewReaderSize(outR, 64<<10)
	go func() {
		w.exit, w.exitErr = proc.Wait()
		release() // the image, the data: the tree is gone
		// The tree is gone, so stderr ends now; a process that escaped it
		// must not hold the worker up.
		t := time.NewTimer(time.Second)
		select {
		case <-copied:
		case <-t.C:
			errR.Close()
			<-copied
		}
		t.Stop()
		close(w.dead)
	}()
	p.log.Debug().Str("worker", id).Str("account", j.Account.Name).Uint32("uid", k.uid).Str("runtime", k.runtime).Str("kind", string(k.kind)).Msg("worker started")
	return w, nil
}

// showData makes the data directory of w for j's files and sets w.data
// and w.dataEnv: on the host, tasks read the directory itself; in a
// container, the directory is bound read-only at <work dir>/data, and
// showData returns that bind.
func (p *Pools) showData(w *worker, j Job, container bool) ([]isolation.Bind, error) {
	dir, err := p.makeData(w.id, j.Account, j.Data)
	if err != nil {
		return nil, err
	}
	w.data, w.dataEnv = dir, "FXD_DATA="+dir
	if !container {
		return nil, nil
	}
	at := path.Join(p.ctr.WorkDir, dataMount)
	w.dataEnv = "FXD_DATA=" + at
	return []isolation.Bind{{Source: dir, Destination: at, ReadOnly: true}}, nil
}

// fxdEnv is fxd's own variables for a process of w: vars, then FXD_DATA
// when w shows data.
func (w *worker) fxdEnv(vars ...string) []string {
	if w.dataEnv != "" {
		vars = append(vars, w.dataEnv)
	}
	return vars
}

// stop kills the worker's tree and waits until it is gone. Idempotent.
func (w *worker) stop() error {
	w.stdin.Close()
	err := w.proc.Kill()
	<-w.dead
	w.rd.Close()
	if err != nil {
		return fmt.Errorf("stop worker %s: %w", w.id, err)
	}
	if w.exitErr != nil {
		return fmt.Errorf("stop worker %s: %w", w.id, w.exitErr)
	}
	return nil
}

// kill kills the worker's tree and waits until it is gone, for a task that
// must end now; the worker is discarded afterwards.
func (w *worker) kill() {
	w.proc.Kill()
	<-w.dead
	w.stdin.Close()
	w.rd.Close()
}

// died reports whether the worker has exited, waiting up to d for it.
func (w *worker) died(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.dead:
		return true
	case <-t.C:
		return false
	}
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// functionEnv is base with a function's env over it (it may change PATH,
// say) and fxd's own variables last, which nothing overrides: each key
// once, the later value winning, since a process would otherwise see
// whichever copy its libc finds first.
func functionEnv(base []string, fn map[string]string, fxd ...string) []string {
	out := make([]string, 0, len(base)+len(fn)+len(fxd))
	if len(fn) == 0 {
		return append(append(out, base...), fxd...) // the keys are distinct
	}
	at := make(map[string]int, cap(out))
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := at[k]; ok {
			out[i] = kv
			return
		}
		at[k] = len(out)
		out = append(out, kv)
	}
	for _, kv := range base {
		set(kv)
	}
	keys := slices.Sorted(maps.Keys(fn))
	for _, k := range keys {
		set(k + "=" + fn[k])
	}
	for _, kv := range fxd {
		set(kv)
	}
	return out
}
