package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/cache"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/isolation/cgroup"
	"fxd.dev/fxd/isolation/plain"
	"fxd.dev/fxd/runtimes"
	"fxd.dev/fxd/runtimes/images"
)

// Node is what an agent runs tasks with on its node: warm worker pools
// under a cgroup parent of its own, and containers with an image store
// of its own when the node has an OCI runtime.
type Node struct {
	Pools *runtimes.Pools
	// Images holds the images fetched from the daemon; nil when the node
	// runs no containers.
	Images *images.Store
	// ImageLimits bounds each fetched image (containers.max_image_size,
	// min_free_space).
	ImageLimits images.Limits
	// Cache holds the data entries fetched from the daemon for tasks.
	Cache  *cache.Store
	parent *os.File
	dirs   []string // what the node keeps on disk, for Remove
}

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Open prepares node name to run tasks under cfg's [workers] and
// [containers]: its workers go under the cgroup
// <workers.cgroup_parent>-node-<name>, and its containers and images
// under <state_dir>/nodes/<name>, so that an agent beside a daemon on one
// host, or beside another agent, never cleans up what is not its own.
// It needs root.
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
	ctr, err := runtimes.OpenContainers(cfg.Containers, shim, runtimes.Place{
		StateDir: filepath.Join(cfg.Site.StateDir, "nodes", name), CgroupParent: parent,
	}, log)
	if err != nil {
		held.Close()
		return nil, err
	}
	n := &Node{parent: held, dirs: []string{filepath.Join(cfg.Site.StateDir, "nodes", name), filepath.Join(cfg.Site.StateDir, "task-data", "nodes", name)},
		ImageLimits: images.Limits{MaxSize: int64(cfg.Containers.MaxImageSize), MinFree: int64(cfg.Containers.MinFreeSpace)}}
	if ctr != nil {
		n.Images = ctr.Images
	}
	// Beside the task-data directory (<state_dir>/task-data/nodes/<name>),
	// on one file system: workers show entries through hard links.
	n.Cache, err = cache.Open(cache.Config{Dir: filepath.Join(cfg.Site.StateDir, "nodes", name, "cache"),
		MaxBytes: int64(cfg.Cache.MaxSize), MinFree: int64(cfg.Cache.MinFreeSpace)}, log)
	if err != nil {
		n.close()
		return nil, err
	}
	if n.Pools, err = runtimes.New(cfg.Workers, shim, exec, ctr, filepath.Join(cfg.Site.StateDir, "task-data", "nodes", name), log); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

// Runtimes are the kinds of runtime the node runs, for its hello.
func (n *Node) Runtimes() []string {
	if n.Images == nil {
		return []string{api.RuntimeKindHost}
	}
	return []string{api.RuntimeKindHost, api.RuntimeKindSIF}
}

// accountTTL is how long the node reuses an account it looked up.
const accountTTL = time.Minute

// Lookup resolves an account on this node, with cfg's minimum UID; each
// answer is reused for a minute.
func Lookup(minUID uint32) func(string) (isolation.Account, error) {
	cache := isolation.NewAccountCache(accountTTL)
	return func(name string) (isolation.Account, error) { return cache.Lookup(name, minUID) }
}

// Close stops the node's workers and unmounts its images.
func (n *Node) Close() error {
	return errors.Join(n.Pools.Close(), n.close())
}

// Remove removes what the node kept on disk (its images, cache and task
// data directories), after Close: for a node whose name is not used
// again.
func (n *Node) Remove() error {
	var errs []error
	for _, d := range n.dirs {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}

// close releases what Open took besides the pools.
func (n *Node) close() error {
	var errs []error
	if n.Images != nil {
		errs = append(errs, n.Images.Close())
	}
	if n.Cache != nil {
		errs = append(errs, n.Cache.Close())
	}
	n.parent.Close()
	return errors.Join(errs...)
}
