package main

import (
	"context"
	"flag"
)

// cmdResult writes a task's output to stdout.
func cmdResult(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	wait := fs.Duration("wait", 0, "wait up to this long for the task to end, like 60s (0: answer at once)")
	pos, err := parseN(fs, args, 1, 1, "the task ID")
	if err != nil {
		return err
	}
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	t, err := cl.Task(ctx, pos[0], *wait)
	if err != nil {
		return err
	}
	return c.finish(ctx, g, cl, t)
}
