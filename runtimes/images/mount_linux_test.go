package images

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

// mountImage adds a busybox image to s and mounts it, skipping the test
// (failing it in CI) when the kernel cannot loop-mount squashfs.
func mountImage(t *testing.T, s *Store) (Image, string, func()) {
	t.Helper()
	testenv.RequireRoot(t)
	img := mustAdd(t, s, "python", "", testenv.BuildSIF(t))
	dir, release, err := s.Mount(t.Context(), img.Digest)
	if errors.Is(err, api.ErrUnavailable) {
		testenv.Unavailable(t, err.Error())
	}
	if err != nil {
		t.Fatalf("Mount(%s) = %v", img.Digest, err)
	}
	return img, dir, release
}

// mounted lists the mount points under the store's mnt directory.
func mounted(t *testing.T, s *Store) []string {
	t.Helper()
	mnt, err := filepath.EvalSymlinks(s.mntDir())
	if err != nil {
		t.Fatal(err)
	}
	points, err := mountsUnder(mnt)
	if err != nil {
		t.Fatal(err)
	}
	return points
}

// loopsOf lists the loop devices whose backing file is path (or was, if
// it has been deleted since).
func loopsOf(t *testing.T, path string) []string {
	t.Helper()
	real, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	real = filepath.Join(real, filepath.Base(path))
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var devs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), real) {
			devs = append(devs, strings.Split(f, "/")[3])
		}
	}
	return devs
}

// waitGone waits up to 5 s for the loop devices of path to be freed (the
// kernel frees an autoclear device as the last user goes).
func waitGone(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(loopsOf(t, path)) > 0 {
		if time.Now().After(deadline) {
			t.Errorf("loop devices %v still back %s", loopsOf(t, path), path)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// unmountAtEnd unmounts whatever is left under the store's mnt directory
// when the test ends, so that a failing test leaks no mount.
func unmountAtEnd(t *testing.T, s *Store) {
	mnt := s.mntDir()
	t.Cleanup(func() {
		real, err := filepath.EvalSymlinks(mnt)
		if err != nil {
			return
		}
		points, _ := mountsUnder(real)
		for _, p := range points {
			unix.Unmount(p, unix.MNT_DETACH)
		}
	})
}

func TestMount(t *testing.T) {
	testenv.RequireRoot(t)
	s := newStore(t, Config{})
	unmountAtEnd(t, s)
	img, dir, release := mountImage(t, s)
	blob := s.blobPath(strings.TrimPrefix(img.Digest, "sha256:"))

	if fi, err := os.Stat(filepath.Join(dir, "bin", "busybox")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s/bin/busybox: %v, %v; want the image's busybox", dir, fi, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write into the mounted image = %v, want EROFS", err)
	}
	devs := loopsOf(t, blob)
	if len(devs) != 1 {
		t.Fatalf("loop devices of %s = %v, want one", blob, devs)
	}
	if ro, err := os.ReadFile("/sys/block/" + devs[0] + "/ro"); err != nil || strings.TrimSpace(string(ro)) != "1" {
		t.Errorf("%s read-only = %q, %v; want 1", devs[0], ro, err)
	}
	if ac, err := os.ReadFile("/sys/block/" + devs[0] + "/loop/autoclear"); err != nil || strings.TrimSpace(string(ac)) != "1" {
		t.Errorf("%s autoclear = %q, %v; want 1", devs[0], ac, err)
	}

	var wg sync.WaitGroup
	releases := make([]func(), 4)
	for i := range releases {
		wg.Go(func() {
			d, rel, err := s.Mount(t.Context(), img.Digest)
			if err != nil || d != dir {
				t.Errorf("Mount again = %q, %v; want %q", d, err, dir)
				return
			}
			releases[i] = rel
		})
	}
	wg.Wait()
	if points := mounted(t, s); !slices.Equal(points, []string{dir}) {
		t.Errorf("mounts = %v, want one, at %s", points, dir)
	}
	if _, _, err := s.Mount(t.Context(), "sha256:"+strings.Repeat("0", 64)); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Mount(unknown digest) = %v, want api.ErrNotFound", err)
	}
	// A named image stays mounted when its users are gone, for the next.
	for _, rel := range releases {
		if rel != nil {
			rel()
			rel() // twice is once
		}
	}
	if points := mounted(t, s); !slices.Equal(points, []string{dir}) {
		t.Errorf("mounts after its users went = %v, want it kept at %s", points, dir)
	}

	// Removing the last name keeps the blob while it is mounted and used,
	// and the last user's release unmounts it and removes the blob.
	if err := s.Remove("python", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(blob); err != nil {
		t.Errorf("blob of a mounted image after Remove: %v; want it kept", err)
	}
	release()
	if points := mounted(t, s); len(points) != 0 {
		t.Errorf("mounts after the last user of an unnamed image went = %v, want none", points)
	}
	waitGone(t, blob)
	if _, err := os.Stat(blob); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unnamed blob after its last user went: %v; want it removed", err)
	}

	// An image removed while mounted and unused is unmounted at once;
	// Close unmounts the rest.
	img, dir, release = mountImage(t, s)
	release()
	if err := s.Remove("python", ""); err != nil {
		t.Fatal(err)
	}
	if points := mounted(t, s); len(points) != 0 {
		t.Errorf("mounts after Remove of an unused image = %v, want none", points)
	}
	img, dir, _ = mountImage(t, s)
	blob = s.blobPath(strings.TrimPrefix(img.Digest, "sha256:"))
	if err := s.Remove("python", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if points := mounted(t, s); len(points) != 0 {
		t.Errorf("mounts after Close = %v, want none", points)
	}
	waitGone(t, blob)
	if _, err := os.Stat(blob); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unnamed blob after Close: %v; want it removed", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point after Close: %v; want it removed", err)
	}
	if _, _, err := s.Mount(t.Context(), img.Digest); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("Mount after Close = %v, want api.ErrUnavailable", err)
	}
}

