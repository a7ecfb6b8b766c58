package main

import (
	"context"
	"flag"
	"fmt"
	"slices"

	"fxd.dev/fxd/api"
)

// cmdSubmit queues tasks durably and prints their ids, one per line.
func cmdSubmit(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	var in inputFlags
	in.register(fs)
	count := fs.Int("count", 1, "submit `N` tasks with the same input, in one batch")
	timeout := fs.Duration("timeout", 0, "task timeout, like 30s (0: the function's)")
	pos, err := parseN(fs, args, 1, 1, "the function NAME (or owner/name)")
	if err != nil {
		return err
	}
	if *count < 1 {
		return usageError("--count %d: want 1 or more", *count)
	}
	spec, _, err := in.spec(c, pos[0], api.Duration(*timeout))
	if err != nil {
		return err
	}
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	ids, err := cl.Submit(ctx, slices.Repeat([]api.TaskSpec{spec}, *count))
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(c.stdout, api.SubmitResponse{IDs: ids})
	}
	for _, id := range ids {
		fmt.Fprintln(c.stdout, id)
	}
	return nil
}
