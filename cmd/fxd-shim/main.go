// Command fxd-shim runs command tasks inside a warm worker: it reads Run
// frames on stdin and writes Result frames on stdout (see runtimes/wire).
// It is built static (CGO_ENABLED=0) so it can be bind-mounted into any
// container image.
package main

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/runtimes/shim"
)

func main() {
	// One task at a time: one P is enough, and fewer threads to wake.
	runtime.GOMAXPROCS(1)
	// The daemon's pipes, made non-blocking so that waiting for a frame
	// parks a goroutine in the poller instead of a thread in read(2).
	in, out := pollable(0, "stdin"), pollable(1, "stdout")
	if err := shim.Serve(in, out); err != nil {
		fmt.Fprintf(os.Stderr, "fxd-shim: %v\n", err)
		os.Exit(1)
	}
}

func pollable(fd int, name string) *os.File {
	if err := unix.SetNonblock(fd, true); err != nil {
		fmt.Fprintf(os.Stderr, "fxd-shim: %s: %v\n", name, err)
		os.Exit(1)
	}
	return os.NewFile(uintptr(fd), name)
}
