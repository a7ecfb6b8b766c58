package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"fxd.dev/fxd/api"
)

// Servable protocol bytes.
const (
	RequestTask byte = 0x01 // request type: run a task
	StatusOK    byte = 0x00 // response: the payload is the output
	StatusError byte = 0x01 // response: the payload is an error message
)

// WriteRequest writes one task request with its input.
func WriteRequest(w io.Writer, input []byte) error {
	return writeServable(w, RequestTask, input)
}

// ReadRequest reads one request whose input is at most maxInput bytes; it
// is what a servable written in Go calls. It returns io.EOF when the
// stream ends cleanly before a request.
func ReadRequest(r io.Reader, maxInput int64) (typ byte, input []byte, err error) {
	typ, n, err := readServableHead(r, "input", maxInput)
	if err != nil {
		return 0, nil, err
	}
	if typ != RequestTask {
		return 0, nil, fmt.Errorf("read request: type %#x, want %#x: %w", typ, RequestTask, api.ErrInvalid)
	}
	input, err = readBody(r, n)
	return typ, input, err
}

// WriteResponse writes one response: StatusOK with the output or
// StatusError with a message.
func WriteResponse(w io.Writer, status byte, payload []byte) error {
	return writeServable(w, status, payload)
}

// ReadResponse reads one response whose payload is at most maxPayload
// bytes. A longer one fails with a *SizeError before its payload is read:
// skip SizeError.Size bytes to read the next response. It returns io.EOF
// when the stream ends cleanly before a response.
func ReadResponse(r io.Reader, maxPayload int64) (status byte, payload []byte, err error) {
	status, n, err := readServableHead(r, "response", maxPayload)
	if err != nil {
		return 0, nil, err
	}
	if status != StatusOK && status != StatusError {
		return 0, nil, fmt.Errorf("read response: status %#x, want 0x00 (ok) or 0x01 (error): %w", status, api.ErrInvalid)
	}
	payload, err = readBody(r, n)
	return status, payload, err
}

func writeServable(w io.Writer, b byte, payload []byte) error {
	if int64(len(payload)) > math.MaxUint32 {
		return fmt.Errorf("encode message: %w", &SizeError{What: "payload", Size: int64(len(payload)), Max: math.MaxUint32})
	}
	buf := make([]byte, 5, 5+len(payload))
	buf[0] = b
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	buf = append(buf, payload...)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	return nil
}

func readServableHead(r io.Reader, what string, max int64) (byte, int64, error) {
	var pre [5]byte
	if n, err := io.ReadFull(r, pre[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return 0, 0, io.EOF
		}
		return 0, 0, fmt.Errorf("read message: %w", err)
	}
	n := int64(binary.BigEndian.Uint32(pre[1:]))
	if n > max {
		return pre[0], n, fmt.Errorf("read message: %w", &SizeError{What: what, Size: n, Max: max})
	}
	return pre[0], n, nil
}

func readBody(r io.Reader, n int64) ([]byte, error) {
	b, err := readN(r, n)
	if err != nil {
		return nil, fmt.Errorf("read message body: %w", err)
	}
	return b, nil
}
