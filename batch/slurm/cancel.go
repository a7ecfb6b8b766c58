package slurm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"fxd.dev/fxd/batch"
)

// Cancel ends job id with scancel. A job that has ended, or that Slurm
// no longer knows, is not an error.
func (p *Provider) Cancel(ctx context.Context, id batch.JobID) error {
	if !jobIDRE.MatchString(string(id)) {
		return fmt.Errorf("cancel slurm job %q: not a Slurm job id", id)
	}
	_, err := batch.Run(ctx, "", "scancel", string(id))
	var ce *batch.CommandError
	if errors.As(err, &ce) && (strings.Contains(ce.Stderr, "Invalid job id specified") || strings.Contains(ce.Stderr, "already completing or completed")) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("cancel slurm job %s: %w", id, err)
	}
	p.log.Info().Str("job", string(id)).Msg("block cancelled")
	return nil
}
