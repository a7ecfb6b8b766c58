package daemon

import (
	"context"
	"log"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"
)

// notify sends state lines to systemd's notify socket; it does nothing
// when the daemon does not run under systemd (no NOTIFY_SOCKET).
func notify(states ...string) {
	for _, s := range states {
		daemon.SdNotify(false, s)
	}
}

// watchdog pings systemd at half the WatchdogSec interval while the task
// store answers, so a wedged daemon is restarted.
func (d *Daemon) watchdog(ctx context.Context) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		return
	}
	tick := time.NewTicker(every / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := d.store.Counts(); err != nil {
				d.log.Error().Err(err).Msg("watchdog: task store does not answer; not pinging systemd")
				continue
			}
			notify("WATCHDOG=1")
		}
	}
}

// newStdLogger routes net/http's own error log (TLS handshake failures and
// the like) into zerolog at debug level.
func newStdLogger(l zerolog.Logger) *log.Logger {
	return log.New(debugWriter{l.With().Str("component", "http").Logger()}, "", 0)
}

type debugWriter struct{ l zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.l.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
