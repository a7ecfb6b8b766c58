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
