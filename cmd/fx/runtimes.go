package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/units"
)

// cmdRuntimes lists the runtimes the caller may name in a function.
func cmdRuntimes(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	if _, err := parseN(fs, args, 0, 0, "no arguments"); err != nil {
		return err
	}
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	rts, err := cl.Runtimes(ctx)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(c.stdout, api.RuntimesResponse{Runtimes: rts})
	}
	return printRuntimes(c.stdout, rts)
}

// printRuntimes writes runtimes as a table.
func printRuntimes(w io.Writer, rts []api.Runtime) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tDIGEST\tSIZE\tARCH\tSIGNED\tADDED")
	for _, r := range rts {
		if r.Kind == api.RuntimeKindHost {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\n", r.Name, r.Kind)
			continue
		}
		signed := "no"
		if len(r.Signers) > 0 {
			signed = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Kind, shortDigest(r.Digest), units.Bytes(r.Size), cmp.Or(r.Arch, "-"),
			signed, r.Added.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

// cmdRuntime adds or removes one of the caller's own images.
func cmdRuntime(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	pos, err := parseN(fs, args, 2, 3, "add NAME PATH, or rm NAME")
	if err != nil {
		return err
	}
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	switch {
	case pos[0] == "add" && len(pos) == 3:
		path, err := filepath.Abs(pos[2])
		if err != nil {
			return usageError("path %q: %v", pos[2], err)
		}
		rt, err := cl.AddRuntime(ctx, pos[1], path)
		if err != nil {
			return err
		}
		if g.json {
			return printJSON(c.stdout, rt)
		}
		fmt.Fprintf(c.stdout, "added %s (%s, %s); name it in functions as runtime %q\n", rt.Name, shortDigest(rt.Digest), units.Bytes(rt.Size), rt.Name)
		return nil
	case pos[0] == "rm" && len(pos) == 2:
		return cl.DeleteRuntime(ctx, pos[1])
	}
	return usageError("want add NAME PATH, or rm NAME")
}

// shortDigest is "sha256:" and the first 12 hex digits.
func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}
