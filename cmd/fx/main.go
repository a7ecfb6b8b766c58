// Command fx is the users' CLI of fxd: register functions, run and submit
// tasks, fetch results, and measure an endpoint with a load generator.
// `fx --help` lists the subcommands, the settings and the exit codes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mattn/go-isatty"
)

func main() {
	c := &cli{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv,
		stderrTTY: isatty.IsTerminal(os.Stderr.Fd()),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := c.main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
