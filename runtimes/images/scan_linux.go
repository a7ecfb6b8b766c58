package images

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
)

// scanRootfs mounts the root file system at bytes off to off+size of the
// private copy file, as Mount would, and refuses it when it holds a device
// node. Mounts are nodev, but crun 1.8 remounts a container's root without
// nodev, and the device cgroup of every runtime lets a container open
// some devices (the host's console 5:1, other users' terminals 136:*) by a
// node of its own. A root file system the kernel cannot mount is refused
// here too, rather than at its first task.
func (s *Store) scanRootfs(ctx context.Context, file string, off, size int64) error {
	dir, err := os.MkdirTemp(s.mntDir(), ".scan-") // unmountStale removes one a crash leaves
	if err != nil {
		return fmt.Errorf("scan image: %w", err)
	}
	defer os.Remove(dir)
	if _, err := mountSquashfs(file, off, size, dir); err != nil {
		if errors.Is(err, api.ErrUnavailable) {
			return fmt.Errorf("scan image: %w", err)
		}
		return fmt.Errorf("scan image: its root file system does not mount (%v); rebuild the image: %w", err, api.ErrInvalid)
	}
	defer func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			s.log.Warn().Err(err).Str("dir", dir).Msg("unmount scanned image")
		}
	}()
	return findDevice(ctx, dir)
}

// findDevice walks the tree at root and fails on the first device node.
func findDevice(ctx context.Context, root string) error {
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type()&fs.ModeDevice == 0 {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		kind, num := "block", ""
		if d.Type()&fs.ModeCharDevice != 0 {
			kind = "char"
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				num = fmt.Sprintf(" %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
			}
		}
		return fmt.Errorf("the image holds a device node, /%s (%s%s): a container could reach a host device through it; "+
			"rebuild the image without device nodes (containers get their own /dev): %w", rel, kind, num, api.ErrInvalid)
	})
	if err != nil && !errors.Is(err, api.ErrInvalid) {
		return fmt.Errorf("scan image: %w", err)
	}
	return err
}
