package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"fxd.dev/fxd/conf"
)

// cmdSite prints the site and who the caller is there.
func cmdSite(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	if _, err := parseN(fs, args, 0, 0, "no arguments"); err != nil {
		return err
	}
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	s, err := cl.Site(ctx)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(c.stdout, s)
	}
	size := func(n int64) string { b, _ := conf.Size(n).MarshalText(); return string(b) }
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	rows := [][2]string{
		{"endpoint", cl.Endpoint()}, {"site", s.Site}, {"version", s.Version},
		{"identity", s.Identity}, {"account", s.Account}, {"runtimes", strings.Join(s.Runtimes, ", ")},
		{"max input", size(s.Limits.MaxInputBytes)}, {"max result", size(s.Limits.MaxResultBytes)},
		{"max batch", fmt.Sprint(s.Limits.MaxBatch)}, {"retention", s.Limits.Retention.D().String()},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}
