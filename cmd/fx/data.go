package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/cache"
	"fxd.dev/fxd/internal/units"
)

const dataUsage = "put FILE | stage SOURCE [--digest D] [--nodes N,…] | ls | get DIGEST [-o FILE] | rm DIGEST"

// cmdData moves data into and out of the site's data cache, where tasks
// name it (fx submit FUNCTION --data NAME=DIGEST).
func cmdData(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	digest := fs.String("digest", "", "with put and stage: the sha256 the bytes must have (sha256:HEX)")
	out := fs.String("o", "", "with get: write to this file instead of stdout")
	nodes := fs.String("nodes", "", "with stage: also fetch it into these linked nodes' caches now, ahead of tasks (comma-separated names, or '*' for all); SOURCE may then be a digest")
	pos, err := parseN(fs, args, 1, 2, dataUsage)
	if err != nil {
		return err
	}
	want := map[string]int{"put": 2, "stage": 2, "ls": 1, "get": 2, "rm": 2}
	if n, ok := want[pos[0]]; !ok || n != len(pos) {
		return usageError("fx data %s: want %s", pos[0], dataUsage)
	}
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	switch pos[0] {
	case "put":
		return dataPut(ctx, c, g, cl, pos[1], *digest)
	case "stage":
		source := pos[1]
		if !filepath.IsAbs(source) && !cache.IsURL(source) && !api.IsDigest(source) {
			if source, err = filepath.Abs(source); err != nil {
				return usageError("source %q: %v", pos[1], err)
			}
		}
		req := api.StageRequest{Source: source, Digest: *digest}
		if *nodes != "" {
			req.Nodes = strings.Split(*nodes, ",")
		}
		e, err := cl.StageData(ctx, req)
		return printEntry(c, g, e, err)
	case "ls":
		entries, err := cl.Data(ctx)
		if err != nil {
			return err
		}
		if g.json {
			return printJSON(c.stdout, api.DataResponse{Data: entries})
		}
		return printData(c.stdout, entries)
	case "get":
		return dataGet(ctx, c, cl, pos[1], *out)
	default: // rm
		return cl.RemoveData(ctx, pos[1])
	}
}

// dataPut uploads the file at path.
func dataPut(ctx context.Context, c *cli, g *globals, cl *api.Client, path, digest string) error {
	f, err := os.Open(path)
	if err != nil {
		return usageError("read %s: %v", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return usageError("%s: not a regular file; fx data put takes one file", path)
	}
	e, err := cl.PutData(ctx, f, fi.Size(), digest)
	return printEntry(c, g, e, err)
}

// dataGet writes an entry's bytes to out, or stdout.
func dataGet(ctx context.Context, c *cli, cl *api.Client, digest, out string) error {
	body, err := cl.DataContent(ctx, digest)
	if err != nil {
		return err
	}
	defer body.Close()
	if out == "" {
		if _, err := io.Copy(c.stdout, body); err != nil {
			return fmt.Errorf("read data %s: %w", digest, err)
		}
		return nil
	}
	f, err := os.Create(out)
	if err != nil {
		return usageError("write %s: %v", out, err)
	}
	_, err = io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out) // no partial file left to pass for the data
		return fmt.Errorf("get data %s into %s: %w", digest, out, err)
	}
	return nil
}

// printEntry prints the entry a put or stage made: its digest alone,
// the ref tasks name, so that scripts can capture it.
func printEntry(c *cli, g *globals, e api.DataEntry, err error) error {
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(c.stdout, e)
	}
	fmt.Fprintln(c.stdout, e.Digest)
	fmt.Fprintf(c.stderr, "%s staged (%s); name it in tasks: fx submit FUNCTION --data NAME=%s\n", e.Source, units.Bytes(e.Size), e.Digest)
	if len(e.StagedOn) > 0 {
		fmt.Fprintf(c.stderr, "nodes fetching it now: %s\n", strings.Join(e.StagedOn, ", "))
	}
	return nil
}

// printData writes entries as a table.
func printData(w io.Writer, entries []api.DataEntry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DIGEST\tSIZE\tSOURCE\tADDED\tLAST USED")
	for _, e := range entries {
		used := "-"
		if !e.LastUsed.IsZero() {
			used = e.LastUsed.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Digest, units.Bytes(e.Size), e.Source, e.Added.Local().Format(time.DateTime), used)
	}
	return tw.Flush()
}
