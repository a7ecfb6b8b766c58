package pbs

import (
	"fmt"
	"strconv"
	"strings"

	"fxd.dev/fxd/batch"
)

// directives are the #PBS lines of b's job script.
//
// select=N asks for N chunks of the server's default_chunk, and
// place=scatter:exclhost puts them on N distinct hosts, each the job's
// alone: whole nodes, the form PBS sites document for node-exclusive jobs
// (excl alone would leave the host's other vnodes to other jobs).
// Output and error are joined and go to b.LogDir, or to /dev/null without
// one (see the package doc).
// The shell is bash whatever the daemon user's login shell; no mail is
// sent (the default mails the daemon's account when PBS aborts a job);
// and the job is not rerun after a node failure, since the daemon
// replaces lost blocks itself and a rerun block would start again under
// the old one's name.
func (p *Provider) directives(b batch.Block) []string {
	m := b.Minutes()
	d := []string{
		"-N " + b.Name,
		"-l select=" + strconv.Itoa(b.Nodes),
		"-l place=scatter:exclhost",
		fmt.Sprintf("-l walltime=%02d:%02d:00", m/60, m%60),
	}
	if p.c.Queue != "" {
		d = append(d, "-q "+p.c.Queue)
	}
	if p.c.Account != "" {
		d = append(d, "-A "+p.c.Account)
	}
	output := "/dev/null"
	if b.LogDir != "" {
		output = strings.TrimSuffix(b.LogDir, "/") + "/" // a directory: the server names the file
	}
	return append(d, "-S /bin/bash", "-j oe", "-o "+output, "-m n", "-r n")
}

// jobScript is b's job script: its directives, then the shell that
// writes the node script where the job's hosts read it and starts it on
// each host with pbs_tmrsh (see the package doc).
func (p *Provider) jobScript(b batch.Block) string {
	var sb strings.Builder
	sb.WriteString("#!/bin/bash\n")
	for _, d := range p.directives(b) {
		sb.WriteString("#PBS " + d + "\n")
	}
	sb.WriteString("# fxd block " + b.Name + ": runs node.sh once on each host of the job.\n")
	sb.WriteString("node_script=" + batch.Quote(nodeScript(b)) + "\n")
	sb.WriteString(jobShell)
	return sb.String()
}

// nodeScript is what each host of b's job sources: it marks that it has
// read the file (bash reads a sourced file whole before running it), then
// b's environment, init lines and command.
func nodeScript(b batch.Block) string {
	return `: > "${0%/*}/read.$1"` + "\n" + b.Body() + "exec " + batch.QuoteArgv(b.Command) + "\n"
}

// jobShell runs on the job's first host, with $node_script set. It
// writes node.sh (0600 in a 0700 directory under the daemon user's
// home), starts it on each distinct host of $PBS_NODEFILE with
// pbs_tmrsh, removes it once every host has read it (or after ten
// minutes; a watcher in the background looks each second), and exits
// with the last failing host's status when all have ended. The directory
// goes, and the watcher with it, when the job ends, cancelled or not.
const jobShell = `umask 077
dir="$HOME/.fxd/pbs/$PBS_JOBID"
mkdir -p "$dir" && chmod 700 "$dir" || exit 1
trap 'kill "${watcher:-}" 2> /dev/null; rm -rf "$dir"' EXIT
trap 'exit 143' TERM INT HUP
printf '%s' "$node_script" > "$dir/node.sh" || exit 1
unset node_script
command -v pbs_tmrsh > /dev/null || PATH="$PATH:/opt/pbs/bin"
declare -A seen
hosts=()
while read -r host; do
	[[ -z $host || -n ${seen[$host]:-} ]] && continue
	seen[$host]=1
	hosts+=("$host")
done < "$PBS_NODEFILE"
((${#hosts[@]})) || { echo "fxd: no hosts in PBS_NODEFILE ($PBS_NODEFILE)" >&2; exit 1; }
pids=()
for i in "${!hosts[@]}"; do
	pbs_tmrsh "${hosts[$i]}" /bin/bash -c '. "$0"' "$dir/node.sh" "$i" < /dev/null &
	pids+=($!)
done
(
	for ((t = 0; t < 600; t++)); do
		n=0
		for i in "${!hosts[@]}"; do [[ -e $dir/read.$i ]] && ((n++)); done
		((n == ${#hosts[@]})) && break
		[[ -d $dir ]] || exit 0
		sleep 1
	done
	rm -f "$dir/node.sh"
) < /dev/null > /dev/null 2>&1 &
watcher=$!
status=0
for pid in "${pids[@]}"; do
	wait "$pid" || status=$?
done
exit "$status"
`
