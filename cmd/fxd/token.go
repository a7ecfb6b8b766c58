package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"text/tabwriter"
	"time"

	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/daemon"
)

const tokenUsage = `usage:
  fxd token issue --identity ID   print a new bearer token for ID on stdout (shown once)
  fxd token list                  list issued tokens: hash prefix, identity, date (no secrets)
  fxd token revoke HASH-PREFIX|IDENTITY...
                                  remove tokens by hash prefix (8+ hex digits, from list)
                                  or by identity (all of its tokens)

Every verb takes --config FILE (default ` + defaultConfigPath + `), or --dev [--state-dir DIR]
for the dev daemon of make run; flags may come before or after the verb and its
arguments. The token file is root's, so run these as root. The daemon picks up
changes within a second, without restart or SIGHUP.

flags:
`

// cmdToken is `fxd token issue|list|revoke`: it manages the token file of
// the site config that --config or --dev chooses.
func cmdToken(args []string, stdout, stderr io.Writer) error {
	fl, site := newSiteFlagSet("fxd token", tokenUsage, stderr)
	identity := fl.String("identity", "", "with issue: the `identity` the token authenticates, e.g. alice@example.org")
	pos, err := parseAnywhere(fl, args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) == 0 {
		fl.Usage()
		return errors.New("missing verb; want issue, list or revoke")
	}
	verb, rest := pos[0], pos[1:]
	if err := site.check(fl); err != nil {
		return err
	}
	switch verb {
	case "issue", "list", "revoke":
	default:
		fl.Usage()
		return fmt.Errorf("unknown verb %q; want issue, list or revoke", verb)
	}
	if verb != "issue" && site.set["identity"] {
		return fmt.Errorf("--identity applies only to issue; to revoke an identity's tokens: fxd token revoke IDENTITY")
	}
	if verb != "revoke" && len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q; %s takes only flags (see fxd token -h)", rest[0], verb)
	}
	cfg, err := site.load()
	if err != nil {
		return err
	}
	file := cfg.TokenFile()
	switch verb {
	case "issue":
		return tokenIssue(cfg, file, *identity, stdout, stderr)
	case "list":
		return tokenList(file, stdout, stderr)
	default:
		return tokenRevoke(file, rest, stderr)
	}
}

// tokenIssue prints a new token for identity on stdout, alone on its line
// so scripts can capture it, and what to do with it on stderr.
func tokenIssue(cfg *conf.Config, file, identity string, stdout, stderr io.Writer) error {
	if identity == "" {
		return errors.New("--identity is required: who the token authenticates, e.g. --identity alice@example.org")
	}
	tok, err := daemon.IssueToken(file, identity)
	if err != nil {
		return fileHint(err)
	}
	if _, err := fmt.Fprintln(stdout, tok); err != nil {
		return fmt.Errorf("print token: %w", err)
	}
	h := daemon.TokenHash(tok)[:shownHashDigits]
	fmt.Fprintf(stderr, "issued a token for %s (hash %s) in %s. It is printed once, above: hand it to its owner now "+
		"(fx reads it from FX_TOKEN). The daemon accepts it within a second; revoke it with: fxd token revoke %s\n",
		identity, h, file, h)
	if _, ok, _ := daemon.MappedAccount(cfg.Auth, identity); !ok {
		fmt.Fprintf(stderr, "warning: no [[auth.map]] rule matches %q, so the daemon will refuse this token (403) "+
			"until you add one (see fxd config default) and reload (SIGHUP)\n", identity)
	}
	return nil
}

// shownHashDigits is how much of a token's hash issue and list print:
// enough to tell tokens apart and to revoke one (revoke takes 8 or more).
const shownHashDigits = 12

// tokenList prints one row per token: a hash prefix (enough to revoke
// it), the identity and the issue date. Tokens themselves are never stored.
func tokenList(file string, stdout, stderr io.Writer) error {
	entries, err := daemon.ReadTokens(file)
	if err != nil {
		return fileHint(err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HASH\tIDENTITY\tISSUED")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Hash[:shownHashDigits], e.Identity, e.Issued.Format(time.DateOnly))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print tokens: %w", err)
	}
	if len(entries) == 0 {
		fmt.Fprintf(stderr, "no tokens in %s; issue one with: fxd token issue --identity ID\n", file)
	}
	return nil
}

// tokenRevoke removes the tokens each argument names; every argument must
// match at least one.
func tokenRevoke(file string, which []string, stderr io.Writer) error {
	if len(which) == 0 {
		return errors.New("give the hash prefix (fxd token list) or the identity of the tokens to revoke")
	}
	var errs []error
	for _, w := range which {
		n, err := daemon.RevokeTokens(file, w)
		if err != nil {
			errs = append(errs, fileHint(err))
			continue
		}
		if n == 0 {
			errs = append(errs, fmt.Errorf("no token matches %q: give an identity or a hash prefix of at least 8 hex digits, as fxd token list shows", w))
			continue
		}
		fmt.Fprintf(stderr, "revoked %d token(s) matching %s; the daemon refuses them within a second\n", n, w)
	}
	return errors.Join(errs...)
}

// fileHint adds the fix to a token file error that comes from permissions.
func fileHint(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w; the token file belongs to root: run fxd token as root (sudo)", err)
	}
	return err
}

// parseAnywhere parses fl's flags wherever they stand among args (the flag
// package alone stops at the first non-flag argument), so `fxd token issue
// --identity x --config f` and `fxd token --config f issue --identity x`
// mean the same. It returns the other arguments in order; after "--" all
// are arguments.
func parseAnywhere(fl *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			return nil, err
		}
		rest := fl.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}
