package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"unsafe"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/isolation"
)

// stageBinds makes each site bind's source reachable only as the account
// reaches it: it opens the source with the account's file system
// credentials (so a symlink the account planted, or a directory whose
// parents the account may not search, fails here, as it would for the
// account itself), bind-mounts what it opened at bundle/binds/<n>, and
// points the spec's mount there. The runtime, which runs as root, then
// follows no path the account controls. unstageBinds undoes it.
func stageBinds(g *specs.Spec, binds []Bind, a isolation.Account, bundle string) error {
	if len(binds) == 0 {
		return nil
	}
	dir := filepath.Join(bundle, "binds")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("stage binds: %w", err)
	}
	for i, b := range binds {
		fd, err := openAs(a, b.Source)
		if err != nil {
			return err
		}
		at := filepath.Join(dir, strconv.Itoa(i))
		err = os.Mkdir(at, 0o700)
		if err == nil {
			err = unix.Mount("/proc/self/fd/"+strconv.Itoa(fd), at, "", unix.MS_BIND|unix.MS_REC, "")
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("stage bind %s: %w", b.Source, err)
		}
		for j := range g.Mounts {
			if m := &g.Mounts[j]; m.Type == "bind" && m.Destination == b.Destination {
				m.Source = at
			}
		}
	}
	return nil
}

// unstageBinds unmounts the staged binds of bundle and removes their
// mount points. It never removes anything through a mount: a bind it
// cannot unmount stays, and unstageBinds fails.
func unstageBinds(bundle string) error {
	dir := filepath.Join(bundle, "binds")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unstage binds: %w", err)
	}
	var errs []error
	for _, e := range entries {
		at := filepath.Join(dir, e.Name())
		if err := unix.Unmount(at, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount staged bind %s: %w", at, err))
			continue
		}
		if err := unix.Rmdir(at); err != nil {
			errs = append(errs, fmt.Errorf("remove staged bind %s: %w", at, err))
		}
	}
	if len(errs) == 0 {
		if err := unix.Rmdir(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// openAs opens the directory path as account a would: with a's UID, GID
// and groups as this thread's file system credentials, which also drops
// root's file capabilities while they hold. It returns an O_PATH file
// descriptor. It runs on a thread of its own, which is discarded if the
// credentials could not be restored.
func openAs(a isolation.Account, path string) (int, error) {
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
		groups := append([]uint32{a.GID}, a.Groups...)
		fd := -1
		if err = setThreadCreds(a.UID, a.GID, groups); err == nil {
			fd, err = unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
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
		return r.fd, nil
	case errors.Is(r.err, unix.EACCES), errors.Is(r.err, unix.EPERM):
		return -1, fmt.Errorf("bind source %s: account %s may not reach it (%v); fix its permissions or the site's bind: %w", path, a.Name, r.err, api.ErrDenied)
	case errors.Is(r.err, unix.ENOENT), errors.Is(r.err, unix.ENOTDIR):
		return -1, fmt.Errorf("bind source %s: no such directory for account %s (%v); create it or fix the site's bind: %w", path, a.Name, r.err, api.ErrInvalid)
	}
	return -1, fmt.Errorf("bind source %s: open as account %s: %w", path, a.Name, r.err)
}

// setThreadCreds sets this thread's supplementary groups (exactly those
// given), file system GID
// and file system UID, in that order (back to root: the reverse holds as
// well, since setfsuid(0) restores the capabilities the others need). Raw
// system calls: Go's syscall.Setgroups would change every thread.
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
