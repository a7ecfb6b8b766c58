package main

import (
	"context"
	"flag"

	"fxd.dev/fxd/api"
)

// cmdRun runs one task synchronously and prints its raw output.
func cmdRun(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	var in inputFlags
	in.register(fs)
	timeout := fs.Duration("timeout", 0, "task timeout, like 30s (0: the function's)")
	pos, err := parseN(fs, args, 1, 1, "the function NAME (or owner/name)")
	if err != nil {
		return err
	}
	spec, raw, err := in.spec(c, "", api.Duration(*timeout))
	if err != nil {
		return err
	}
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	var t api.Task
	if raw && len(spec.Data) == 0 && spec.Site == "" { // raw bytes as the body carry no data refs nor site
		t, err = cl.RunRaw(ctx, pos[0], spec.InputBase64, *timeout)
	} else {
		t, err = cl.Run(ctx, pos[0], spec)
	}
	if err != nil {
		return err
	}
	return c.finish(ctx, g, cl, t)
}
