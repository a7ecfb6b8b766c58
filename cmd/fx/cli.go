package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Exit codes scripts can rely on; usageText documents them.
const (
	exitOK      = 0 // done; for run and result: the task succeeded
	exitTask    = 1 // a task failed, timed out or was cancelled
	exitUsage   = 2 // bad flags or arguments, bad config file, unreadable input file
	exitAPI     = 3 // the endpoint refused the request or could not be reached
	exitPending = 4 // the wait ended before the task did
)

// cli is one invocation's world: its streams and environment, so tests run
// fx in-process.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	stderrTTY      bool // progress lines are redrawn only on a terminal
}

// command is one subcommand. run gets a flag set that already holds the
// global flags and the arguments after the subcommand's name.
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, c *cli, g *globals, fs *flag.FlagSet, args []string) error
}

func commands() []command {
	return []command{
		{"register", "NAME [flags] -- ARGV...", "register (or update) a function that runs ARGV", cmdRegister},
		{"run", "NAME [--input FILE|-] [--json-input JSON] [--timeout 30s] [--site NAME]", "run a task and wait: its output goes to stdout", cmdRun},
		{"submit", "NAME [--input FILE|-] [--json-input JSON] [--count N] [--site NAME]", "queue tasks durably; prints their ids", cmdSubmit},
		{"status", "ID... [--wait 30s]", "show tasks' states and timings", cmdStatus},
		{"result", "ID [--wait 60s]", "write a task's output to stdout", cmdResult},
		{"cancel", "ID...", "cancel tasks", cmdCancel},
		{"functions", "", "list your functions and those shared with you", cmdFunctions},
		{"runtimes", "", "list the runtimes you may use: host and SIF images", cmdRuntimes},
		{"runtime", "add NAME PATH | rm NAME", "add a SIF image of yours from a site path, or remove one", cmdRuntime},
		{"data", dataUsage, "move data into the site's cache, where tasks name it; list, fetch or remove it", cmdData},
		{"bench", "NAME [-n 10000] [-c 8] [-b 1] [--mode run|submit] [--input STRING]", "generate load and report throughput and latency", cmdBench},
		{"site", "", "show the site and who you are there (also: whoami)", cmdSite},
		{"sites", "[--offers]", "list the federation's peer sites: health, latency, forwarded tasks, offers", cmdSites},
	}
}

const settingsText = `
Settings, each taken from the first of: its flag, its environment variable,
~/.config/fx/config.toml ($XDG_CONFIG_HOME/fx/config.toml), the default:
  --endpoint  FX_ENDPOINT  endpoint  unix:///run/fxd/fxd.sock, or https://host:port
  --token     FX_TOKEN     token     bearer token from your site admin (fxd token issue)
  --ca        FX_CA        ca        PEM CA bundle that verifies an https endpoint
  --cert      FX_CERT      cert      PEM client certificate for mutual TLS
  --key       FX_KEY       key       its PEM key
  --json                             print the API's JSON instead of tables
Global flags go before or after the subcommand: fx --json site, fx site --json.

Exit codes:
  0  ok; for run and result: the task succeeded
  1  the task failed, timed out or was cancelled (run, result, status --wait, bench)
  2  usage error: bad flag, argument, config file or input file
  3  API or connection error: not found, denied, fxd not running...
  4  --wait ended before the task did (result, status)
`

func usageText() string {
	var b strings.Builder
	b.WriteString("usage: fx COMMAND [flags] [args]\n\nCommands:\n")
	for _, cmd := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", cmd.name, cmd.summary)
	}
	b.WriteString("Run fx COMMAND -h for a command's flags.\n")
	b.WriteString(settingsText)
	return b.String()
}

// exitError ends fx with code; err, when not nil, is printed first.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError is a mistake in the command line (exit 2).
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// main runs one command line and returns the exit code.
func (c *cli) main(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usageText())
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, usageText())
		return exitOK
	}
	var g globals
	if strings.HasPrefix(args[0], "-") {
		fs := flag.NewFlagSet("fx", flag.ContinueOnError)
		fs.SetOutput(c.stderr)
		fs.Usage = func() { fmt.Fprint(c.stderr, usageText()) }
		g.register(fs)
		if err := fs.Parse(args); err != nil {
			return c.exit("fx", flagError(err))
		}
		if args = fs.Args(); len(args) == 0 {
			fmt.Fprint(c.stderr, usageText())
			return exitUsage
		}
	}
	name := args[0]
	if name == "whoami" {
		name = "site"
	}
	for _, cmd := range commands() {
		if cmd.name == name {
			fs := c.flagSet(cmd, &g)
			return c.exit("fx "+cmd.name, cmd.run(ctx, c, &g, fs, args[1:]))
		}
	}
	fmt.Fprintf(c.stderr, "fx: unknown command %q; run fx --help for the list\n", args[0])
	return exitUsage
}

func (c *cli) flagSet(cmd command, g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet("fx "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: fx %s %s\n%s.\n\nFlags (global ones: fx --help):\n", cmd.name, cmd.args, cmd.summary)
		tw := tabwriter.NewWriter(c.stderr, 0, 4, 2, ' ', 0)
		fs.VisitAll(func(f *flag.Flag) {
			if isGlobal(f.Name) {
				return
			}
			arg, usage := flag.UnquoteUsage(f)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(tw, "  -%s %s\t%s\n", f.Name, arg, usage)
		})
		tw.Flush()
	}
	g.register(fs)
	return fs
}

// exit prints err for people and returns its exit code.
func (c *cli) exit(prefix string, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(c.stderr, "%s: %v\n", prefix, ee.err)
			if ee.code == exitUsage {
				fmt.Fprintf(c.stderr, "Run %s -h for usage.\n", prefix)
			}
		}
		return ee.code
	}
	fmt.Fprintf(c.stderr, "%s: %v\n", prefix, err)
	return exitAPI
}

// flagError turns a flag package error, which the flag set has already
// printed with the usage, into exit code 2.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &exitError{code: exitUsage}
}

// parse parses flags anywhere among args, up to a "--", and returns the
// positional arguments and those after "--".
func parse(fs *flag.FlagSet, args []string) (pos, tail []string, err error) {
	for range len(args) + 1 {
		if err := fs.Parse(args); err != nil {
			return nil, nil, flagError(err)
		}
		rest := fs.Args()
		used := len(args) - len(rest)
		if used > 0 && args[used-1] == "--" {
			return pos, rest, nil
		}
		if len(rest) == 0 {
			return pos, nil, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	return pos, nil, nil
}

// parseN is parse for commands without "--" tails that take between min and
// max positional arguments (max < 0: no limit); what names them in errors.
func parseN(fs *flag.FlagSet, args []string, min, max int, what string) ([]string, error) {
	pos, tail, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	pos = append(pos, tail...)
	switch {
	case len(pos) < min:
		return nil, usageError("missing %s", what)
	case max >= 0 && len(pos) > max:
		return nil, usageError("unexpected argument %q; give only %s", pos[max], what)
	}
	return pos, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
