package daemon

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"time"
)

// idEncoding keeps IDs in time order when sorted as strings.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// newTaskID returns a unique, time-sortable task ID: "t" + 48 bits of Unix
// milliseconds + 72 random bits, in lowercase base32.
func newTaskID(now time.Time) string {
	var b [15]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	return "t" + idEncoding.EncodeToString(b[:])
}
