package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"fxd.dev/fxd/api"
)

// cmdSites lists the site's federated peers (GET /v1/sites).
func cmdSites(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error {
	offers := fs.Bool("offers", false, "also list what each peer offers: its functions, capacity and cached datasets")
	if _, err := parseN(fs, args, 0, 0, "no arguments"); err != nil {
		return err
	}
	cl, err := c.client(g)
	if err != nil {
		return err
	}
	s, err := cl.Sites(ctx)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(c.stdout, s)
	}
	if len(s.Peers) == 0 {
		_, err := fmt.Fprintf(c.stdout, "site %s has no peers ([[federation.peer]] lists none)\n", s.Site)
		return err
	}
	if err := printSites(c.stdout, s.Peers, time.Now()); err != nil || !*offers {
		return err
	}
	return printOffers(c.stdout, s.Peers)
}

// printSites writes one row per peer; under a peer that is down, its
// last error.
func printSites(w io.Writer, peers []api.PeerStatus, now time.Time) error {
	var tb table
	tb.row("PEER\tHEALTH\tLATENCY\tLAST SEEN\tFORWARDED\tFUNCTIONS")
	for _, p := range peers {
		health, functions := "ok", "-"
		var notes []string
		if !p.Healthy {
			health = "down"
			if p.Error != "" {
				notes = append(notes, "error: "+printable(p.Error))
			}
		}
		if p.Offers != nil {
			functions = strconv.Itoa(len(p.Offers.Functions))
		}
		tb.row(fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%s", p.Name, health, latencyCell(p.Latency.D()), ago(p.LastSeen, now),
			p.Forwarded, functions), notes...)
	}
	return tb.write(w)
}

// printable is s, from a peer, with its control characters (tabs, line
// breaks, terminal escapes) made spaces, so it stays in its cell.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// latencyCell is a round trip in milliseconds rounded to 0.1, like
// "1.2ms"; "-" when not measured.
func latencyCell(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < 50*time.Microsecond:
		return "<0.1ms"
	}
	return fmt.Sprintf("%.1fms", float64(d.Round(100*time.Microsecond))/float64(time.Millisecond))
}

// ago is the age of t at now in its largest whole unit, like "3s ago" or
// "5m ago"; "-" for the zero time.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", d/time.Second)
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", d/time.Minute)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", d/time.Hour)
	}
	return fmt.Sprintf("%dd ago", d/(24*time.Hour))
}

// printOffers writes, for each peer, what it offered last: its capacity,
// the number of datasets in its cache and its functions.
func printOffers(w io.Writer, peers []api.PeerStatus) error {
	for _, p := range peers {
		fmt.Fprintf(w, "\n%s offers:\n", p.Name)
		o := p.Offers
		if o == nil {
			fmt.Fprintln(w, "  nothing known: it has not answered yet, or its [[federation.peer]] entry for this site does not allow discover")
			continue
		}
		fmt.Fprintf(w, "  capacity: %d slots, %d running, %d queued\n", o.Capacity.Slots, o.Capacity.Running, o.Capacity.Queued)
		fmt.Fprintf(w, "  cached datasets: %d\n", len(o.Data))
		if len(o.Functions) == 0 {
			fmt.Fprintln(w, "  functions: none")
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  FUNCTION\tRUNTIME\tKIND\tDESCRIPTION")
		for _, f := range o.Functions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", printable(f.Ref), printable(cmp.Or(f.Runtime, api.RuntimeHost)),
				printable(string(cmp.Or(f.Kind, api.KindCommand))), printable(cmp.Or(f.Description, "-")))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
