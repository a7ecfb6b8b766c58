package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"fxd.dev/fxd/api"
)

const runtimeUsage = `usage:
  fxd runtime add NAME FILE.sif   add a site image every user may name as runtime NAME
  fxd runtime list                list every image: site images and users' own
  fxd runtime rm NAME|USER/NAME   remove an image (running workers keep theirs until idle)

The daemon reads FILE as root, checks it (a SIF with a squashfs root file system
for this node's architecture, signed by a key of containers.keyring when
containers.require_signed is set) and stores it content-addressed in
<state_dir>/images. These verbs talk to the running daemon over its unix socket,
as root. Every verb takes --config FILE (default ` + defaultConfigPath + `), or --dev
[--state-dir DIR] for the dev daemon of make run.

flags:
`

// cmdRuntime is `fxd runtime add|list|rm`: the site's image repository,
// through the daemon's admin API (root on the unix socket).
func cmdRuntime(args []string, stdout, stderr io.Writer) error {
	fl, site := newSiteFlagSet("fxd runtime", runtimeUsage, stderr)
	pos, err := parseAnywhere(fl, args)
	if err != nil {
		return helpOK(err)
	}
	if err := site.check(fl); err != nil {
		return err
	}
	want := map[string]int{"add": 3, "list": 1, "rm": 2}
	if len(pos) == 0 || want[pos[0]] == 0 {
		fl.Usage()
		return errors.New("missing or unknown verb; want add, list or rm")
	}
	if len(pos) != want[pos[0]] {
		fl.Usage()
		return fmt.Errorf("%s takes %d argument(s); see fxd runtime -h", pos[0], want[pos[0]]-1)
	}
	cl, err := site.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	switch pos[0] {
	case "add":
		file, err := filepath.Abs(pos[2])
		if err != nil {
			return err
		}
		rt, err := cl.AdminAddRuntime(ctx, pos[1], file)
		if err != nil {
			return err
		}
		signed := ""
		if len(rt.Signers) > 0 {
			signed = fmt.Sprintf(", signed by %v", rt.Signers)
		}
		_, err = fmt.Fprintf(stdout, "added %s: %s, %d bytes, %s%s\n", rt.Name, rt.Digest, rt.Size, rt.Arch, signed)
		return err
	case "list":
		rts, err := cl.AdminRuntimes(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tOWNER\tDIGEST\tSIZE\tARCH\tSIGNERS\tADDED\tSOURCE")
		for _, r := range rts {
			owner := r.Owner
			if owner == "" {
				owner = "(site)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", r.Name, owner, r.Digest, r.Size, r.Arch, len(r.Signers),
				r.Added.Local().Format(time.DateTime), r.Source)
		}
		return tw.Flush()
	default:
		return cl.AdminDeleteRuntime(ctx, pos[1])
	}
}

// adminClient is a client of the site's running daemon on its unix
// socket, where root is the admin.
func (s *siteFlags) adminClient() (*api.Client, error) {
	cfg, err := s.load()
	if err != nil {
		return nil, err
	}
	if cfg.Endpoint.Socket == "" {
		return nil, errors.New("endpoint.socket is off in the config, and these verbs need it: set it and restart the daemon")
	}
	return api.NewClient("unix://"+cfg.Endpoint.Socket, api.ClientOptions{})
}

// adminQuery runs a flags-only admin subcommand (fxd blocks, fxd data):
// it parses args, then calls query with the daemon's admin client,
// bounded by a minute.
func adminQuery(name, usage string, args []string, stderr io.Writer, query func(context.Context, *api.Client) error) error {
	fl, site := newSiteFlagSet(name, usage, stderr)
	pos, err := parseAnywhere(fl, args)
	if err != nil {
		return helpOK(err)
	}
	if err := site.check(fl); err != nil {
		return err
	}
	if len(pos) != 0 {
		fl.Usage()
		return fmt.Errorf("unexpected argument %q; %s takes only flags", pos[0], name)
	}
	cl, err := site.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return query(ctx, cl)
}
