package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"fxd.dev/fxd/api"
)

// Shim frame types.
const (
	TypeRun    byte = 'R' // daemon → shim: run a task
	TypeResult byte = 'r' // shim → daemon: how it ended
)

// MaxHeader is the largest JSON header of a shim frame, in bytes.
const MaxHeader = 1 << 20

// Run asks the shim to run one task. Its payload is the task's stdin.
type Run struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env"`           // the whole environment
	Dir  string   `json:"dir,omitempty"` // "" = the shim's own
	// MaxOutput is how many bytes of stdout to keep; the rest is read and
	// counted but dropped.
	MaxOutput int64 `json:"max_output"`
}

// Result says how a task ended. Its payload is the task's stdout, at most
// Run.MaxOutput bytes.
type Result struct {
	ExitCode int    `json:"exit_code"`        // -1 when killed by a signal or not started
	Signal   string `json:"signal,omitempty"` // "killed", "terminated", … when killed by a signal
	Stderr   string `json:"stderr,omitempty"` // last bytes of stderr
	// OutputBytes counts every byte the task wrote to stdout, kept or not.
	OutputBytes     int64 `json:"output_bytes"`
	OutputTruncated bool  `json:"output_truncated,omitempty"`
	// Error is set when the command could not be started, e.g.
	// `exec: "nosuch": executable file not found in $PATH`.
	Error string `json:"error,omitempty"`
	// LeftBehind says processes the task started still run after it
	// exited (the shim is their subreaper, so it sees even daemonized
	// ones). The worker must then be discarded.
	LeftBehind bool `json:"left_behind,omitempty"`
}

// WriteRun writes a Run frame with input as its payload.
func WriteRun(w io.Writer, r Run, input []byte) error {
	return writeFrame(w, TypeRun, r, input)
}

// ReadRun reads a Run frame whose payload is at most maxInput bytes. It
// returns io.EOF when the stream ends cleanly before a frame.
func ReadRun(r io.Reader, maxInput int64) (Run, []byte, error) {
	var run Run
	payload, err := readFrame(r, TypeRun, &run, maxInput)
	return run, payload, err
}

// WriteResult writes a Result frame with output as its payload.
func WriteResult(w io.Writer, res Result, output []byte) error {
	return writeFrame(w, TypeResult, res, output)
}

// ReadResult reads a Result frame whose payload is at most maxOutput
// bytes. It returns io.EOF when the stream ends cleanly before a frame.
func ReadResult(r io.Reader, maxOutput int64) (Result, []byte, error) {
	var res Result
	payload, err := readFrame(r, TypeResult, &res, maxOutput)
	return res, payload, err
}

func writeFrame(w io.Writer, typ byte, header any, payload []byte) error {
	h, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("encode frame header: %w", err)
	}
	if len(h) > MaxHeader {
		return fmt.Errorf("encode frame header: %w", &SizeError{What: "header", Size: int64(len(h)), Max: MaxHeader})
	}
	if int64(len(payload)) > math.MaxUint32 {
		return fmt.Errorf("encode frame: %w", &SizeError{What: "payload", Size: int64(len(payload)), Max: math.MaxUint32})
	}
	buf := make([]byte, 9, 9+len(h)+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(h)))
	binary.BigEndian.PutUint32(buf[5:9], uint32(len(payload)))
	buf = append(buf, h...)
	buf = append(buf, payload...)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

func readFrame(r io.Reader, typ byte, header any, maxPayload int64) ([]byte, error) {
	var pre [9]byte
	if n, err := io.ReadFull(r, pre[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read frame: %w", err)
	}
	if pre[0] != typ {
		return nil, fmt.Errorf("read frame: type %#x, want %#x: %w", pre[0], typ, api.ErrInvalid)
	}
	hlen := int64(binary.BigEndian.Uint32(pre[1:5]))
	plen := int64(binary.BigEndian.Uint32(pre[5:9]))
	if hlen > MaxHeader {
		return nil, fmt.Errorf("read frame: %w", &SizeError{What: "header", Size: hlen, Max: MaxHeader})
	}
	if plen > maxPayload {
		return nil, fmt.Errorf("read frame: %w", &SizeError{What: "payload", Size: plen, Max: maxPayload})
	}
	h, err := readN(r, hlen)
	if err != nil {
		return nil, fmt.Errorf("read frame header: %w", err)
	}
	if err := json.Unmarshal(h, header); err != nil {
		return nil, fmt.Errorf("decode frame header: %v: %w", err, api.ErrInvalid)
	}
	payload, err := readN(r, plen)
	if err != nil {
		return nil, fmt.Errorf("read frame payload: %w", err)
	}
	return payload, nil
}

// chunk is the most readN allocates ahead of the bytes that arrived.
const chunk = 32 << 10

// readN reads exactly n bytes, growing its buffer as bytes arrive, so a
// peer that claims a long frame and sends little costs little memory.
func readN(r io.Reader, n int64) ([]byte, error) {
	b := make([]byte, 0, min(n, chunk))
	for int64(len(b)) < n {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(n, 2*int64(cap(b))))
			copy(nb, b)
			b = nb
		}
		m, err := io.ReadFull(r, b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err != nil {
			return nil, unexpected(err)
		}
	}
	return b, nil
}

// unexpected turns a clean EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
