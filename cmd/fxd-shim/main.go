// Command fxd-shim runs command tasks inside a warm worker: it reads Run
// frames on stdin and writes Result frames on stdout (see runtimes/wire).
// It is built static (CGO_ENABLED=0) so it can be bind-mounted into any
// container image. "fxd-shim init -- COMMAND..." is PID 1 of a servable's
// container and runs the servable as its child (shim.Init). On the host,
// "fxd-shim monitor ..." is the monitor of one container
// (isolation/oci/monitor).
package main

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/isolation/oci/monitor"
	"fxd.dev/fxd/runtimes/shim"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == monitor.Command {
		os.Exit(monitor.Main(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == shim.InitCommand {
		os.Exit(shim.Init(os.Args[2:]))
	}
	// One task at a time, on one goroutine: one P, so that the runtime
	// never has another thread to wake for it (see shim's rawWait).
	runtime.GOMAXPROCS(1)
	if err := serve(); err != nil {
		fmt.Fprintf(os.Stderr, "fxd-shim: %v\n", err)
		os.Exit(1)
	}
}

func serve() error {
	in, err := shim.Input(0)
	if err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	// Results are written in plain blocking write(2)s.
	if err := unix.SetNonblock(1, false); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	return shim.Serve(in, os.NewFile(1, "stdout"))
}
