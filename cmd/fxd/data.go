package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/units"
)

const dataUsage = `usage: fxd data [--config FILE | --dev [--state-dir DIR]]

Shows the node's data cache: its entries and bytes on disk (the same bytes
staged by several accounts count once), and per account the entries it may
read and their bytes, each counted in full (what tenants.*.cache_bytes
bounds). It talks to the running daemon over its unix socket, as root.

flags:
`

// cmdData is `fxd data`.
func cmdData(args []string, stdout, stderr io.Writer) error {
	return adminQuery("fxd data", dataUsage, args, stderr, func(ctx context.Context, cl *api.Client) error {
		u, err := cl.AdminDataUsage(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d entries, %s on disk\n", u.Entries, units.Bytes(u.Total))
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tENTRIES\tBYTES")
		for _, a := range u.Usage {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", a.Account, a.Entries, units.Bytes(a.Bytes))
		}
		return tw.Flush()
	})
}
