package daemon

import (
	"github.com/rs/zerolog"

	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/runtimes"
)

// containers prepares the daemon's node's SIF runtimes (see
// runtimes.OpenContainers): nil when containers are off or no OCI
// runtime is installed.
func containers(cfg *conf.Config, shim string, log zerolog.Logger) (*runtimes.Containers, error) {
	return runtimes.OpenContainers(cfg.Containers, shim, runtimes.Place{
		StateDir: cfg.Site.StateDir, CgroupParent: cfg.Workers.CgroupParent, Verify: true,
	}, log)
}
