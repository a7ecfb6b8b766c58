package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	"fxd.dev/fxd/api"
)

// cmdCancel cancels tasks; it goes on past errors and exits 3 if any.
func cmdCancel(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	ids, err := parseN(fs, args, 1, -1, "one or more task IDs")
	if err != nil {
		return err
	}
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	var done []api.Task
	failed := 0
	for _, id := range ids {
		t, err := cl.Cancel(ctx, id)
		if err != nil {
			fmt.Fprintf(c.stderr, "fx cancel: %s: %v\n", id, err)
			failed++
			continue
		}
		done = append(done, t)
	}
	if g.json {
		err = printJSON(c.stdout, api.TasksResponse{Tasks: done})
	} else if len(done) > 0 {
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE")
		for _, t := range done {
			fmt.Fprintf(tw, "%s\t%s\n", t.ID, t.State)
		}
		err = tw.Flush()
	}
	if err == nil && failed > 0 {
		err = &exitError{code: exitAPI}
	}
	return err
}
