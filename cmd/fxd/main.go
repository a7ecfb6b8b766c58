// Command fxd is the fxd daemon and its admin subcommands.
package main

import (
	"fmt"
	"io"
	"os"
)

// command is one subcommand: it gets its arguments (after the subcommand
// name) and writes to stdout and stderr; an error ends fxd with exit code 1.
type command func(args []string, stdout, stderr io.Writer) error

func main() {
	cmds := map[string]command{"serve": cmdServe, "config": cmdConfig, "token": cmdToken, "runtime": cmdRuntime, "node": cmdNode, "nodes": cmdNodes, "blocks": cmdBlocks, "data": cmdData, "federation": cmdFederation, "version": cmdVersion, "--version": cmdVersion}
	if len(os.Args) == 2 && (os.Args[1] == "help" || os.Args[1] == "-h" || os.Args[1] == "--help") {
		fmt.Fprint(os.Stdout, usage)
		return
	}
	if len(os.Args) < 2 || cmds[os.Args[1]] == nil {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err := cmds[os.Args[1]](os.Args[2:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "fxd %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
