package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NotifySocket is systemd's end of NOTIFY_SOCKET: a unixgram socket in a
// temp dir whose datagrams the test reads. Point the daemon at Path.
type NotifySocket struct {
	Path string
	conn *net.UnixConn
}

// ListenNotify listens on a new notify socket, closed when the test ends.
func ListenNotify(t testing.TB) *NotifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on the notify socket: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &NotifySocket{Path: path, conn: conn}
}

// Read returns the next datagram, or "", false if none comes within wait.
func (n *NotifySocket) Read(t testing.TB, wait time.Duration) (string, bool) {
	t.Helper()
	buf := make([]byte, 64<<10)
	n.conn.SetReadDeadline(time.Now().Add(wait))
	k, err := n.conn.Read(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "", false
	}
	if err != nil {
		t.Fatalf("read the notify socket: %v", err)
	}
	return string(buf[:k]), true
}

// Await returns the next datagram that has the line want, and the
// datagrams before it. It returns an error naming those if none comes
// within timeout, or once exited is closed (the sender is gone; nil if
// there is none to watch) and all it sent has been read.
func (n *NotifySocket) Await(t testing.TB, want string, timeout time.Duration, exited <-chan struct{}) (msg string, skipped []string, err error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		// What the sender sent before it exited is queued on the
		// socket: one more read after the exit was seen gets it.
		gone := false
		select {
		case <-exited:
			gone = true
		default:
		}
		m, ok := n.Read(t, 100*time.Millisecond)
		switch {
		case ok && NotifyHasLine(m, want):
			return m, skipped, nil
		case ok:
			skipped = append(skipped, m)
		case gone:
			return "", skipped, fmt.Errorf("the sender exited without sending %q (got %q)", want, skipped)
		case time.Now().After(deadline):
			return "", skipped, fmt.Errorf("no %q on the notify socket within %s (got %q)", want, timeout, skipped)
		}
	}
}

// Drain returns the datagrams queued on the socket.
func (n *NotifySocket) Drain(t testing.TB) []string {
	t.Helper()
	var out []string
	for {
		m, ok := n.Read(t, 100*time.Millisecond)
		if !ok {
			return out
		}
		out = append(out, m)
	}
}

// NotifyHasLine says whether the datagram msg has the line line
// ("READY=1", "STATUS=…"), as sd_notify separates them.
func NotifyHasLine(msg, line string) bool {
	for l := range strings.SplitSeq(msg, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// SocketInode is the inode number of the file at path itself (a socket
// file, not what a symlink points to), to tell whether it was replaced.
func SocketInode(t testing.TB, path string) uint64 {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("socket file: %v", err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}
