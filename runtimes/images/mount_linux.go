package images

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
)

// mount is one image's root file system mounted under Dir/mnt.
type mount struct {
	dir   string
	done  chan struct{} // closed when the mount has been made, or failed
	err   error         // set before done is closed
	users int           // Mount calls not yet released; guarded by Store.mu
}

// mountFlags are the flags of every image mount: nothing in an image can
// be changed, gain privileges through setuid files, or reach devices.
const mountFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV

// Mount returns the directory where the root file system of the image with
// this digest is mounted read-only: its squashfs partition, through a
// read-only loop device set to the partition's offset and size, mounted
// with MS_RDONLY|MS_NOSUID|MS_NODEV. The first call for a digest mounts it
// under Dir/mnt/<hex>; concurrent and later calls share that mount. The
// caller calls release once it no longer uses the directory (its
// container is gone). The mount stays while the image has a name, for the
// next worker, and until Close; an image whose names are all removed is
// unmounted, and its blob removed, when its last user releases it.
// A digest no name has fails with api.ErrNotFound; a kernel without the
// loop or squashfs module with api.ErrUnavailable. ctx bounds the wait for
// a mount another call is making.
func (s *Store) Mount(ctx context.Context, digest string) (dir string, release func(), err error) {
	sum, err := parseDigest(digest)
	if err != nil {
		return "", nil, fmt.Errorf("mount image: %w", err)
	}
	m, rec, first, err := s.startMount(sum)
	if err != nil {
		return "", nil, fmt.Errorf("mount image %s: %w", digest, err)
	}
	var once sync.Once
	release = func() { once.Do(func() { s.release(sum, m) }) }
	if first {
		err := s.mount(sum, m.dir, rec)
		s.mu.Lock()
		if err != nil {
			m.err = err
			delete(s.mounts, sum)
			s.dropBlob(sum) // its last name may have gone meanwhile
		}
		close(m.done)
		s.mu.Unlock()
	}
	select {
	case <-m.done:
	case <-ctx.Done():
		release()
		return "", nil, fmt.Errorf("mount image %s: %w", digest, ctx.Err())
	}
	if m.err != nil {
		release()
		return "", nil, fmt.Errorf("mount image %s: %w", digest, m.err)
	}
	return m.dir, release, nil
}

// release ends one use of the mount m of sum.
func (s *Store) release(sum string, m *mount) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m.users--
	if s.mounts[sum] == m {
		s.unmountUnused(sum)
		s.dropBlob(sum)
	}
}

// unmountUnused unmounts the image sum when nothing uses its mount and no
// name has it; dropBlob then removes its blob. The caller holds s.mu.
func (s *Store) unmountUnused(sum string) {
	m := s.mounts[sum]
	if m == nil || m.users > 0 || s.closed {
		return
	}
	select {
	case <-m.done:
	default:
		return // being mounted: its caller uses it
	}
	used := true
	if err := s.db.View(func(tx *bolt.Tx) error { _, used = named(tx, "sha256:"+sum); return nil }); err != nil || used {
		return
	}
	if err := s.unmount(m.dir); err != nil {
		s.log.Warn().Err(err).Str("digest", "sha256:"+sum).Msg("unmount unused image; Close tries again")
		return
	}
	delete(s.mounts, sum)
	s.log.Info().Str("digest", "sha256:"+sum).Msg("unused image unmounted")
}

// startMount returns the mount of sum, and whether it is new: then the
// caller makes it, with what rec says. The entry keeps the blob from being
// removed meanwhile.
func (s *Store) startMount(sum string) (m *mount, rec record, first bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, rec, false, errClosed()
	}
	if m := s.mounts[sum]; m != nil {
		m.users++
		return m, rec, false, nil
	}
	found := false
	if err := s.db.View(func(tx *bolt.Tx) error {
		rec, found = named(tx, "sha256:"+sum)
		return nil
	}); err != nil {
		return nil, rec, false, err
	}
	if !found {
		return nil, rec, false, fmt.Errorf("%w: no image has this digest; add the image first", api.ErrNotFound)
	}
	m = &mount{dir: filepath.Join(s.mntDir(), sum), done: make(chan struct{}), users: 1}
	s.mounts[sum] = m
	return m, rec, true, nil
}

