package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/daemon"
)

// defaultConfigPath is the site config of an installed fxd.
const defaultConfigPath = "/etc/fxd/fxd.toml"

// devStateDir is the state dir of the dev daemon (`fxd serve --dev`, which
// `make run` starts): fixed rather than under $TMPDIR, so that `sudo fxd
// token --dev`, `make run` and the README's socket path agree whatever
// TMPDIR a shell sets.
const devStateDir = "/tmp/fxd-dev"

const serveUsage = `usage: fxd serve [--config FILE | --dev [--state-dir DIR] [--cgroup-parent NAME]]

Run the daemon until SIGTERM (drain) or SIGINT; SIGHUP reloads tokens,
identity rules and quotas. fxd must start as root: it runs every task as its
caller's own account in a cgroup. From a checkout: sudo make run. Installed:
systemctl start fxd.

`

// cmdServe is `fxd serve`: it runs the daemon in the foreground.
func cmdServe(args []string, stdout, stderr io.Writer) error {
	fl, site := newSiteFlagSet("fxd serve", serveUsage, stderr)
	fl.StringVar(&site.cgroupParent, "cgroup-parent", "", "with --dev: the cgroup `name` workers go under, instead of workers.cgroup_parent of the default config")
	if err := fl.Parse(args); err != nil {
		return helpOK(err)
	}
	if fl.NArg() > 0 {
		fl.Usage()
		return fmt.Errorf("unexpected argument %q; serve takes only flags (a config file goes after --config)", fl.Arg(0))
	}
	if err := site.check(fl); err != nil {
		return err
	}
	cfg, err := site.load()
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	d, err := daemon.New(cfg, log, fxdVersion())
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Catch SIGHUP before serving, so an early one reloads instead of
	// killing the daemon.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnHUP(ctx, hup, d, site.load, log)
	return d.Run(ctx)
}

// siteFlags choose the site config: a file (--config) or the embedded dev
// config (--dev). serve and token share them, so `fxd token --dev` writes
// the token file that `fxd serve --dev` reads.
type siteFlags struct {
	path         string
	dev          bool
	stateDir     string
	cgroupParent string          // serve only; "" keeps the config's
	set          map[string]bool // the flags of the command line, by name (after check)
}

// newSiteFlagSet is the flag set of subcommand name (its usage text first,
// then the flags) with --config, --dev and --state-dir registered.
func newSiteFlagSet(name, usage string, stderr io.Writer) (*flag.FlagSet, *siteFlags) {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, usage)
		fl.PrintDefaults()
	}
	site := &siteFlags{}
	site.register(fl)
	return fl, site
}

// register adds --config, --dev and --state-dir to fl.
func (s *siteFlags) register(fl *flag.FlagSet) {
	fl.StringVar(&s.path, "config", defaultConfigPath, "site config `file`")
	fl.BoolVar(&s.dev, "dev", false, "use the embedded default config with state and the socket in "+devStateDir+" (what make run serves)")
	fl.StringVar(&s.stateDir, "state-dir", "", "with --dev: the state `dir` instead of "+devStateDir)
}

// check refuses flag combinations that would silently do something else
// than asked. Call it after fl.Parse.
func (s *siteFlags) check(fl *flag.FlagSet) error {
	s.set = map[string]bool{}
	fl.Visit(func(f *flag.Flag) { s.set[f.Name] = true })
	if s.dev && s.set["config"] {
		return errors.New("--config and --dev exclude each other; give --config FILE for a site config, or --dev for the dev daemon")
	}
	for _, f := range []struct{ flag, key string }{{"state-dir", "site.state_dir"}, {"cgroup-parent", "workers.cgroup_parent"}} {
		if s.set[f.flag] && !s.dev {
			return fmt.Errorf("--%s applies only with --dev; for a site config set %s in the file", f.flag, f.key)
		}
	}
	return nil
}

// load reads and validates the config the flags choose.
func (s *siteFlags) load() (*conf.Config, error) {
	return s.loadValid((*conf.Config).Validate)
}

// loadNode is load for a node agent, which reads less of the config
// (conf.Config.ValidateNode): a compute node may use the login node's
// file without its private keys.
func (s *siteFlags) loadNode() (*conf.Config, error) {
	return s.loadValid((*conf.Config).ValidateNode)
}

func (s *siteFlags) loadValid(validate func(*conf.Config) error) (*conf.Config, error) {
	if !s.dev {
		cfg, err := conf.Load(s.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w; write one with: fxd config default > %s, give another with --config FILE, or use --dev for the dev daemon of make run", err, s.path)
		}
		if err != nil {
			return nil, err
		}
		return cfg, validate(cfg)
	}
	dir, err := filepath.Abs(cmp.Or(s.stateDir, devStateDir))
	if err != nil {
		return nil, fmt.Errorf("state dir %s: %w", s.stateDir, err)
	}
	if err := checkDevDir(dir); err != nil {
		return nil, err
	}
	cfg := conf.Dev(dir)
	if s.cgroupParent != "" {
		cfg.Workers.CgroupParent = s.cgroupParent
	}
	return cfg, validate(cfg)
}

// checkDevDir refuses a dev state dir that another user could have
// prepared: /tmp is shared, and root keeps tokens and the socket there.
// A missing dir is fine: the daemon creates it.
func checkDevDir(dir string) error {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dev state dir: %w", err)
	}
	owner := -1
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		owner = int(sys.Uid)
	}
	if !st.IsDir() || owner != os.Geteuid() {
		return fmt.Errorf("dev state dir %s is a symlink, not a directory, or owned by uid %d rather than you (uid %d); "+
			"another user may have made it: remove it (rm -rf %s) and run again", dir, owner, os.Geteuid(), dir)
	}
	return nil
}

// reloadOnHUP reloads the config on each signal from hup until ctx is
// done; a config that does not load keeps the running one.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, d *daemon.Daemon, load func() (*conf.Config, error), log zerolog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := load()
		if err == nil {
			err = d.Reload(cfg)
		}
		if err != nil {
			log.Error().Err(err).Msg("reload config: keeping the running one")
		}
	}
}

// newLogger builds the root logger: JSON to stderr for journald, or a
// console format on a TTY.
func newLogger(c conf.Log, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	console := c.Format == "console"
	if c.Format == "auto" {
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				console = true
			}
		}
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
