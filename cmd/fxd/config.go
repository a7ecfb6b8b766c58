package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
)

const configUsage = `usage: fxd config check [FILE]
       fxd config default

  check     load and validate a site config (default ` + defaultConfigPath + `);
            prints "FILE: ok", or every problem with its line and how to fix it
  default   print the default config: every key with its default and a comment
            (start a site config with: fxd config default > ` + defaultConfigPath + `)
`

// cmdConfig is `fxd config check [FILE]` and `fxd config default`.
func cmdConfig(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("fxd config", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, configUsage) }
	if err := fl.Parse(args); err != nil {
		return helpOK(err)
	}
	if fl.NArg() == 0 {
		fl.Usage()
		return fmt.Errorf("missing subcommand; want check or default: %w", api.ErrInvalid)
	}
	switch sub, rest := fl.Arg(0), fl.Args()[1:]; sub {
	case "check":
		return configCheck(rest, stdout, stderr)
	case "default":
		return configDefault(rest, stdout, stderr)
	default:
		fl.Usage()
		return fmt.Errorf("unknown subcommand %q; want check or default: %w", sub, api.ErrInvalid)
	}
}

// configCheck loads and validates a config file.
func configCheck(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("fxd config check", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprintf(stderr, "usage: fxd config check [FILE]\n\nLoad and validate a site config (default %s); print \"FILE: ok\" or every problem.\n", defaultConfigPath)
	}
	if err := fl.Parse(args); err != nil {
		return helpOK(err)
	}
	if fl.NArg() > 1 {
		fl.Usage()
		return fmt.Errorf("check takes one file, got %d: %w", fl.NArg(), api.ErrInvalid)
	}
	path := defaultConfigPath
	if fl.NArg() == 1 {
		path = fl.Arg(0)
	}
	cfg, err := conf.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w; write one with: fxd config default > %s", err, path)
	}
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return nil
}

// configDefault prints the embedded default config verbatim.
func configDefault(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("fxd config default", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, "usage: fxd config default\n\nPrint the default config: every key with its default value and a comment.\n")
	}
	if err := fl.Parse(args); err != nil {
		return helpOK(err)
	}
	if fl.NArg() > 0 {
		fl.Usage()
		return fmt.Errorf("default takes no arguments, got %q: %w", fl.Args(), api.ErrInvalid)
	}
	if _, err := stdout.Write(conf.DefaultTOML()); err != nil {
		return fmt.Errorf("write default config: %w", err)
	}
	return nil
}

// helpOK turns the flag package's -h/--help error into success: the usage
// was asked for and printed.
func helpOK(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
