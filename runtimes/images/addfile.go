package images

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/isolation"
)

// AddFile adds the SIF file at path (absolute), opened with account a's
// permissions, never root's (isolation.OpenAs: a's UID, GID and groups
// check every directory on the way and the file). A file the account may
// not read fails with api.ErrDenied, a missing one with api.ErrNotFound,
// anything but a regular file with api.ErrInvalid.
// UID 0 is refused (api.ErrDenied): the admin's reads go through
// AddSiteFile. See addFile for the rest.
func (s *Store) AddFile(ctx context.Context, name, owner string, a isolation.Account, path string, maxSize int64) (Image, error) {
	if a.UID == 0 {
		return Image{}, fmt.Errorf("add image %s: reading files as uid 0 is AddSiteFile's job, for the admin: %w", name, api.ErrDenied)
	}
	return s.addFile(ctx, name, owner, path, func() (received, error) { return s.receiveAs(ctx, a, path, maxSize) })
}

// AddSiteFile adds the SIF file at path (absolute) as the site image name,
// reading it as root: for the admin's `fxd runtime add` only.
func (s *Store) AddSiteFile(ctx context.Context, name, path string, maxSize int64) (Image, error) {
	return s.addFile(ctx, name, "", path, func() (received, error) { return s.receiveFile(ctx, path, maxSize) })
}

// addFile stores the SIF file at path (read by receive) under name,
// owned by owner ("" for a site image, added by the admin; else the
// account's name, so the image is "owner/name"). Names are 1-64 of a-z 0-9
// . _ - starting with a letter or digit. The bytes are streamed into a
// private file in Dir/tmp while their sha256 is computed; that copy is then
// checked (sif.Inspect for this node's architecture, and sif.Verify when
// signed images are required) and moved to blobs/sha256/<hex>, or dropped
// when that blob exists already (two names for the same bytes share one
// blob). Re-adding a name points it at the new image; the old blob goes
// when no name uses it and it is not mounted. A refused image
// (api.ErrInvalid, api.ErrTooLarge past maxSize, or api.ErrDenied for
// signatures) leaves nothing behind. path becomes the Source.
func (s *Store) addFile(ctx context.Context, name, owner, path string, receive func() (received, error)) (Image, error) {
	ref, err := newRef(name, owner)
	if err != nil {
		return Image{}, fmt.Errorf("add image: %w", err)
	}
	if !filepath.IsAbs(path) {
		return Image{}, fmt.Errorf("add image %s from %q: give the absolute path of the .sif file: %w", ref, path, api.ErrInvalid)
	}
	tmp, err := receive()
	if err != nil {
		return Image{}, fmt.Errorf("add image %s from %s: %w", ref, path, err)
	}
	img, err := s.add(ctx, ref, owner, tmp, path)
	if err != nil {
		return Image{}, fmt.Errorf("add image %s from %s: %w", ref, path, err)
	}
	return img, nil
}

// receiveFile copies the regular file at path, opened as root.
func (s *Store) receiveFile(ctx context.Context, path string, maxSize int64) (received, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return received{}, fmt.Errorf("no such file; check the path: %w", api.ErrNotFound)
	case err != nil:
		return received{}, fmt.Errorf("open image file: %w", err)
	}
	return s.receiveOpen(ctx, f, maxSize)
}

// receiveAs copies the regular file at path, opened with account a's
// permissions.
func (s *Store) receiveAs(ctx context.Context, a isolation.Account, path string, maxSize int64) (received, error) {
	f, err := isolation.OpenAs(a, path, os.O_RDONLY|syscall.O_NONBLOCK)
	if errors.Is(err, api.ErrDenied) {
		return received{}, fmt.Errorf("make it readable by you (chmod u+r) and its directories searchable (chmod u+x): %w", err)
	}
	if err != nil {
		return received{}, err
	}
	return s.receiveOpen(ctx, f, maxSize)
}

// receiveOpen copies f, which must be a regular file (not a FIFO or a
// device, which O_NONBLOCK kept from blocking the open), and closes it.
func (s *Store) receiveOpen(ctx context.Context, f *os.File, maxSize int64) (received, error) {
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return received{}, fmt.Errorf("stat image file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return received{}, fmt.Errorf("not a regular file (%s); give the path of a .sif file: %w", fi.Mode(), api.ErrInvalid)
	}
	return s.receive(ctx, f, maxSize)
}
