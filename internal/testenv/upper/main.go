// Command upper is a servable (docs/servable.md) that answers each task
// with its input upper-cased, as the Python example there does. It is
// static, so tests and benchmarks run the same program on the host and in
// a busybox image.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

func main() {
	in, out := bufio.NewReader(os.Stdin), bufio.NewWriter(os.Stdout)
	var head [5]byte
	for {
		if _, err := io.ReadFull(in, head[:]); err != nil {
			return // stdin ended: exit
		}
		body := make([]byte, binary.BigEndian.Uint32(head[1:]))
		if _, err := io.ReadFull(in, body); err != nil {
			fmt.Fprintln(os.Stderr, "upper: short request:", err)
			os.Exit(1)
		}
		status, reply := byte(0), bytes.ToUpper(body)
		if head[0] != 1 {
			status, reply = 1, []byte(fmt.Sprintf("unknown request type %d", head[0]))
		}
		out.WriteByte(status)
		binary.Write(out, binary.BigEndian, uint32(len(reply)))
		out.Write(reply)
		if err := out.Flush(); err != nil {
			os.Exit(1)
		}
	}
}
