package pbs

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/batch"
)

// jobIDRE is a PBS job id as qsub prints it: the sequence number and the
// server's name ("1234.pbs01"); the server part may be left out when the
// id is given back to PBS.
var jobIDRE = regexp.MustCompile(`^([0-9]+)(\.[A-Za-z0-9][A-Za-z0-9_.-]*)?$`)

// Submit submits b with qsub, its job script on stdin, and returns the
// job id qsub prints. b.Options follow on qsub's command line, where they
// take precedence over the script's directives; each is split at white
// space, so "-l place=scatter" is two arguments, as qsub wants them.
func (p *Provider) Submit(ctx context.Context, b batch.Block) (batch.JobID, error) {
	if err := check(b); err != nil {
		return "", fmt.Errorf("submit pbs block: %w", err)
	}
	// -f: qsub talks to the server itself instead of leaving a background
	// qsub daemon that outlives the call.
	args := append([]string{"-f"}, optionFields(b.Options)...)
	out, err := batch.Run(ctx, p.jobScript(b), "qsub", args...)
	if err != nil {
		return "", fmt.Errorf("submit pbs block %s: %w", b.Name, err)
	}
	id, err := parseSubmit(out)
	if err != nil {
		return "", fmt.Errorf("submit pbs block %s: %w", b.Name, err)
	}
	p.log.Info().Str("block", b.Name).Str("job", string(id)).Int("nodes", b.Nodes).Int64("minutes", b.Minutes()).Msg("block submitted")
	return id, nil
}

// optionFields are the arguments of a pool's options, each split at
// white space.
func optionFields(options []string) []string {
	var f []string
	for _, o := range options {
		f = append(f, strings.Fields(o)...)
	}
	return f
}

// check is b.Check and what PBS adds: no option that ends qsub's options
// ("--" makes qsub run what follows instead of the script on stdin).
func check(b batch.Block) error {
	if err := b.Check(); err != nil {
		return err
	}
	for _, f := range optionFields(b.Options) {
		if f == "--" {
			return fmt.Errorf("block %s: %w: options %q hold \"--\", after which qsub ignores the job script", b.Name, api.ErrInvalid, b.Options)
		}
	}
	return nil
}

// parseSubmit reads the job id out of qsub's output: its last line (site
// wrappers may print notices first).
func parseSubmit(out []byte) (batch.JobID, error) {
	s := batch.LastLine(out)
	if !jobIDRE.MatchString(s) {
		return "", fmt.Errorf("qsub printed %q, not a job id: %w", batch.FirstLine(out), batch.ErrBadOutput)
	}
	return batch.JobID(s), nil
}