func TestMountStaleAfterCrash(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "images")
	crashed := newStore(t, Config{Dir: dir})
	unmountAtEnd(t, crashed)
	img, mnt, _ := mountImage(t, crashed)
	blob := crashed.blobPath(strings.TrimPrefix(img.Digest, "sha256:"))
	// A crash: the index lock goes with the process, the mount stays.
	crashed.mu.Lock()
	crashed.closed = true
	crashed.mu.Unlock()
	if err := crashed.db.Close(); err != nil {
		t.Fatal(err)
	}

	s := newStore(t, Config{Dir: dir})
	if points := mounted(t, s); len(points) != 0 {
		t.Errorf("mounts after reopen = %v, want the stale one gone", points)
	}
	waitGone(t, blob)
	if _, err := os.Stat(mnt); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale mount point: %v; want it removed", err)
	}
	again, _, err := s.Mount(t.Context(), img.Digest)
	if err != nil || again != mnt {
		t.Fatalf("Mount after reopen = %q, %v; want %q", again, err, mnt)
	}
	if _, err := os.Stat(filepath.Join(again, "bin", "busybox")); err != nil {
		t.Errorf("busybox in the image mounted again: %v", err)
	}
}

func TestMountFailureFreesLoop(t *testing.T) {
	testenv.RequireRoot(t)
	s := newStore(t, Config{})
	unmountAtEnd(t, s)
	img := mustAdd(t, s, "python", "", testenv.BuildSIF(t))
	sum := strings.TrimPrefix(img.Digest, "sha256:")
	// The SIF header where the squashfs should start: the mount fails
	// after the loop device was set up.
	rec := record{Digest: img.Digest, Size: img.Size, RootfsOffset: 0, RootfsSize: 4096}
	dir := filepath.Join(s.mntDir(), sum)
	if err := s.mount(sum, dir, rec); err == nil || !strings.Contains(err.Error(), "mount squashfs /dev/loop") {
		t.Fatalf("mount of a non-squashfs range = %v, want the mount refused", err)
	}
	waitGone(t, s.blobPath(sum))
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point after a failed mount: %v; want it removed", err)
	}
	if points := mounted(t, s); len(points) != 0 {
		t.Errorf("mounts = %v, want none", points)
	}
}
