package conf

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Providers are the batch.pool providers fxd has.
var providers = []string{"local", "slurm", "pbs"}

func (c *Config) validateBatch(ps *problems) {
	b := c.Batch
	if b.PollInterval < Duration(time.Second) {
		ps.add("batch.poll_interval", "%s is too short; give at least \"1s\" (schedulers answer slowly and every poll costs the site's controller)", b.PollInterval.D())
	}
	if b.NodeLease < Duration(time.Second) {
		ps.add("batch.node_lease", "%s is too short; give at least \"1s\" (a link that blinks must not requeue its node's tasks)", b.NodeLease.D())
	}
	if b.LocalityWait < 0 {
		ps.add("batch.locality_wait", "%s is negative; give 0 (go anywhere at once) or a duration like \"3s\"", b.LocalityWait.D())
	}
	if b.DaemonURL != "" && !strings.HasPrefix(b.DaemonURL, "https://") {
		ps.add("batch.daemon_url", "%q is not an https:// URL; give the endpoint's, like \"https://login1:8443\"", b.DaemonURL)
	}
	if len(b.Pool) > 0 && c.Endpoint.Listen == "" {
		ps.add("batch.pool", "pools need endpoint.listen: their agents dial the daemon over HTTPS; set listen, tls_cert and tls_key")
	}
	if b.DaemonCA != "" {
		absPath(ps, "batch.daemon_ca", b.DaemonCA, false, "")
	}
	seen := map[string]bool{}
	for i, p := range b.Pool {
		key := fmt.Sprintf("batch.pool[%d]", i)
		if !siteNameRE.MatchString(p.Name) {
			ps.add(key+".name", "%q is not a pool name; use 1 to 63 lowercase letters, digits and \"-\", like \"cpu\"", p.Name)
		} else if seen[p.Name] {
			ps.add(key+".name", "%q names two pools; give each pool its own name", p.Name)
		}
		seen[p.Name] = true
		validatePool(ps, key, p)
	}
}

// validatePool checks one pool's settings, under key ("batch.pool[0]").
func validatePool(ps *problems, key string, p Pool) {
	if !slices.Contains(providers, p.Provider) {
		ps.add(key+".provider", "%q is not a provider; use one of %s", p.Provider, strings.Join(providers, ", "))
	}
	if p.MinNodes < 1 {
		ps.add(key+".min_nodes", "must be 1 or more")
	}
	if p.Nodes < p.MinNodes || p.Nodes > p.MaxNodes {
		ps.add(key+".nodes", "%d is outside min_nodes (%d) to max_nodes (%d); give a count between them", p.Nodes, p.MinNodes, p.MaxNodes)
	}
	if p.MinWalltime < Duration(time.Minute) {
		ps.add(key+".min_walltime", "%s is too short; give at least \"1m\" (schedulers count walltime in minutes)", p.MinWalltime.D())
	}
	if p.Walltime < p.MinWalltime {
		ps.add(key+".walltime", "%s is shorter than min_walltime (%s); raise walltime or lower min_walltime", p.Walltime.D(), p.MinWalltime.D())
	}
	if p.MaxBlocks < 1 {
		ps.add(key+".max_blocks", "must be 1 or more; remove the pool to use none")
	}
	if p.MinBlocks < 0 || p.MinBlocks > p.MaxBlocks {
		ps.add(key+".min_blocks", "%d is outside 0 to max_blocks (%d)", p.MinBlocks, p.MaxBlocks)
	}
	if p.InitBlocks < 0 || p.InitBlocks > p.MaxBlocks {
		ps.add(key+".init_blocks", "%d is outside 0 to max_blocks (%d)", p.InitBlocks, p.MaxBlocks)
	}
	if p.IdleTimeout < Duration(10*time.Second) {
		ps.add(key+".idle_timeout", "%s is too short; give at least \"10s\" (a block must outlive the gaps between tasks)", p.IdleTimeout.D())
	}
	for j, line := range p.WorkerInit {
		if strings.ContainsAny(line, "\n\x00") {
			ps.add(fmt.Sprintf("%s.worker_init[%d]", key, j), "holds a newline or NUL; give one shell line per entry")
		}
	}
	if p.LogDir != "" && !filepath.IsAbs(p.LogDir) {
		ps.add(key+".log_dir", "%q is not an absolute path; give the directory blocks write their output to, like \"/scratch/fxd/blocks\", or \"\" for none", p.LogDir)
	}
	for j, o := range p.Options {
		if o == "" || strings.ContainsAny(o, "\n\x00") {
			ps.add(fmt.Sprintf("%s.options[%d]", key, j), "%q is not an option; give one option per entry, like \"--constraint=haswell\"", o)
		}
	}
	for _, f := range []struct{ key, v string }{
		{"slurm.partition", p.Slurm.Partition}, {"slurm.account", p.Slurm.Account}, {"slurm.qos", p.Slurm.QoS},
		{"pbs.queue", p.PBS.Queue}, {"pbs.account", p.PBS.Account},
	} {
		if strings.ContainsAny(f.v, " \t\n\x00,") {
			ps.add(key+"."+f.key, "%q holds a space, comma or control character; give one name as the scheduler lists it", f.v)
		}
	}
}
