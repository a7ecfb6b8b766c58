// Command mksif writes the busybox SIF image of testenv.BuildSIF, for
// scripts outside the tests (scripts/bench.sh):
//
//	go run ./internal/testenv/mksif OUT.sif [IMAGE_PATH=HOST_FILE]...
//
// Each IMAGE_PATH=HOST_FILE copies a host file into the image (mode 0755).
package main

import (
	"fmt"
	"os"
	"strings"

	"fxd.dev/fxd/internal/testenv"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mksif OUT.sif [IMAGE_PATH=HOST_FILE]...")
		os.Exit(2)
	}
	var opts []testenv.SIFOption
	for _, arg := range os.Args[2:] {
		in, host, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "mksif: %q: want IMAGE_PATH=HOST_FILE\n", arg)
			os.Exit(2)
		}
		data, err := os.ReadFile(host)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mksif: %v\n", err)
			os.Exit(1)
		}
		opts = append(opts, testenv.SIFFile(in, 0o755, data))
	}
	if err := testenv.WriteSIF(os.Args[1], opts...); err != nil {
		fmt.Fprintf(os.Stderr, "mksif: %v\n", err)
		os.Exit(1)
	}
}
