package testenv

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// inService are the sinfo node states (%T, without their flag suffixes)
// of nodes that run jobs, now or once their current ones end: a node that
// is completing the last test's job is in service.
var inService = map[string]bool{"idle": true, "mixed": true, "allocated": true, "completing": true}

// RequireSlurm needs a Slurm cluster this machine can submit to, with a
// partition whose nodes are up (scripts/start-local-slurm.sh makes one),
// and returns the default partition's name.
func RequireSlurm(t testing.TB) string {
	t.Helper()
	for _, c := range []string{"sbatch", "squeue", "scancel", "sinfo", "scontrol"} {
		RequireCommand(t, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// %P marks the default partition with "*"; %a is up or down.
	out, err := exec.CommandContext(ctx, "sinfo", "-h", "-o", "%P %a %T").Output()
	if err != nil {
		Unavailable(t, "needs a running Slurm (sinfo: "+err.Error()+"); start one with scripts/start-local-slurm.sh")
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && strings.HasSuffix(f[0], "*") && f[1] == "up" && inService[strings.TrimRight(f[2], "*~#!%$@^-")] {
			return strings.TrimSuffix(f[0], "*")
		}
	}
	Unavailable(t, "needs a Slurm default partition that is up with nodes in service; sinfo says: "+strings.TrimSpace(string(out)))
	return ""
}
