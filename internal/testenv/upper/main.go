// Command upper is a servable (docs/servable.md) that answers each task
// with its input upper-cased, as the Python example there does, with the
// frames of runtimes/wire. It is static, so tests and benchmarks run the
// same program on the host and in a busybox image.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"fxd.dev/fxd/runtimes/wire"
)

func main() {
	in, out := bufio.NewReader(os.Stdin), bufio.NewWriter(os.Stdout)
	for {
		_, input, err := wire.ReadRequest(in, math.MaxUint32)
		if errors.Is(err, io.EOF) {
			return // stdin ended: exit
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "upper:", err)
			os.Exit(1)
		}
		if err := wire.WriteResponse(out, wire.StatusOK, bytes.ToUpper(input)); err == nil {
			err = out.Flush()
		}
		if err != nil {
			os.Exit(1)
		}
	}
}
