package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is set at link time (-ldflags "-X main.version=1.2.3"); a plain
// build reports the module version or "dev".
var version = ""

const usage = `usage: fxd COMMAND [ARGS]

commands:
  serve     run the daemon (fxd serve --help)
  config    check a config file, or print the default one (fxd config check FILE, fxd config default)
  token     issue, list and revoke bearer tokens
  runtime   add, list and remove SIF images (fxd runtime --help)
  node      run a node agent that serves a daemon's tasks on this host (fxd node --help)
  nodes     list linked nodes, mint a node credential (fxd nodes --help)
  blocks    list the pools' blocks: pilot jobs, their state, nodes and tasks (fxd blocks --help)
  data      show the data cache's use, per account (fxd data --help)
  federation  make and show the certificates of peer links (fxd federation --help)
  version   print the version
`

// fxdVersion is the link-time version, else the module version, else "dev".
func fxdVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	_, err := fmt.Fprintf(stdout, "fxd %s\n", fxdVersion())
	return err
}
