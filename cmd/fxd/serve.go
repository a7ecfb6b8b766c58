package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/daemon"
)

const defaultConfigPath = "/etc/fxd/fxd.toml"

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fxd serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfigPath, "site config `file`")
	dev := fs.Bool("dev", false, "run with the embedded default config, state in a temp dir, the socket at <state>/fxd.sock")
	stateDir := fs.String("state-dir", "", "with --dev: the state `dir` (default $TMPDIR/fxd-dev)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: fxd serve [--config FILE | --dev [--state-dir DIR]]\n\nRun the daemon until SIGTERM (drain) or SIGINT; SIGHUP reloads tokens, identity rules and quotas.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadServeConfig(*path, *dev, *stateDir)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	if os.Geteuid() != 0 {
		log.Warn().Msg("not running as root: tasks can only run as this user's own account, without cgroup limits; run fxd as root (systemd does) for multi-tenant service")
	}
	d, err := daemon.New(cfg, log, fxdVersion())
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go reloadOnHUP(ctx, d, *path, *dev, *stateDir, log)
	return d.Run(ctx)
}

func loadServeConfig(path string, dev bool, stateDir string) (*conf.Config, error) {
	if !dev {
		cfg, err := conf.Load(path)
		if err != nil {
			return nil, err
		}
		return cfg, cfg.Validate()
	}
	if stateDir == "" {
		stateDir = filepath.Join(os.TempDir(), "fxd-dev")
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("state dir %s: %w", stateDir, err)
	}
	cfg := conf.Dev(abs)
	return cfg, cfg.Validate()
}

func reloadOnHUP(ctx context.Context, d *daemon.Daemon, path string, dev bool, stateDir string, log zerolog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := loadServeConfig(path, dev, stateDir)
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
