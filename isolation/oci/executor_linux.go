package oci

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/isolation/cgroup"
	"fxd.dev/fxd/isolation/oci/monitor"
)

// startTimeout bounds how long a runtime may take to start a container.
const startTimeout = time.Minute

// Config of an Executor.
type Config struct {
	Runtime Runtime // the OCI runtime, from FindRuntime
	Site    Site
	// StateDir holds the runtime's state (its --root) and one bundle
	// directory per container; it is created root-only.
	StateDir string
	// Monitor is the host path of fxd-shim, which runs as each
	// container's monitor (see isolation/oci/monitor).
	Monitor string
}

// Executor starts process trees in containers made from image root file
// systems (Spec.Rootfs, required), through an OCI runtime. It runs as
// root; what it starts never does. Safe for concurrent use.
//
// Each container has a monitor process (fxd-shim monitor), the parent of
// the container's first process, which reports its exit; the container's
// stdio are the Spec's, with no process copying in between when they are
// *os.File. Kill kills the container's cgroup; Wait deletes the container
// from the runtime and removes its cgroup and bundle.
//
// On hosts with cgroup v1 hierarchies and a cgroup2 mount with
// controllers (/sys/fs/cgroup/unified), crun refuses every container; the
// monitor then runs crun in a private mount namespace without that mount,
// so crun sees plain cgroup v1. The host is left as it is.
type Executor struct {
	cfg     Config
	root    string // the runtime's --root
	bundles string
	hide    bool // run the runtime without /sys/fs/cgroup/unified
	log     zerolog.Logger
}

// New checks c and prepares the state directory. It must run as root.
func New(c Config, log zerolog.Logger) (*Executor, error) {
	if euid := os.Geteuid(); euid != 0 {
		return nil, fmt.Errorf("running as uid %d: containers need root to start (fxd never runs a task as root): %w", euid, api.ErrDenied)
	}
	if err := cgroup.Available(); err != nil {
		return nil, err
	}
	if err := checkSite(c.Site); err != nil {
		return nil, err
	}
	if c.Runtime.Path == "" {
		return nil, fmt.Errorf("no OCI runtime given; find one with FindRuntime: %w", api.ErrInvalid)
	}
	if c.Monitor == "" || !filepath.IsAbs(c.Monitor) {
		return nil, fmt.Errorf("monitor %q: want the absolute path of fxd-shim: %w", c.Monitor, api.ErrInvalid)
	}
	if err := rootOnly(c.Monitor); err != nil {
		return nil, err
	}
	if err := checkPath("state dir", c.StateDir); err != nil {
		return nil, err
	}
	e := &Executor{
		cfg:     c,
		root:    filepath.Join(c.StateDir, "runtime"),
		bundles: filepath.Join(c.StateDir, "bundles"),
		hide:    c.Runtime.Name == "crun" && cgroup.HybridControllers(),
		log:     log.With().Str("component", "isolation.oci").Logger(),
	}
	for _, d := range []string{c.StateDir, e.root, e.bundles} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create container state dir: %w", err)
		}
	}
	return e, nil
}

// rootOnly refuses a file that anyone but root could replace: the monitor
// runs as root. The file and every directory above it must be root's and
// not writable by group or others, unless sticky (like /tmp, where others
// cannot replace root's entries).
func rootOnly(file string) error {
	for p := file; ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return fmt.Errorf("monitor %s: %w", file, err)
		}
		sticky := p != file && st.Mode&unix.S_ISVTX != 0
		if st.Uid != 0 || (st.Mode&0o022 != 0 && !sticky) {
			return fmt.Errorf("monitor %s: %s is owned by uid %d with mode %04o, so others could replace what fxd runs as root; "+
				"install fxd-shim where only root can write (chown root, chmod go-w): %w", file, p, st.Uid, st.Mode&0o7777, api.ErrDenied)
		}
		if p == "/" {
			return nil
		}
	}
}

