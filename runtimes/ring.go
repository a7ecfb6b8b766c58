package runtimes

import (
	"strings"
	"sync"
)

// stderrTail is how many bytes of a worker's stderr are kept.
const stderrTail = 4 << 10

// ring keeps the last stderrTail bytes written to it. Safe for concurrent use.
type ring struct {
	mu    sync.Mutex
	b     []byte
	total int64 // bytes ever written
}

func (r *ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total += int64(len(p))
	if len(p) >= stderrTail {
		r.b = append(r.b[:0], p[len(p)-stderrTail:]...)
		return len(p), nil
	}
	if over := len(r.b) + len(p) - stderrTail; over > 0 {
		r.b = append(r.b[:0], r.b[over:]...)
	}
	r.b = append(r.b, p...)
	return len(p), nil
}

// mark returns a position to pass to since.
func (r *ring) mark() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// since returns what was written after mark, as far as it is still kept.
func (r *ring) since(mark int64) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(r.total-mark, int64(len(r.b)))
	return strings.ToValidUTF8(string(r.b[int64(len(r.b))-n:]), "\uFFFD")
}
