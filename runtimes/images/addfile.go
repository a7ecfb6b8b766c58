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
func (s *Store) AddFile(ctx context.Context, name, owner string, a isolation.Account, path string, lim Limits) (Image, error) {
	if a.UID == 0 {
		return Image{}, fmt.Errorf("add image %s: reading files as uid 0 is AddSiteFile's job, for the admin: %w", name, api.ErrDenied)
	}
	return s.addFile(ctx, name, owner, path, lim, func() (*os.File, error) { return openAs(a, path) })
}

// AddSiteFile adds the SIF file at path (absolute) as the site image name,
// reading it as root: for the admin's `fxd runtime add` only. Of lim, the
// account bounds do not apply.
func (s *Store) AddSiteFile(ctx context.Context, name, path string, lim Limits) (Image, error) {
	return s.addFile(ctx, name, "", path, lim, func() (*os.File, error) { return openFile(path) })
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
// (api.ErrInvalid, api.ErrTooLarge past lim.MaxSize, api.ErrDenied for
// signatures or past the owner's bounds, api.ErrUnavailable when it would
// leave less than lim.MinFree) leaves nothing behind. path becomes the
// Source.
func (s *Store) addFile(ctx context.Context, name, owner, path string, lim Limits, open func() (*os.File, error)) (Image, error) {
	ref, err := newRef(name, owner)
	if err != nil {
		return Image{}, fmt.Errorf("add image: %w", err)
	}
	if !filepath.IsAbs(path) {
		return Image{}, fmt.Errorf("add image %s from %q: give the absolute path of the .sif file: %w", ref, path, api.ErrInvalid)
	}
	tmp, err := s.receiveFile(ctx, ref, owner, lim, open)
	if err != nil {
		return Image{}, fmt.Errorf("add image %s from %s: %w", ref, path, err)
	}
	img, err := s.add(ctx, ref, owner, tmp, path, lim)
	if err != nil {
		return Image{}, fmt.Errorf("add image %s from %s: %w", ref, path, err)
	}
	return img, nil
}

// openFile opens the file at path as root.
func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no such file; check the path: %w", api.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("open image file: %w", err)
	}
	return f, nil
}

// openAs opens the file at path with account a's permissions.
func openAs(a isolation.Account, path string) (*os.File, error) {
	f, err := isolation.OpenAs(a, path, os.O_RDONLY|syscall.O_NONBLOCK)
	if errors.Is(err, api.ErrDenied) {
		return nil, fmt.Errorf("make it readable by you (chmod u+r) and its directories searchable (chmod u+x): %w", err)
	}
	return f, err
}

// receiveFile copies the file open returns, which must be a regular file
// (not a FIFO or a device, which O_NONBLOCK kept from blocking the open),
// and closes it. Its size is checked against lim, and the bounds of ref's
// owner, before any byte is copied.
func (s *Store) receiveFile(ctx context.Context, ref, owner string, lim Limits, open func() (*os.File, error)) (received, error) {
	f, err := open()
	if err != nil {
		return received{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return received{}, fmt.Errorf("stat image file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return received{}, fmt.Errorf("not a regular file (%s); give the path of a .sif file: %w", fi.Mode(), api.ErrInvalid)
	}
	if lim.MaxSize > 0 && fi.Size() > lim.MaxSize {
		return received{}, tooLarge(lim.MaxSize)
	}
	if err := s.checkRoom(ref, owner, fi.Size(), lim); err != nil {
		return received{}, err
	}
	return s.receive(ctx, f, lim.MaxSize)
}