// Start implements isolation.Executor.
func (e *Executor) Start(ctx context.Context, s isolation.Spec) (isolation.Process, error) {
	if err := checkSpec(s); err != nil {
		return nil, err
	}
	binds, err := expandBinds(e.cfg.Site.Binds, s.Account, e.cfg.Site.WorkDir)
	if err != nil {
		return nil, err
	}
	own, err := specBinds(s.Binds, binds, e.cfg.Site.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", s.ID, err)
	}
	binds = append(binds, own...)
	bundle := filepath.Join(e.bundles, s.ID)
	if err := os.Mkdir(bundle, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container %s exists already: %w", s.ID, api.ErrConflict)
		}
		return nil, fmt.Errorf("create bundle of %s: %w", s.ID, err)
	}
	p, err := e.start(ctx, s, binds, bundle)
	if err != nil {
		e.remove(s.ID, nil)
		return nil, err
	}
	return p, nil
}

// start stages the root and the binds, the site's and s's (as s's
// account reaches them),
// writes the bundle's config.json and runs the container.
func (e *Executor) start(ctx context.Context, s isolation.Spec, binds []Bind, bundle string) (*process, error) {
	root, err := stageRootfs(s.Rootfs, bundle)
	if err != nil {
		return nil, err
	}
	staged, err := stageBinds(binds, s.Account, bundle)
	if err != nil {
		return nil, err
	}
	s.Rootfs = root
	g := newSpec(s, e.cfg.Site, staged, e.cfg.Runtime.Name)
	if err := checkMountpoints(s.Rootfs, g); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("encode container %s: %w", s.ID, err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o600); err != nil {
		return nil, fmt.Errorf("write bundle of %s: %w", s.ID, err)
	}
	return e.run(ctx, s, bundle)
}

// run starts the container of the bundle through its monitor and returns
// once its first process runs.
func (e *Executor) run(ctx context.Context, s isolation.Spec, bundle string) (*process, error) {
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start container %s: %w", s.ID, err)
	}
	defer statusW.Close()
	args := []string{monitor.Command, "-pid-file", filepath.Join(bundle, "pid")}
	if e.hide {
		args = append(args, "-hide-cgroup2")
	}
	args = append(append(args, "--"), e.runtimeArgs(s.ID, "run", "--detach", "--pid-file", filepath.Join(bundle, "pid"), "--bundle", bundle)...)
	cmd := exec.Command(e.cfg.Monitor, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.Stdin, s.Stdout, s.Stderr
	cmd.ExtraFiles = []*os.File{statusW}
	// The monitor dies with the daemon; a restarted daemon removes what
	// it leaves with Cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		statusR.Close()
		return nil, fmt.Errorf("start the monitor of container %s (%s): %w", s.ID, e.cfg.Monitor, err)
	}
	statusW.Close()
	line := make(chan string, 1)
	status := bufio.NewReader(statusR)
	go func() {
		l, _ := status.ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	var first string
	select {
	case first = <-line:
	case <-ctx.Done():
	case <-timer.C:
	}
	pid, ok := strings.CutPrefix(first, "started ")
	if !ok {
		// The monitor leads its own process group, with the runtime
		// in it: a runtime still at work must not outlive the failure.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		statusR.Close()
		return nil, e.startError(ctx, s.ID, bundle, first)
	}
	g, err := cgroup.Load(path.Join("/", e.cfg.Site.CgroupParent, s.ID))
	if err != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		statusR.Close()
		return nil, fmt.Errorf("container %s started without its cgroup: %w", s.ID, err)
	}
	proc := &process{Tree: cgroup.NewTree(g), e: e, id: s.ID, cmd: cmd, status: status, statusR: statusR, started: start}
	proc.pid, _ = strconv.Atoi(pid)
	go proc.wait(g)
	return proc, nil
}

// startError says why a container did not start: the monitor's line, or
// the runtime's last error in its log.
func (e *Executor) startError(ctx context.Context, id, bundle, line string) error {
	why, _ := strings.CutPrefix(line, "error ")
	switch {
	case line == "" && ctx.Err() != nil:
		why = "cancelled: " + ctx.Err().Error()
	case line == "":
		why = fmt.Sprintf("no answer from its monitor within %v", startTimeout)
	}
	if msg := lastLogError(filepath.Join(bundle, "runtime.log")); msg != "" {
		why += ": " + msg
	}
	kind := api.ErrInvalid // the runtime refused the container: its spec or image
	if line == "" {
		kind = api.ErrUnavailable
	}
	return fmt.Errorf("start container %s with %s: %s: %w", id, e.cfg.Runtime.Name, why, kind)
}

