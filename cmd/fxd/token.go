package main

import (
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"fxd.dev/fxd/daemon"
)

const tokenUsage = `usage:
  fxd token issue --identity ID [--config FILE]   print a new bearer token for ID (shown once)
  fxd token list [--config FILE]                  list issued tokens (hash prefix, identity, date)
  fxd token revoke HASH-PREFIX|IDENTITY [--config FILE]
The daemon picks up changes within a second, or at once on SIGHUP.
`

func cmdToken(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return fmt.Errorf("missing subcommand")
	}
	fs := flag.NewFlagSet("fxd token "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tokenUsage) }
	path := fs.String("config", defaultConfigPath, "site config `file`")
	identity := fs.String("identity", "", "identity the token authenticates, e.g. alice@example.org")
	sub := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := loadServeConfig(*path, false, "")
	if err != nil {
		return err
	}
	file := cfg.TokenFile()
	switch sub {
	case "issue":
		if *identity == "" {
			return fmt.Errorf("--identity is required, e.g. --identity alice@example.org")
		}
		tok, err := daemon.IssueToken(file, *identity)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok)
		return nil
	case "list":
		entries, err := daemon.ReadTokens(file)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HASH\tIDENTITY\tISSUED")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Hash[:12], e.Identity, e.Issued.Format(time.DateOnly))
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return fmt.Errorf("give one hash prefix (fxd token list) or identity to revoke")
		}
		n, err := daemon.RevokeTokens(file, fs.Arg(0))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("no token matches %q; fxd token list shows them", fs.Arg(0))
		}
		fmt.Fprintf(stdout, "revoked %d token(s)\n", n)
		return nil
	}
	fmt.Fprint(stderr, tokenUsage)
	return fmt.Errorf("unknown subcommand %q", sub)
}
