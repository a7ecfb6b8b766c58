package runtimes

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
	"fxd.dev/fxd/runtimes/images"
	"fxd.dev/fxd/runtimes/sif"
)

// Place is where one node keeps its containers: the daemon's node, or a
// node agent's (each agent has its own, so that several on one host, or
// one beside the daemon, never touch each other's).
type Place struct {
	// StateDir holds the image store (StateDir/images) and the
	// containers' bundles (StateDir/containers).
	StateDir string
	// CgroupParent is the cgroup the containers go under.
	CgroupParent string
	// Verify checks images' signatures when containers.require_signed
	// asks for them. A node agent's store holds only images the daemon
	// checked and sent by digest, so it verifies nothing more.
	Verify bool
}

// OpenContainers prepares SIF runtimes as c configures them, at p: the
// OCI runtime, the image store and the container executor (after
// removing the containers a previous run at p left). It returns nil when
// c.Runtime is "none" or no OCI runtime is installed (the node then runs
// only the host runtime, which it logs), and fails on a broken
// configuration. The caller closes the result's Images.
func OpenContainers(c conf.Containers, shim string, p Place, log zerolog.Logger) (*Containers, error) {
	if c.Runtime == "none" {
		log.Info().Msg("containers are off (containers.runtime = \"none\"); only the host runtime is offered")
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, err := oci.FindRuntime(ctx, c.Runtime)
	if errors.Is(err, api.ErrUnavailable) && c.Runtime == "" {
		log.Warn().Err(err).Msg("no OCI runtime: only the host runtime is offered; install crun (or runc) for SIF images")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("containers.runtime: %w", err)
	}
	ic := images.Config{Dir: filepath.Join(p.StateDir, "images"), RequireSigned: p.Verify && c.RequireSigned}
	if p.Verify && c.Keyring != "" {
		if ic.KeyRing, err = sif.LoadKeyRing(c.Keyring); err != nil {
			return nil, fmt.Errorf("containers.keyring: %w", err)
		}
	}
	// First: the index's lock keeps a second process on this state dir
	// out before Cleanup deletes containers.
	store, err := images.Open(ic, log)
	if err != nil {
		return nil, err
	}
	binds := make([]oci.Bind, len(c.Bind))
	for i, b := range c.Bind {
		binds[i] = oci.Bind{Source: b.Source, Destination: b.Destination, ReadOnly: b.ReadOnly}
	}
	site := oci.Site{
		CgroupParent: p.CgroupParent, Network: oci.Network(c.Network), Binds: binds,
		Shim: shim, WorkDir: c.WorkDir, TmpSize: int64(c.TmpSize),
	}
	exec, err := oci.New(oci.Config{Runtime: rt, Site: site, StateDir: filepath.Join(p.StateDir, "containers"), Monitor: shim}, log)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("prepare containers: %w", err)
	}
	if err := exec.Cleanup(); err != nil {
		log.Warn().Err(err).Msg("remove containers left by a previous run")
	}
	log.Info().Str("runtime", rt.String()).Msg("containers: SIF images run with " + rt.Name)
	return &Containers{Exec: exec, Images: store, ShimPath: oci.ShimPath, WorkDir: c.WorkDir, HomeBound: c.HomeBound()}, nil
}
