package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/batch"
	"fxd.dev/fxd/cache"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/daemon/store"
	"fxd.dev/fxd/isolation/cgroup"
	"fxd.dev/fxd/isolation/plain"
	"fxd.dev/fxd/runtimes"
	"fxd.dev/fxd/runtimes/images"
)

// Daemon is the facility endpoint of one node: it authenticates callers,
// stores their tasks durably and runs them on warm workers.
type Daemon struct {
	// cfg is the config the daemon started with. What SIGHUP reloads
	// lives elsewhere: [auth] in mapperP, the token file in tokens, and
	// [tenants] in the dispatcher.
	cfg     *conf.Config
	log     zerolog.Logger
	version string

	store    *store.Store
	pools    *runtimes.Pools
	exec     *plain.Executor
	parent   *os.File // holds workers.cgroup_parent for this daemon
	disp     *dispatcher
	nodes    *nodeSet
	scalers  []*batch.Scaler // one per [[batch.pool]]
	closers  []batchCloser   // providers whose blocks end with the daemon (local)
	images   *images.Store   // nil without containers
	cache    *cache.Store    // the node's data cache
	stager   *stager
	peers    peers     // entries brought back from nodes' caches
	trees    treeCache // which cache entries are tree manifests
	metrics  *metrics
	tokens   tokens
	fed      *fed // nil outside a federation
	mapperP  atomic.Pointer[mapper]
	reloadMu sync.Mutex // one Reload at a time
	draining atomic.Bool
}

// New opens the state dir and the task store and prepares the workers; it
// listens on nothing until Run.
func New(cfg *conf.Config, log zerolog.Logger, version string) (_ *Daemon, err error) {
	d := &Daemon{cfg: cfg, log: log.With().Str("component", "daemon").Logger(), version: version}
	defer func() {
		if err != nil {
			d.close() // what New got so far
		}
	}()
	// First, so that a daemon that cannot run tasks (not root, no
	// cgroups) creates nothing.
	if d.exec, err = plain.New(plain.Config{CgroupParent: cfg.Workers.CgroupParent}, log); err != nil {
		return nil, fmt.Errorf("start executor: %w", err)
	}
	// 0711: users may reach a socket kept in the state dir, but not list
	// it; the files in it are 0600.
	if err := os.MkdirAll(cfg.Site.StateDir, 0o711); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", cfg.Site.StateDir, err)
	}
	m, err := newMapper(cfg.Auth)
	if err != nil {
		return nil, err
	}
	d.mapperP.Store(m)
	if err := d.tokens.load(cfg.TokenFile()); err != nil {
		return nil, err
	}
	// Cleanup kills every tree under the parent: only the daemon that
	// holds it may run it, or two daemons would kill each other's workers.
	d.parent, err = cgroup.ClaimParent(cfg.Workers.CgroupParent)
	if errors.Is(err, cgroup.ErrParentHeld) {
		return nil, fmt.Errorf("workers.cgroup_parent %q is in use by another fxd on this host (%w); stop it, or give each daemon its own cgroup_parent", cfg.Workers.CgroupParent, err)
	}
	if err != nil {
		return nil, fmt.Errorf("workers.cgroup_parent %q: %w", cfg.Workers.CgroupParent, err)
	}
	shim, err := runtimes.FindShim(cfg.Workers.Shim)
	if err != nil {
		return nil, err
	}
	ctr, err := containers(cfg, shim, log)
	if err != nil {
		return nil, err
	}
	if ctr != nil {
		d.images = ctr.Images
	}
	if err := d.exec.Cleanup(); err != nil {
		d.log.Warn().Err(err).Msg("remove worker cgroups left by a previous run")
	}
	if d.pools, err = runtimes.New(cfg.Workers, shim, d.exec, ctr, filepath.Join(cfg.Site.StateDir, "task-data"), log); err != nil {
		return nil, err
	}
	if d.cache, err = openCache(cfg, log); err != nil {
		return nil, err
	}
	d.stager = newStager(d.cache, cfg.Cache)
	d.peers.waiting = map[peerKey]*peerFetch{}
	if d.store, err = store.Open(filepath.Join(cfg.Site.StateDir, "tasks.db"), log); err != nil {
		return nil, err
	}
	d.metrics = newMetrics(d.pools.Stats, d.store.Commits)
	if d.nodes, err = newNodeSet(cfg.Batch.NodeLease.D(), filepath.Join(cfg.Site.StateDir, "node-credentials.json"), d.log); err != nil {
		return nil, err
	}
	if d.scalers, err = d.newScalers(); err != nil {
		return nil, err
	}
	d.disp = &dispatcher{
		store: d.store, pools: d.pools, nodes: d.nodes, images: d.images, resolveData: d.resolveData, keepOutput: d.keepOutput,
		localityWait: cfg.Batch.LocalityWait.D(), metrics: d.metrics, log: d.log,
		tenants: map[string]*tenant{}, active: map[string]*job{},
		quotas: cfg.Tenants, limits: cfg.Limits, daemonNodeTasks: cfg.Batch.DaemonNodeTasks,
	}
	if d.fed, err = newFed(d); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Daemon) mapper() *mapper { return d.mapperP.Load() }