// mount mounts the root file system of blob sum on dir.
func (s *Store) mount(sum, dir string, rec record) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create mount point: %w", err)
	}
	dev, err := mountSquashfs(s.blobPath(sum), rec.RootfsOffset, rec.RootfsSize, dir)
	if err != nil {
		os.Remove(dir)
		return err
	}
	s.log.Info().Str("digest", rec.Digest).Str("dir", dir).Str("device", dev).Msg("image mounted")
	return nil
}

// mountSquashfs mounts the squashfs at bytes off to off+size of file on
// dir, with mountFlags, through a loop device whose name it returns.
func mountSquashfs(file string, off, size int64, dir string) (string, error) {
	loop, err := attachLoop(file, off, size)
	if err != nil {
		if !errors.Is(err, api.ErrUnavailable) { // the host's fault, never the image's
			err = fmt.Errorf("%w: %w", api.ErrUnavailable, err)
		}
		return "", err
	}
	// Once mounted, the mount holds the device; autoclear frees it when
	// the mount goes. Until then our descriptor does.
	defer loop.Close()
	if err := unix.Mount(loop.Name(), dir, "squashfs", mountFlags, ""); err != nil {
		detachLoop(loop)
		return "", mountError(loop.Name(), err)
	}
	return loop.Name(), nil
}

// mountError says why mounting the squashfs on dev failed, and how to fix it.
func mountError(dev string, err error) error {
	switch {
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("mount %s: %w: the kernel cannot mount squashfs (%v); load the squashfs module: modprobe squashfs", dev, api.ErrUnavailable, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("mount %s: %w: %v; fxd mounts images as root with CAP_SYS_ADMIN", dev, api.ErrUnavailable, err)
	}
	return fmt.Errorf("mount squashfs %s: %w", dev, err)
}

// unmount unmounts dir, lazily when a container still uses it (its loop
// device is then freed when the last user goes), and removes dir.
func (s *Store) unmount(dir string) error {
	err := unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		s.log.Warn().Str("dir", dir).Msg("image still in use at close; detached, its loop device is freed when the last user goes")
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: no longer mounted
		return fmt.Errorf("unmount image %s: %w", dir, err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn().Err(err).Str("dir", dir).Msg("remove mount point")
	}
	return nil
}

// unmountStale detaches what is mounted under Dir/mnt by a previous run
// that did not close the store, and removes the mount points.
func (s *Store) unmountStale() error {
	mnt, err := filepath.EvalSymlinks(s.mntDir()) // mountinfo has real paths
	if err != nil {
		return fmt.Errorf("resolve %s: %w", s.mntDir(), err)
	}
	points, err := mountsUnder(mnt)
	if err != nil {
		return err
	}
	for i := len(points) - 1; i >= 0; i-- { // the last mounted first
		if err := unix.Unmount(points[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount stale image %s: %w; unmount it by hand (umount -l)", points[i], err)
		}
		s.log.Warn().Str("dir", points[i]).Msg("unmounted an image left mounted by a previous run")
	}
	entries, err := os.ReadDir(s.mntDir())
	if err != nil {
		return fmt.Errorf("read %s: %w", s.mntDir(), err)
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(s.mntDir(), e.Name())); err != nil {
			return fmt.Errorf("remove stale mount point: %w; remove it by hand", err)
		}
	}
	return nil
}

// mountsUnder lists the mount points below dir, in the order of
// /proc/self/mountinfo (mount order).
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if p := unescapeMountinfo(fields[4]); strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	return points, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, …) of a
// path in /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
