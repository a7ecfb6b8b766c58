package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/batch/local"
	"fxd.dev/fxd/daemon/agent"
	"fxd.dev/fxd/internal/units"
)

const nodeUsage = `usage: fxd node [--config FILE | --dev] --daemon URL [--ca FILE] [--name NAME] [--block NAME] [--slots N] [--queue N]

Run a node agent: link to the daemon at URL (https://host:port, its
endpoint.listen) and run the tasks it sends, as their users, under this host's
cgroups (in containers from SIF images, which it fetches from the daemon by
digest, when an OCI runtime is installed), until SIGTERM or until the daemon
drains the node. A block's nodes run
it with everything set in their environment; by hand, mint a credential first
(fxd nodes credential BLOCK) and put it in FXD_NODE_TOKEN. The credential is
read only from the environment: a command line is visible to every user.

Environment: FXD_NODE_TOKEN (required), FXD_DAEMON, FXD_DAEMON_CA, FXD_BLOCK,
FXD_BLOCK_NODE (defaults of --daemon, --ca, --block and --name);
FXD_NODE_EPHEMERAL (set by local blocks: the node's caches and images are
removed when it ends, since its name is not used again).

flags:
`

// cmdNode is `fxd node`: the node agent.
func cmdNode(args []string, stdout, stderr io.Writer) error {
	fl, site := newSiteFlagSet("fxd node", nodeUsage, stderr)
	host, _ := os.Hostname()
	daemonURL := fl.String("daemon", os.Getenv("FXD_DAEMON"), "the daemon's HTTPS `URL`")
	caFile := fl.String("ca", os.Getenv("FXD_DAEMON_CA"), "PEM `file` of the CA that signed the daemon's certificate (default: the system's)")
	name := fl.String("name", cmp.Or(os.Getenv("FXD_BLOCK_NODE"), host), "this node's `name` at the daemon")
	block := fl.String("block", cmp.Or(os.Getenv("FXD_BLOCK"), "manual"), "the block `name` the credential is for")
	slots := fl.Int("slots", runtime.NumCPU(), "tasks to run at once")
	queue := fl.Int("queue", -1, "tasks to take beyond --slots, to wait here for a worker: they hide the round trip to the daemon (default: 4 × slots)")
	if err := fl.Parse(args); err != nil {
		return helpOK(err)
	}
	if err := site.check(fl); err != nil {
		return err
	}
	token := os.Getenv("FXD_NODE_TOKEN")
	if *queue < 0 {
		*queue = 4 * *slots
	}
	switch {
	case fl.NArg() > 0:
		return fmt.Errorf("unexpected argument %q; node takes only flags", fl.Arg(0))
	case token == "":
		return errors.New("FXD_NODE_TOKEN is not set; a block sets it, or mint one by hand with: fxd nodes credential BLOCK")
	case !strings.HasPrefix(*daemonURL, "https://"):
		return fmt.Errorf("--daemon %q: give the daemon's HTTPS endpoint, like https://login1:8443", *daemonURL)
	}
	tlsCfg, err := daemonTLS(*caFile)
	if err != nil {
		return err
	}
	cfg, err := site.loadNode()
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	// Signals are caught until the clean-up below has run too: a block's
	// scheduler may signal the agent again as it leaves (drained, then
	// cancelled), and the default action would end it mid-clean-up, its
	// caches and images left behind.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	n, err := agent.Open(cfg, *name, log)
	if err != nil {
		return err
	}
	defer func() {
		n.Close()
		if os.Getenv(local.EphemeralEnv) != "" { // a local block's node: its name is not used again
			if err := n.Remove(); err != nil {
				log.Warn().Err(err).Msg("remove the node's caches and images")
			}
		}
	}()
	return agent.Run(ctx, agent.Config{
		Daemon: *daemonURL, TLS: tlsCfg, Token: token, Pools: n.Pools, Images: n.Images, ImageLimits: n.ImageLimits,
		Cache: n.Cache, MaxEntry: int64(cfg.Cache.MaxEntrySize),
		Lookup: agent.Lookup(cfg.Auth.MinUID),
		Hello: api.NodeHello{Node: *name, Block: *block, CPUs: runtime.NumCPU(), Memory: agent.Memory(), Slots: *slots, Queue: *queue, Runtimes: n.Runtimes(),
			Arch: runtime.GOARCH, Version: fxdVersion()},
	}, log)
}

// daemonTLS verifies the daemon with the CA in caFile, or the system's.
func daemonTLS(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read --ca: %w", err)
	}
	cfg.RootCAs = x509.NewCertPool()
	if !cfg.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate in it", caFile)
	}
	return cfg, nil
}

const nodesUsage = `usage:
  fxd nodes                          list the nodes linked to the daemon
  fxd nodes credential BLOCK [--ttl D]  mint a credential for the agents of BLOCK
  fxd nodes revoke BLOCK             end BLOCK's credentials and unlink its nodes

A credential admits agents that link within its ttl (default 12h), and
lets them fetch images and data until then; the daemon keeps only its
hash. Revoking one unlinks its nodes at once (their tasks run elsewhere)
and their agents exit; a pool's live block cannot be revoked, as it ends
with its job. These verbs talk to the running daemon over its unix
socket, as root. Every verb takes --config FILE (default ` + defaultConfigPath + `), or
--dev [--state-dir DIR].

flags:
`

// cmdNodes is `fxd nodes [credential BLOCK]`.
func cmdNodes(args []string, stdout, stderr io.Writer) error {
	fl, site := newSiteFlagSet("fxd nodes", nodesUsage, stderr)
	ttl := fl.Duration("ttl", 12*time.Hour, "with credential: how long it admits new links")
	pos, err := parseAnywhere(fl, args)
	if err != nil {
		return helpOK(err)
	}
	if err := site.check(fl); err != nil {
		return err
	}
	if !(len(pos) == 0 || len(pos) == 2 && (pos[0] == "credential" || pos[0] == "revoke")) {
		fl.Usage()
		return errors.New("want no verb, credential BLOCK or revoke BLOCK")
	}
	cl, err := site.adminClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if len(pos) == 2 && pos[0] == "revoke" {
		if err := cl.AdminRevokeNodeCredentials(ctx, pos[1]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stderr, "credentials of block %s revoked; its nodes are unlinked\n", pos[1])
		return err
	}
	if len(pos) == 2 {
		c, err := cl.AdminNodeCredential(ctx, pos[1], *ttl)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", c.Token)
		fmt.Fprintf(stderr, "credential for block %s, admitting links until %s; give it to the agent as FXD_NODE_TOKEN\n", c.Block, c.Expires.Local().Format(time.DateTime))
		return err
	}
	nodes, err := cl.AdminNodes(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tBLOCK\tCPUS\tMEMORY\tSLOTS\tQUEUE\tRUNTIMES\tARCH\tVERSION")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%s\t%s\t%s\n", n.Node, n.Block, n.CPUs, units.Bytes(n.Memory), n.Slots, n.Queue,
			strings.Join(n.Runtimes, ","), cmp.Or(n.Arch, "-"), cmp.Or(n.Version, "-"))
	}
	return tw.Flush()
}