// Run serves until ctx is done, then drains: it stops accepting, lets
// running tasks finish for drain_grace, requeues the rest and returns.
func (d *Daemon) Run(ctx context.Context) error {
	base, stopRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRuns()
	d.disp.base = base
	lns, err := d.listen()
	if err != nil {
		d.close()
		return err
	}
	peerLn, err := d.fed.listen()
	if err != nil {
		lns.close()
		d.close()
		return err
	}
	n, err := d.recover()
	if err != nil {
		lns.close()
		if peerLn != nil {
			peerLn.Close()
		}
		d.close()
		return err
	}
	srv := &http.Server{Handler: d.routes(), ConnContext: connContext, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: newStdLogger(d.log)}
	g, gctx := errgroup.WithContext(ctx)
	for _, ln := range lns.all() {
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
			return nil
		})
	}
	g.Go(func() error { return d.pools.Reap(gctx) })
	g.Go(func() error { d.expireLoop(gctx); return nil })
	if d.fed != nil {
		g.Go(func() error { return d.fed.run(gctx, peerLn) })
	}
	for _, s := range d.scalers {
		g.Go(func() error { s.Run(gctx, d.nodes.demand); return nil })
	}
	// The watchdog pings through the drain, which can outlast a short
	// WatchdogSec, and stops only once the daemon is about to exit.
	wdCtx, stopWatchdog := context.WithCancel(context.WithoutCancel(ctx))
	wdDone := make(chan struct{})
	go func() { d.watchdog(wdCtx); close(wdDone) }()
	d.log.Info().Str("site", d.cfg.Site.Name).Strs("listen", lns.addrs()).Int("recovered", n).Msg("serving")
	if err := notify("READY=1", fmt.Sprintf("STATUS=serving on %s", strings.Join(lns.addrs(), ", "))); err != nil {
		d.log.Warn().Err(err).Msg("tell systemd the daemon is ready")
	}

	<-gctx.Done()
	d.shutdown(srv)
	err = g.Wait()
	if d.fed != nil {
		d.fed.stores.Wait() // after the last request: none adds one
	}
	d.closeProviders()
	stopWatchdog()
	<-wdDone
	lns.close()
	d.close()
	if ctx.Err() != nil && err == nil {
		return nil
	}
	return err
}

