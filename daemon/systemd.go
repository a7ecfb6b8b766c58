package daemon

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"
)

// systemd integration (Type=notify, sd_notify(3)): Run sends READY=1 with a
// STATUS= line once every listener is open and accepting, the watchdog
// pings WATCHDOG=1 at half of WatchdogSec while the task store answers,
// and shutdown sends STOPPING=1 when the drain begins. Socket activation
// is in listen.go. Outside systemd (no NOTIFY_SOCKET) all of it is a no-op.

// notify sends states to systemd's notify socket in one datagram, so that
// systemd applies them together (READY=1 with its STATUS=, as sd_notify
// does). It does nothing and returns nil when NOTIFY_SOCKET is unset.
func notify(states ...string) error {
	msg := strings.Join(states, "\n")
	if _, err := daemon.SdNotify(false, msg); err != nil {
		return fmt.Errorf("notify systemd of %s: %w", strings.Join(states, " "), err)
	}
	return nil
}

// watchdogInterval is how often to ping systemd's watchdog: half of
// WATCHDOG_USEC, as sd_watchdog_enabled(3) advises. It is 0 when systemd
// asked for no pings from this process: WATCHDOG_USEC unset, or
// WATCHDOG_PID naming another process.
func watchdogInterval() (time.Duration, error) {
	timeout, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0, fmt.Errorf("read the systemd watchdog timeout: %w", err)
	}
	return timeout / 2, nil
}

// watchdog pings systemd's watchdog until ctx is done, so that systemd
// restarts a wedged daemon (WatchdogSec= in the unit).
func (d *Daemon) watchdog(ctx context.Context) {
	every, err := watchdogInterval()
	if err != nil {
		d.log.Warn().Err(err).Msg("systemd watchdog: not pinging")
		return
	}
	if every == 0 {
		return
	}
	d.log.Info().Dur("dur", every).Msg("systemd watchdog: pinging")
	alive := func() error { _, err := d.store.Counts(); return err }
	ping := func() error { return notify(daemon.SdNotifyWatchdog) }
	watchdogLoop(ctx, every, alive, ping, d.log)
}

// watchdogLoop calls ping every interval while alive returns nil, until
// ctx is done. A failing alive check skips the ping, so systemd restarts
// the daemon once its watchdog timeout passes.
func watchdogLoop(ctx context.Context, every time.Duration, alive, ping func() error, log zerolog.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := alive(); err != nil {
			log.Error().Err(err).Msg("systemd watchdog: the task store does not answer; not pinging, so systemd restarts fxd")
			continue
		}
		if err := ping(); err != nil {
			log.Warn().Err(err).Msg("systemd watchdog: ping")
		}
	}
}

// newStdLogger routes net/http's own error log (TLS handshake failures and
// the like) into zerolog at debug level: on the endpoint they are mostly
// scanners and clients that hang up.
func newStdLogger(l zerolog.Logger) *log.Logger { return newStdLoggerAt(l, zerolog.DebugLevel) }

// newStdLoggerAt is newStdLogger at level: the peer endpoint's refused
// handshakes (a peer's expired or unknown certificate) are for the admin.
func newStdLoggerAt(l zerolog.Logger, level zerolog.Level) *log.Logger {
	return log.New(levelWriter{l.With().Str("source", "net/http").Logger(), level}, "", 0)
}

type levelWriter struct {
	l     zerolog.Logger
	level zerolog.Level
}

func (w levelWriter) Write(p []byte) (int, error) {
	w.l.WithLevel(w.level).Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
