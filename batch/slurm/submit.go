package slurm

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"fxd.dev/fxd/batch"
)

// Submit submits b with sbatch, its script on stdin, and returns the job
// id sbatch --parsable prints.
func (p *Provider) Submit(ctx context.Context, b batch.Block) (batch.JobID, error) {
	if err := b.Check(); err != nil {
		return "", fmt.Errorf("submit block: %w", err)
	}
	args := append([]string{"--parsable"}, p.placement()...)
	args = append(args, b.Options...)
	out, err := batch.Run(ctx, script(b), "sbatch", args...)
	if err != nil {
		return "", fmt.Errorf("submit block %s: %w", b.Name, err)
	}
	id, err := parseSubmit(out)
	if err != nil {
		return "", fmt.Errorf("submit block %s: %w", b.Name, err)
	}
	p.log.Info().Str("block", b.Name).Str("job", string(id)).Int("nodes", b.Nodes).Int64("minutes", b.Minutes()).Msg("block submitted")
	return id, nil
}

// script is b's batch script. Each node runs one task of one step that
// has the whole node (all its CPUs and memory, no binding), so that the
// agent can give them to workers. Output goes to b.LogDir/NAME-JOBID.log,
// each line labelled with its node's rank, or nowhere without a LogDir:
// files would pile up in the submitter's directory.
// The environment, with the block's credential, is exported in the
// script, which only the submitter and the admins can read
// (scontrol write batch_script), never on a command line.
func script(b batch.Block) string {
	var sb strings.Builder
	sb.WriteString("#!/bin/bash\n")
	output := []string{"--output=/dev/null", "--error=/dev/null"}
	label := ""
	if b.LogDir != "" {
		output, label = []string{"--output=" + filepath.Join(b.LogDir, "%x-%j.log")}, "--label "
	}
	for _, d := range append([]string{
		"--job-name=" + b.Name,
		"--nodes=" + strconv.Itoa(b.Nodes),
		"--ntasks-per-node=1",
		"--exclusive",
		"--time=" + strconv.FormatInt(b.Minutes(), 10),
	}, output...) {
		sb.WriteString("#SBATCH " + d + "\n")
	}
	sb.WriteString(b.Body())
	sb.WriteString(`exec srun ` + label + `--nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --cpus-per-task="$SLURM_CPUS_ON_NODE" --mem=0 --cpu-bind=none --kill-on-bad-exit=0 `)
	sb.WriteString(batch.QuoteArgv(b.Command) + "\n")
	return sb.String()
}

// jobIDRE is a job id as sbatch --parsable prints it: the id, and with
// federated or multi-cluster set-ups ";cluster".
var jobIDRE = regexp.MustCompile(`^([0-9]+)(;[A-Za-z0-9_.-]+)?$`)

// parseSubmit reads the job id out of sbatch --parsable's output.
func parseSubmit(out []byte) (batch.JobID, error) {
	m := jobIDRE.FindStringSubmatch(batch.LastLine(out))
	if m == nil {
		return "", fmt.Errorf("sbatch --parsable printed %q, not a job id: %w", batch.FirstLine(out), batch.ErrBadOutput)
	}
	return batch.JobID(m[1]), nil
}
