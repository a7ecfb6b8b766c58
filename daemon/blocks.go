package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"fxd.dev/fxd/batch"
	"fxd.dev/fxd/batch/local"
	"fxd.dev/fxd/batch/pbs"
	"fxd.dev/fxd/batch/slurm"
	"fxd.dev/fxd/conf"
)

// batchCloser is a provider whose blocks are the daemon's own processes:
// they end with it.
type batchCloser interface {
	Close(ctx context.Context) error
}

// newScalers makes the strategy of each [[batch.pool]].
func (d *Daemon) newScalers() ([]*batch.Scaler, error) {
	b := d.cfg.Batch
	if len(b.Pool) == 0 {
		return nil, nil
	}
	command, env, err := d.nodeCommand()
	if err != nil {
		return nil, err
	}
	var scalers []*batch.Scaler
	scaleOut := &sync.Mutex{} // one pool at a time decides on a new block
	for _, p := range b.Pool {
		prov, err := newProvider(p, d.log)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", p.Name, err)
		}
		if c, ok := prov.(batchCloser); ok {
			d.closers = append(d.closers, c)
		}
		s, err := batch.NewScaler(batch.ScalerConfig{
			Pool: p, Interval: b.PollInterval.D(), Lease: b.NodeLease.D(), Command: command, Env: env,
			StateFile: filepath.Join(d.cfg.Site.StateDir, "pool-"+p.Name+".json"), ScaleOut: scaleOut, Site: d.cfg.Site.Name,
		}, prov, poolNodes{s: d.nodes, others: d.comingBesides(p.Name)}, d.log)
		if err != nil {
			return nil, err
		}
		scalers = append(scalers, s)
	}
	d.metrics.reg.MustRegister(&batchCollector{scalers: scalers, nodes: d.nodes})
	return scalers, nil
}

// newProvider returns the scheduler p's blocks come from.
func newProvider(p conf.Pool, log zerolog.Logger) (batch.Provider, error) {
	switch p.Provider {
	case "local":
		return local.New(log)
	case "slurm":
		return slurm.New(p.Slurm, log)
	case "pbs":
		return pbs.New(p.PBS, log)
	}
	return nil, fmt.Errorf("provider %q is not built into this fxd", p.Provider)
}

// nodeCommand is what a block's nodes run, and the environment that
// tells the agent where the daemon is: [batch] node_command, or this
// binary's `fxd node` with this config file.
func (d *Daemon) nodeCommand() (command []string, env map[string]string, err error) {
	b := d.cfg.Batch
	url := b.DaemonURL
	if url == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, nil, fmt.Errorf("batch.daemon_url: %w; set it to the endpoint's URL", err)
		}
		_, port, err := net.SplitHostPort(d.cfg.Endpoint.Listen)
		if err != nil {
			return nil, nil, fmt.Errorf("endpoint.listen %q: %w", d.cfg.Endpoint.Listen, err)
		}
		url = "https://" + net.JoinHostPort(host, port)
	}
	env = map[string]string{"FXD_DAEMON": url}
	if b.DaemonCA != "" {
		env["FXD_DAEMON_CA"] = b.DaemonCA
	}
	if len(b.NodeCommand) > 0 {
		return b.NodeCommand, env, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find this fxd for the blocks' nodes: %w; set batch.node_command", err)
	}
	if d.cfg.File() == "" {
		return nil, nil, fmt.Errorf("blocks' nodes need the config file, and this daemon has none; run it with --config FILE or set batch.node_command")
	}
	return []string{exe, "node", "--config", d.cfg.File()}, env, nil
}

// closeProviders ends the blocks that are the daemon's own processes.
func (d *Daemon) closeProviders() {
	for _, c := range d.closers {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := c.Close(ctx); err != nil {
			d.log.Warn().Err(err).Msg("stop the local blocks")
		}
		cancel()
	}
}

// comingBesides returns what the blocks on their way of every pool but
// pool will bring (batch.Scaler.Coming), so that pools do not all answer
// the same demand.
func (d *Daemon) comingBesides(pool string) func() int {
	return func() int {
		n := 0
		for _, s := range d.scalers {
			if s.Pool() != pool {
				n += s.Coming()
			}
		}
		return n
	}
}

// poolNodes is the nodeSet as one pool's strategy sees it.
type poolNodes struct {
	s      *nodeSet
	others func() int // slots other pools' blocks on their way will bring; nil: none
}

// Waiting counts the tasks waiting here for room on a node and those
// waiting on a node for a worker, less what other pools' blocks on their
// way will take.
func (p poolNodes) Waiting() int {
	n := int(p.s.waiting.Load()) + p.s.queued()
	if p.others != nil {
		n -= p.others()
	}
	return max(n, 0)
}

func (p poolNodes) Use(block string) batch.Use {
	u := p.s.use(block)
	return batch.Use{Linked: u.linked, Slots: u.slots, Busy: u.busy, Ran: u.ran, IdleSince: u.idleSince}
}

func (p poolNodes) Mint(block string, ttl time.Duration) (string, error) { return p.s.mint(block, ttl) }
func (p poolNodes) Started(block string, ends time.Time)                 { p.s.setBlockEnd(block, ends) }
func (p poolNodes) Drain(block string)                                   { p.s.drainBlock(block) }
func (p poolNodes) Ended(block string)                                   { p.s.endBlock(block) }

// batchCollector exports the pools' blocks, the linked nodes and the
// demand for them.
type batchCollector struct {
	scalers []*batch.Scaler
	nodes   *nodeSet
}

var (
	blocksDesc  = prometheus.NewDesc("fxd_blocks", "Blocks of each pool, by state (pending, running, draining, cancelling; done: ended in the last minutes).", []string{"pool", "state"}, nil)
	nodesDesc   = prometheus.NewDesc("fxd_nodes_linked", "Node agents linked to the daemon.", nil, nil)
	slotsDesc   = prometheus.NewDesc("fxd_node_slots", "Task slots of the linked nodes, by use.", []string{"use"}, nil)
	waitingDesc = prometheus.NewDesc("fxd_tasks_waiting_for_node", "Tasks waiting for a slot on a node: the demand that adds blocks.", nil, nil)
)

func (c *batchCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- blocksDesc
	ch <- nodesDesc
	ch <- slotsDesc
	ch <- waitingDesc
}

func (c *batchCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.scalers {
		counts := map[string]int{"pending": 0, "running": 0, "draining": 0, "cancelling": 0, "done": 0}
		for _, b := range s.Blocks() {
			counts[b.State]++
		}
		for state, n := range counts {
			ch <- prometheus.MustNewConstMetric(blocksDesc, prometheus.GaugeValue, float64(n), s.Pool(), state)
		}
	}
	linked, slots, busy := c.nodes.totals()
	ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(linked))
	ch <- prometheus.MustNewConstMetric(slotsDesc, prometheus.GaugeValue, float64(busy), "busy")
	ch <- prometheus.MustNewConstMetric(slotsDesc, prometheus.GaugeValue, float64(slots-busy), "free")
	ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(c.nodes.waiting.Load()))
}
