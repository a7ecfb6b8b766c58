// Command fxd-shim runs command tasks inside a warm worker: it reads Run
// frames on stdin and writes Result frames on stdout (see runtimes/wire).
// It is built static (CGO_ENABLED=0) so it can be bind-mounted into any
// container image.
package main

import (
	"fmt"
	"os"

	"fxd.dev/fxd/runtimes/shim"
)

func main() {
	if err := shim.Serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "fxd-shim: %v\n", err)
		os.Exit(1)
	}
}