// shutdown stops accepting and drains running tasks.
func (d *Daemon) shutdown(srv *http.Server) {
	grace := d.cfg.Endpoint.DrainGrace.D()
	d.log.Info().Dur("dur", grace).Msg("draining")
	// Draining before STOPPING=1: whoever hears it finds /healthz failing.
	d.draining.Store(true)
	// EXTEND_TIMEOUT_USEC keeps systemd from killing the daemon mid-drain
	// when drain_grace is longer than the unit's TimeoutStopSec.
	if err := notify("STOPPING=1", fmt.Sprintf("STATUS=draining: running tasks have up to %s to end", grace),
		fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", (grace+10*time.Second).Microseconds())); err != nil {
		d.log.Warn().Err(err).Msg("tell systemd the daemon is stopping")
	}
	done := make(chan struct{})
	go func() {
		d.disp.drain(grace)
		d.nodes.closeLinks() // after the drain: tasks on nodes report through them
		close(done)
	}()
	sctx, cancel := context.WithTimeout(context.Background(), grace+5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	<-done
}

// close releases what New acquired: the workers first, then what they
// use. It skips what New did not get to, so New's error path uses it too.
func (d *Daemon) close() {
	if d.pools != nil {
		if err := d.pools.Close(); err != nil {
			d.log.Warn().Err(err).Msg("stop workers")
		}
	}
	// The images are unmounted and their index closed once no worker
	// uses them.
	if d.images != nil {
		if err := d.images.Close(); err != nil {
			d.log.Warn().Err(err).Msg("close the image repository")
		}
	}
	if d.cache != nil {
		if err := d.cache.Close(); err != nil {
			d.log.Warn().Err(err).Msg("close the data cache")
		}
	}
	if d.store != nil {
		if err := d.store.Close(); err != nil {
			d.log.Error().Err(err).Msg("close task store")
		}
	}
	if d.parent != nil {
		d.parent.Close()
	}
}

// recover queues again every task that was accepted but not finished when
// the daemon last stopped (at-least-once: running ones run again).
func (d *Daemon) recover() (int, error) {
	var jobs []*job
	var failed []api.Task
	forwarded := 0
	err := d.store.Unfinished(func(rec store.Record) error {
		var j *job
		var err error
		if rec.Task.Site != "" {
			if err = d.fed.recovered(rec); err == nil {
				forwarded++
				return nil
			}
		} else {
			j, err = d.recoveredJob(rec)
		}
		if err != nil {
			t := rec.Task
			t.State, t.Error, t.FinishedAt = api.StateFailed, "not run again after a restart: "+err.Error(), time.Now()
			t.ExpiresAt = t.FinishedAt.Add(d.cfg.Limits.ResultRetention.D())
			failed = append(failed, t)
			return nil
		}
		jobs = append(jobs, j)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("recover unfinished tasks: %w", err)
	}
	if len(failed) > 0 {
		if err := d.store.UpdateTasks(context.Background(), failed); err != nil {
			return 0, fmt.Errorf("store unrecoverable tasks: %w", err)
		}
	}
	d.disp.enqueue(jobs...)
	return len(jobs) + forwarded, nil
}

func (d *Daemon) recoveredJob(rec store.Record) (*job, error) {
	t := rec.Task
	owner, name, ok := strings.Cut(t.Function, "/")
	if !ok {
		return nil, fmt.Errorf("bad function reference %q", t.Function)
	}
	fn, err := d.store.GetFunction(owner, name)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", t.Function, err)
	}
	acct, err := d.mapper().accountByName(t.Owner)
	if err != nil {
		return nil, err
	}
	// It is queued again: the times of its earlier attempt go, so that
	// until it runs it is not shown as dispatched, nor while it runs as
	// started.
	t.State = api.StateQueued
	t.DispatchedAt, t.StartedAt = time.Time{}, time.Time{}
	input := rec.Input
	if input == nil {
		input = []byte{}
	}
	j := &job{task: t, fn: fn, acct: acct, input: input, timeout: t.Timeout.D(), done: make(chan struct{})}
	// The store keeps the timeout, not who gave it: one other than the
	// site's default was declared.
	if fn.Limits.Timeout != 0 || j.timeout != d.cfg.Limits.DefaultTimeout.D() {
		j.declared = j.timeout
	}
	return j, nil
}

// expireLoop deletes results past their retention: every quarter of the
// retention, between once a second and once a minute.
func (d *Daemon) expireLoop(ctx context.Context) {
	every := min(max(d.cfg.Limits.ResultRetention.D()/4, time.Second), time.Minute)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if n, err := d.store.Expire(time.Now()); err != nil {
			d.log.Error().Err(err).Msg("expire old results")
		} else if n > 0 {
			d.log.Info().Int("tasks", n).Msg("expired old results")
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Reload applies what can change without a restart: [auth] (identity
// rules, min_uid, cert_identity, token_file), [tenants] (quotas, for
// tasks that start from now on) and the trust material of [federation]
// (this site's certificate and key, the CAs, the peers' fingerprints and
// permissions, for the next handshakes: certificate rotation). It
// re-reads the token file and the federation's certificate files. Changes to
// any other section are logged as needing a restart and not applied; the
// running config stays the reference, so they are logged again at every
// reload until the restart. On error nothing is applied.
func (d *Daemon) Reload(cfg *conf.Config) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	m, err := newMapper(cfg.Auth)
	if err != nil {
		return err
	}
	// The token file's default lives in site.state_dir, which needs a
	// restart: take it from the running config.
	withSite := *cfg
	withSite.Site = d.cfg.Site
	tokens, err := readTokenSet(withSite.TokenFile(), time.Now())
	if err != nil {
		return err
	}

	if restart := restartSections(d.cfg, cfg); len(restart) > 0 {
		d.log.Warn().Strs("sections", restart).Msg("config changed in sections SIGHUP cannot apply; they keep their running values until fxd restarts")
	}
	if d.fed != nil {
		if err := d.fed.reload(d.cfg.Site.Name, cfg.Federation); err != nil {
			return err
		}
	}
	// The identity rules go last: a caller they admit or refuse sees the
	// rest of the reload in effect.
	d.disp.setQuotas(cfg.Tenants)
	d.tokens.cur.Store(tokens)
	d.mapperP.Store(m)
	d.log.Info().Int("map_rules", len(m.rules)).Str("token_file", tokens.path).Int("tokens", len(tokens.byHash)).
		Bool("federation", d.fed != nil).Msg("reloaded [auth], [tenants], the token file and the federation's certificates")
	return nil
}

// reloaded are the sections of conf.Config that Reload applies, by field.
// Of [federation], it applies the trust material alone (trustOnly).
var reloaded = map[string]bool{"Auth": true, "Tenants": true}

// trustOnly is f without what Reload applies of it: the certificate, key
// and CAs, and each peer's ca, fingerprint and allow. Two configs whose
// trustOnly agree differ in nothing a reload cannot apply.
func trustOnly(f conf.Federation) conf.Federation {
	f.Cert, f.Key, f.CA = "", "", ""
	f.Peer = slices.Clone(f.Peer)
	for i := range f.Peer {
		f.Peer[i].CA, f.Peer[i].Fingerprint, f.Peer[i].Allow = "", "", nil
	}
	return f
}

// restartSections names, by toml table, the sections that differ between
// the running config and a new one and that Reload does not apply. It
// walks every field of conf.Config, so a new section is covered at once.
func restartSections(running, next *conf.Config) []string {
	var out []string
	a, b := reflect.ValueOf(running).Elem(), reflect.ValueOf(next).Elem()
	for i := range a.NumField() {
		f := a.Type().Field(i)
		if !f.IsExported() || reloaded[f.Name] {
			continue
		}
		va, vb := a.Field(i).Interface(), b.Field(i).Interface()
		if fa, ok := va.(conf.Federation); ok {
			va, vb = trustOnly(fa), trustOnly(vb.(conf.Federation))
		}
		if !reflect.DeepEqual(va, vb) {
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" {
				name = f.Name
			}
			out = append(out, name)
		}
	}
	return out
}
