package slurm

import (
	"github.com/rs/zerolog"

	"fxd.dev/fxd/batch"
	"fxd.dev/fxd/conf"
)

// Provider submits one pool's blocks to Slurm. It holds no state of its
// own: the scheduler is the record, so a restarted daemon polls the jobs
// it submitted before. It is safe for concurrent use.
type Provider struct {
	c   conf.SlurmPool
	log zerolog.Logger
}

// New returns the provider for blocks that go where c says. The Slurm
// commands are found on PATH when they are run.
func New(c conf.SlurmPool, log zerolog.Logger) (*Provider, error) {
	return &Provider{c: c, log: log.With().Str("component", "batch.slurm").Logger()}, nil
}

// placement is the sbatch options that say where a job goes.
func (p *Provider) placement() []string {
	var args []string
	if p.c.Partition != "" {
		args = append(args, "--partition="+p.c.Partition)
	}
	if p.c.Account != "" {
		args = append(args, "--account="+p.c.Account)
	}
	if p.c.QoS != "" {
		args = append(args, "--qos="+p.c.QoS)
	}
	return args
}

var (
	_ batch.Provider     = (*Provider)(nil)
	_ batch.WindowFinder = (*Provider)(nil)
	_ batch.Finder       = (*Provider)(nil)
)
