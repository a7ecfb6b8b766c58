package wire

import (
	"fmt"

	"fxd.dev/fxd/api"
)

// SizeError reports a frame part longer than the reader accepts. The part
// has not been read: the stream is positioned at its first byte, so a
// caller may skip Size bytes to stay in sync. It unwraps to api.ErrTooLarge.
type SizeError struct {
	What string // "header", "payload", "input", "response"
	Size int64
	Max  int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("%s of %d bytes exceeds the limit of %d bytes", e.What, e.Size, e.Max)
}

// Unwrap returns api.ErrTooLarge.
func (e *SizeError) Unwrap() error { return api.ErrTooLarge }
