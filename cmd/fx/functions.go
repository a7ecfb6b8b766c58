package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"fxd.dev/fxd/api"
)

// cmdFunctions lists the caller's functions and those shared with it.
func cmdFunctions(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	if _, err := parseN(fs, args, 0, 0, "no arguments"); err != nil {
		return err
	}
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	fns, err := cl.Functions(ctx)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(c.stdout, api.FunctionsResponse{Functions: fns})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOWNER\tKIND\tRUNTIME\tVERSION\tSHARED WITH")
	for _, f := range fns {
		with := f.SharedWith
		if f.Federated {
			with = append([]string{"federation"}, with...)
		}
		shared := cmp.Or(strings.Join(with, ","), "-")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", f.Name, f.Owner, cmp.Or(f.Kind, api.KindCommand),
			cmp.Or(f.Runtime, api.RuntimeHost), f.Version, shared)
	}
	return tw.Flush()
}