// lastLogError returns the last error a runtime logged in JSON lines
// ({"level":"error","msg":...}), or "".
func lastLogError(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	msg := ""
	for _, l := range strings.Split(string(b), "\n") {
		var entry struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &entry) == nil && entry.Level == "error" && entry.Msg != "" {
			msg = entry.Msg
		}
	}
	return msg
}

// runtimeArgs is the runtime's command line for a subcommand on
// container id, logging to the container's bundle.
func (e *Executor) runtimeArgs(id string, sub ...string) []string {
	logTo := filepath.Join(e.bundles, id, "runtime.log")
	if e.cfg.Runtime.Name == "crun" {
		logTo = "file:" + logTo
	}
	args := append([]string{e.cfg.Runtime.Path, "--root", e.root, "--log", logTo, "--log-format", "json"}, sub...)
	return append(args, id)
}

// remove deletes container id from the runtime, its cgroup and its
// bundle. g is its cgroup when known.
func (e *Executor) remove(id string, g *cgroup.Group) error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cfg.Runtime.Path, "--root", e.root, "delete", "--force", id)
	if out, err := cmd.CombinedOutput(); err != nil && !notExist(out) {
		errs = append(errs, fmt.Errorf("delete container %s: %w: %s", id, err, strings.TrimSpace(string(out))))
	}
	if g == nil {
		g, _ = cgroup.Load(path.Join("/", e.cfg.Site.CgroupParent, id))
	}
	if g != nil {
		if err := g.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	// Never through a staged bind: RemoveAll would delete the user's files.
	bundle := filepath.Join(e.bundles, id)
	if err := errors.Join(unstageBinds(bundle), unstageRootfs(bundle)); err != nil {
		errs = append(errs, err)
	} else if err := os.RemoveAll(bundle); err != nil {
		errs = append(errs, fmt.Errorf("remove bundle of %s: %w", id, err))
	}
	return errors.Join(errs...)
}

// notExist reports whether a runtime's output says the container does not
// exist.
func notExist(out []byte) bool {
	s := strings.ToLower(string(out))
	return strings.Contains(s, "does not exist") || strings.Contains(s, "not found") || strings.Contains(s, "no such file")
}

// Cleanup deletes every container a previous run of the daemon left (after
// a crash): from the runtime's state, their cgroups and their bundles.
func (e *Executor) Cleanup() error {
	seen := map[string]bool{}
	var errs []error
	for _, dir := range []string{e.root, e.bundles} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("list leftover containers: %w", err))
			continue
		}
		for _, en := range entries {
			if id := en.Name(); en.IsDir() && !seen[id] {
				seen[id] = true
				if err := e.remove(id, nil); err != nil {
					errs = append(errs, err)
					continue
				}
				e.log.Info().Str("container", id).Msg("removed a container left by a previous run")
			}
		}
	}
	return errors.Join(errs...)
}

// process is a started container.
type process struct {
	*cgroup.Tree
	e       *Executor
	id      string
	pid     int
	cmd     *exec.Cmd
	status  *bufio.Reader
	statusR *os.File
	started time.Time
}

func (p *process) Pid() int { return p.pid }

// wait reads how the container's process ended from its monitor, then
// deletes the container.
func (p *process) wait(g *cgroup.Group) {
	line, _ := p.status.ReadString('\n')
	p.statusR.Close()
	werr := p.cmd.Wait()
	st := isolation.ExitStatus{Code: -1, Duration: time.Since(p.started)}
	word, num, _ := strings.Cut(strings.TrimSpace(line), " ")
	n, nerr := strconv.Atoi(num)
	var err error
	switch {
	case word == "exited" && nerr == nil:
		st.Code = n
	case word == "signaled" && nerr == nil:
		st.Signal = syscall.Signal(n).String()
	default:
		err = fmt.Errorf("container %s: its monitor ended (%v) before reporting its exit", p.id, werr)
	}
	p.End(st, err, func() error { return p.e.remove(p.id, g) })
}

var _ isolation.Executor = (*Executor)(nil)
