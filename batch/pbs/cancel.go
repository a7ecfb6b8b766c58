package pbs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/batch"
)

// Cancel ends job id with qdel, which kills a running job's processes
// (SIGTERM, then SIGKILL) and removes a queued one. A job that has
// finished ("Job has finished", exit 35) or that PBS does not know
// ("Unknown Job Id", exit 153) is not an error; the messages decide, as
// exit statuses are PBS error numbers modulo 256. A job that is exiting
// refuses qdel ("Request invalid for state of job"); Cancel then asks
// qstat, and a job that has ended or is gone is not an error either.
func (p *Provider) Cancel(ctx context.Context, id batch.JobID) error {
	if !jobIDRE.MatchString(string(id)) {
		return fmt.Errorf("cancel pbs job %q: %w: not a PBS job id, like 1234.server", id, api.ErrInvalid)
	}
	_, err := batch.Run(ctx, "", "qdel", string(id))
	var ce *batch.CommandError
	if errors.As(err, &ce) && ce.ExitCode() > 0 {
		switch {
		case endedRE.MatchString(ce.Stderr):
			return nil
		case strings.Contains(ce.Stderr, "Request invalid for state of job"):
			if st, perr := p.Poll(ctx, []batch.JobID{id}); perr == nil && (st[id].State == batch.StateDone || st[id].State == batch.StateGone) {
				return nil
			}
		}
	}
	if err != nil {
		return fmt.Errorf("cancel pbs job %s: %w", id, err)
	}
	p.log.Info().Str("job", string(id)).Msg("block cancelled")
	return nil
}

// endedRE is what qdel says of a job that is already over: "qdel:
// Unknown Job Id 12.pbs01", "qdel: Job has finished 12.pbs01" (OpenPBS),
// "qdel: Job 12.pbs01 has finished" (as PBS Professional's guide has it).
var endedRE = regexp.MustCompile(`Unknown Job Id|Job (\S+ )?has finished`)
