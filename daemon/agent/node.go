package agent

import (
	"errors"
	"fmt"
	"os"
	"regexp"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/isolation/cgroup"
	"fxd.dev/fxd/isolation/plain"
	"fxd.dev/fxd/runtimes"
)

// Node is what an agent runs tasks with on its node: warm worker pools
// under a cgroup parent of its own.
type Node struct {
	Pools  *runtimes.Pools
	parent *os.File
}

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Open prepares node name to run tasks under cfg's [workers]: its workers
// go under the cgroup <workers.cgroup_parent>-node-<name>, so that an
// agent beside a daemon on one host, or beside another agent, never
// cleans up what is not its own. It needs root.
func Open(cfg *conf.Config, name string, log zerolog.Logger) (*Node, error) {
	if !nodeNameRE.MatchString(name) {
		return nil, fmt.Errorf("node name %q: %w: use letters, digits, \".\", \"_\" and \"-\"", name, api.ErrInvalid)
	}
	parent := cfg.Workers.CgroupParent + "-node-" + name
	exec, err := plain.New(plain.Config{CgroupParent: parent}, log)
	if err != nil {
		return nil, fmt.Errorf("start executor: %w", err)
	}
	held, err := cgroup.ClaimParent(parent)
	if errors.Is(err, cgroup.ErrParentHeld) {
		return nil, fmt.Errorf("cgroup %q is in use by another agent named %q on this host (%w); give each agent its own --name", parent, name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup %q: %w", parent, err)
	}
	if err := exec.Cleanup(); err != nil {
		log.Warn().Err(err).Msg("remove worker cgroups left by a previous agent")
	}
	shim, err := runtimes.FindShim(cfg.Workers.Shim)
	if err != nil {
		held.Close()
		return nil, err
	}
	pools, err := runtimes.New(cfg.Workers, shim, exec, nil, log)
	if err != nil {
		held.Close()
		return nil, err
	}
	return &Node{Pools: pools, parent: held}, nil
}

// Lookup resolves an account on this node, with cfg's minimum UID.
func Lookup(minUID uint32) func(string) (isolation.Account, error) {
	return func(name string) (isolation.Account, error) { return isolation.LookupAccount(name, minUID) }
}

// Close stops the node's workers.
func (n *Node) Close() error {
	err := n.Pools.Close()
	n.parent.Close()
	return err
}
