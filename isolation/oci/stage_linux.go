package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/isolation"
)

// rootFlags are the flags of every container's root: nothing in an image
// can be changed, gain privileges through a setuid file (no_new_privileges
// stops that too), or reach a device through a node of its own, whatever
// the image holds and however the caller mounted it.
const rootFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV

// stageRootfs bind-mounts rootfs at bundle/rootfs with rootFlags and
// returns that path, the root the runtime is given: a device node in the
// image, of a kind every runtime's device cgroup allows (the host's
// console 5:1, other users' terminals 136:*), then does not open, where
// the runtime keeps these flags (see Executor.start). unstageRootfs undoes
// it.
func stageRootfs(rootfs, bundle string) (string, error) {
	at := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(at, 0o700); err != nil {
		return "", fmt.Errorf("stage root file system: %w", err)
	}
	if err := unix.Mount(rootfs, at, "", unix.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("stage root file system %s: %w", rootfs, err)
	}
	if err := unix.Mount("", at, "", unix.MS_REMOUNT|unix.MS_BIND|rootFlags, ""); err != nil {
		return "", fmt.Errorf("stage root file system %s read-only, nodev, nosuid: %w", rootfs, err)
	}
	return at, nil
}

// unstageRootfs unmounts the staged root of bundle and removes its mount
// point; one already gone is no error.
func unstageRootfs(bundle string) error {
	at := filepath.Join(bundle, "rootfs")
	if err := unix.Unmount(at, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount staged root %s: %w", at, err)
	}
	if err := unix.Rmdir(at); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove staged root %s: %w", at, err)
	}
	return nil
}

// stageBinds makes each bind's source reachable only as the account
// reaches it: it opens the source with the account's file system
// credentials (so a symlink the account planted, or a directory whose
// parents the account may not search, fails here, as it would for the
// account itself) and bind-mounts what it opened at bundle/binds/<n>. It
// returns the binds with those sources: the runtime, which runs as root,
// then follows no path the account controls. unstageBinds undoes it.
func stageBinds(binds []Bind, a isolation.Account, bundle string) ([]Bind, error) {
	if len(binds) == 0 {
		return nil, nil
	}
	dir := filepath.Join(bundle, "binds")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("stage binds: %w", err)
	}
	staged := make([]Bind, len(binds))
	for i, b := range binds {
		f, err := isolation.OpenAs(a, b.Source, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return nil, fmt.Errorf("bind source: %w; fix its permissions or the site's bind", err)
		}
		at := filepath.Join(dir, strconv.Itoa(i))
		err = os.Mkdir(at, 0o700)
		if err == nil {
			err = unix.Mount("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), at, "", unix.MS_BIND|unix.MS_REC, "")
		}
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("stage bind %s: %w", b.Source, err)
		}
		staged[i] = Bind{Source: at, Destination: b.Destination, ReadOnly: b.ReadOnly}
	}
	return staged, nil
}

// unstageBinds unmounts the staged binds of bundle and removes their
// mount points. It never removes anything through a mount: a bind it
// cannot unmount stays, and unstageBinds fails. What is already gone is
// no error: the container's own end and Cleanup may both remove it.
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
		if err := unix.Unmount(at, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount staged bind %s: %w", at, err))
			continue
		}
		if err := unix.Rmdir(at); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove staged bind %s: %w", at, err))
		}
	}
	if len(errs) == 0 {
		if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}
