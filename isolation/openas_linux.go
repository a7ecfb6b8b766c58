package isolation

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
)

// OpenAs opens path as account a would: with a's UID, GID and groups as
// the calling thread's file system credentials (which also drops root's
// file capabilities while they hold), so that every directory on the way
// and the file itself are checked against a's permissions, and symlinks
// are followed as a would follow them. flags are open(2)'s (O_CLOEXEC is
// added). It runs on a thread of its own, which is discarded if the
// credentials could not be restored. It fails with api.ErrDenied when a
// may not reach path, api.ErrNotFound when there is none.
func OpenAs(a Account, path string, flags int) (*os.File, error) {
	return openAs(a, path, func() (int, error) { return unix.Open(path, flags|unix.O_CLOEXEC, 0) })
}

// OpenBeneathAs opens rel inside the directory root as account a would
// (see OpenAs), and refuses, with api.ErrDenied, a path that leads out of
// root on the way: "..", an absolute symlink, or a symlink whose target
// is outside (openat2 with RESOLVE_BENEATH), as when users stage files
// from the site's allowed directories.
func OpenBeneathAs(a Account, root, rel string, flags int) (*os.File, error) {
	path := filepath.Join(root, rel)
	f, err := openAs(a, path, func() (int, error) {
		dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		defer unix.Close(dir)
		return unix.Openat2(dir, rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS})
	})
	if errors.Is(err, unix.EXDEV) {
		return nil, fmt.Errorf("%s: it leads outside %s (through \"..\" or a symlink); give a path inside it: %w", path, root, api.ErrDenied)
	}
	return f, err
}

// openAs runs open, which returns a file descriptor, on a thread with
// a's file system credentials, and says what went wrong for path.
func openAs(a Account, path string, open func() (int, error)) (*os.File, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked unless restored: a tainted thread exits with this goroutine
		own, err := unix.Getgroups()
		if err != nil {
			ch <- result{-1, fmt.Errorf("getgroups: %w", err)}
			return
		}
		fd := -1
		if err = setThreadCreds(a.UID, a.GID, append([]uint32{a.GID}, a.Groups...)); err == nil {
			fd, err = open()
		}
		ownGroups := make([]uint32, len(own))
		for i, g := range own {
			ownGroups[i] = uint32(g)
		}
		if rerr := setThreadCreds(0, 0, ownGroups); rerr == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{fd, err}
	}()
	r := <-ch
	switch {
	case r.err == nil:
		return os.NewFile(uintptr(r.fd), path), nil
	case errors.Is(r.err, unix.EXDEV):
		return nil, r.err
	case errors.Is(r.err, unix.EACCES), errors.Is(r.err, unix.EPERM):
		return nil, fmt.Errorf("%s: account %s may not reach it (%v): %w", path, a.Name, r.err, api.ErrDenied)
	case errors.Is(r.err, unix.ENOENT), errors.Is(r.err, unix.ENOTDIR):
		return nil, fmt.Errorf("%s: no such file or directory for account %s: %w", path, a.Name, api.ErrNotFound)
	}
	return nil, fmt.Errorf("%s: open as account %s: %w", path, a.Name, r.err)
}

// setThreadCreds sets this thread's supplementary groups (exactly those
// given), file system GID and file system UID, in that order (back to
// root, setfsuid(0) comes first, restoring the capabilities the others
// need). Raw system calls: Go's syscall.Setgroups would change every
// thread.
func setThreadCreds(uid, gid uint32, groups []uint32) error {
	if uid == 0 {
		unix.Setfsuid(0)
	}
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(p), 0); errno != 0 {
		return fmt.Errorf("setgroups: %w", errno)
	}
	unix.Setfsgid(int(gid))
	unix.Setfsuid(int(uid))
	// setfsuid and setfsgid return the previous value, never an error:
	// read them back with an invalid value (-1 changes nothing).
	if got, _ := unix.SetfsuidRetUid(-1); got != int(uid) {
		return fmt.Errorf("setfsuid %d: still %d", uid, got)
	}
	if got, _ := unix.SetfsgidRetGid(-1); got != int(gid) {
		return fmt.Errorf("setfsgid %d: still %d", gid, got)
	}
	return nil
}
