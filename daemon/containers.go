package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/isolation/oci"
	"fxd.dev/fxd/runtimes"
	"fxd.dev/fxd/runtimes/images"
	"fxd.dev/fxd/runtimes/sif"
)

// containers prepares SIF runtimes: the OCI runtime, the container
// executor (after removing the containers a previous run left) and the
// image repository. It returns nil when containers.runtime is "none" or
// no OCI runtime is installed (the daemon then offers only the host
// runtime, and says so), and fails on a broken configuration.
func containers(cfg *conf.Config, shim string, log zerolog.Logger) (*runtimes.Containers, *images.Store, error) {
	c := cfg.Containers
	if c.Runtime == "none" {
		log.Info().Msg("containers are off (containers.runtime = \"none\"); only the host runtime is offered")
		return nil, nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, err := oci.FindRuntime(ctx, c.Runtime)
	if errors.Is(err, api.ErrUnavailable) && c.Runtime == "" {
		log.Warn().Err(err).Msg("no OCI runtime: only the host runtime is offered; install crun (or runc) for SIF images")
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("containers.runtime: %w", err)
	}
	binds := make([]oci.Bind, len(c.Bind))
	for i, b := range c.Bind {
		binds[i] = oci.Bind{Source: b.Source, Destination: b.Destination, ReadOnly: b.ReadOnly}
	}
	site := oci.Site{
		CgroupParent: cfg.Workers.CgroupParent, Network: oci.Network(c.Network), Binds: binds,
		Shim: shim, WorkDir: c.WorkDir, TmpSize: int64(c.TmpSize),
	}
	ic := images.Config{Dir: filepath.Join(cfg.Site.StateDir, "images"), RequireSigned: c.RequireSigned}
	if c.Keyring != "" {
		if ic.KeyRing, err = sif.LoadKeyRing(c.Keyring); err != nil {
			return nil, nil, fmt.Errorf("containers.keyring: %w", err)
		}
	}
	// First: the index's lock keeps a second daemon on this state dir
	// out before Cleanup deletes containers.
	store, err := images.Open(ic, log)
	if err != nil {
		return nil, nil, err
	}
	exec, err := oci.New(oci.Config{Runtime: rt, Site: site, StateDir: filepath.Join(cfg.Site.StateDir, "containers"), Monitor: shim}, log)
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("prepare containers: %w", err)
	}
	if err := exec.Cleanup(); err != nil {
		log.Warn().Err(err).Msg("remove containers left by a previous run")
	}
	log.Info().Str("runtime", rt.String()).Msg("containers: SIF images run with " + rt.Name)
	return &runtimes.Containers{
		Exec: exec, Images: store, ShimPath: oci.ShimPath, WorkDir: c.WorkDir, HomeBound: c.HomeBound(),
	}, store, nil
}
