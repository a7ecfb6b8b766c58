package daemon

import (
	"crypto/rand"
	"crypto/sha256"
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

// forwardedID is the ID here of the task peer site forwarded as its task
// origin, received there at received: the time part of newTaskID from
// received, then 72 bits of a hash of site and origin. A batch sent again
// maps to the same IDs, which is how duplicates are found.
func forwardedID(site, origin string, received time.Time) string {
	var b [15]byte
	binary.BigEndian.PutUint64(b[:8], uint64(received.UnixMilli())<<16)
	sum := sha256.Sum256([]byte(site + "\x00" + origin))
	copy(b[6:], sum[:9])
	return "t" + idEncoding.EncodeToString(b[:])
}
