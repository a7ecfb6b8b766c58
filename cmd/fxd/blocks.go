package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"fxd.dev/fxd/api"
)

const blocksUsage = `usage: fxd blocks [--config FILE | --dev [--state-dir DIR]]

Lists the blocks (pilot jobs) of every [[batch.pool]]: the scheduler's job id,
state (pending, running, draining, cancelling, done), nodes asked for (with *
when shaped to a free backfill window), the hosts and how many of their agents
are linked, age, tasks run, and why a block pends or how it ended. Blocks that
ended in the last minutes are listed too. It talks to the running daemon over
its unix socket, as root.

flags:
`

// cmdBlocks is `fxd blocks`.
func cmdBlocks(args []string, stdout, stderr io.Writer) error {
	return adminQuery("fxd blocks", blocksUsage, args, stderr, func(ctx context.Context, cl *api.Client) error {
		blocks, err := cl.AdminBlocks(ctx)
		if err != nil {
			return err
		}
		return writeBlocks(stdout, blocks, time.Now())
	})
}

// writeBlocks prints blocks as a table, ages reckoned at now.
func writeBlocks(w io.Writer, blocks []api.Block, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tBLOCK\tJOB\tSTATE\tNODES\tWALLTIME\tHOSTS\tLINKED\tAGE\tTASKS\tREASON")
	for _, b := range blocks {
		nodes := fmt.Sprint(b.Nodes)
		if b.Shaped {
			nodes += "*"
		}
		hosts := strings.Join(b.Hosts, ",")
		if hosts == "" {
			hosts = "-"
		}
		end := now
		if !b.Ended.IsZero() {
			end = b.Ended
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\n", b.Pool, b.Name, b.Job, b.State, nodes,
			time.Duration(b.Walltime), hosts, b.Linked, end.Sub(b.Submitted).Truncate(time.Second), b.Ran, b.Reason)
	}
	return tw.Flush()
}
