package wire

import (
	"bytes"
	"runtime"
	"testing"
)

// fuzzLimit is the payload limit the fuzzed decoders get.
const fuzzLimit = 1 << 10

// FuzzFrame feeds arbitrary bytes to every decoder: none may panic, return
// more than the limit, or allocate much beyond the limit and the input.
func FuzzFrame(f *testing.F) {
	var b bytes.Buffer
	WriteRun(&b, Run{Argv: []string{"cat"}, Env: []string{"A=1"}, MaxOutput: 5}, []byte("in"))
	f.Add(b.Bytes())
	b.Reset()
	WriteResult(&b, Result{ExitCode: 1, Signal: "killed", OutputBytes: 9}, []byte("out"))
	f.Add(b.Bytes())
	f.Add(shimFrame(TypeRun, 1<<31, 1<<31, ""))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0, 3, 'a', 'b', 'c'})
	f.Fuzz(func(t *testing.T, data []byte) {
		decoders := []struct {
			name string
			fn   func() int
		}{
			{"ReadRun", func() int { _, p, _ := ReadRun(bytes.NewReader(data), fuzzLimit); return len(p) }},
			{"ReadResult", func() int { _, p, _ := ReadResult(bytes.NewReader(data), fuzzLimit); return len(p) }},
			{"ReadRequest", func() int { _, p, _ := ReadRequest(bytes.NewReader(data), fuzzLimit); return len(p) }},
			{"ReadResponse", func() int { _, p, _ := ReadResponse(bytes.NewReader(data), fuzzLimit); return len(p) }},
		}
		for _, d := range decoders {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			n := d.fn()
			runtime.ReadMemStats(&after)
			if n > fuzzLimit {
				t.Fatalf("%s returned %d bytes, limit %d", d.name, n, fuzzLimit)
			}
			if got, max := after.TotalAlloc-before.TotalAlloc, uint64(fuzzLimit+16*len(data)+64<<10); got > max {
				t.Fatalf("%s allocated %d bytes for %d bytes of input, want at most %d", d.name, got, len(data), max)
			}
		}
	})
}
