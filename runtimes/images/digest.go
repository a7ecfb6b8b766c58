package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
)

// HasDigest returns the image stored for digest under the name AddDigest
// gives it, if the store holds it.
func (s *Store) HasDigest(digest string) (Image, bool) {
	sum, err := parseDigest(digest)
	if err != nil {
		return Image{}, false
	}
	img, err := s.Get(sum, "")
	if err != nil || img.Digest != digest {
		return Image{}, false
	}
	return img, true
}

// AddDigest stores the image with digest read from r (size bytes, from
// source), as a node agent does with an image its daemon sends: the
// digest is what the daemon checked, so the bytes must hash to it or
// they are refused (api.ErrInvalid). The image is checked as any other
// (sif.Inspect, and its root file system scanned) and named by the hex
// of its digest, a site image of this store. Adding a digest the store
// holds already returns the image it has. A refused image leaves nothing
// behind.
func (s *Store) AddDigest(ctx context.Context, digest string, r io.Reader, size int64, source string, lim Limits) (Image, error) {
	sum, err := parseDigest(digest)
	if err != nil {
		return Image{}, fmt.Errorf("add image %s: %w", digest, err)
	}
	if img, ok := s.HasDigest(digest); ok {
		return img, nil
	}
	if size <= 0 || lim.MaxSize > 0 && size > lim.MaxSize {
		return Image{}, fmt.Errorf("add image %s: size %d: %w", digest, size, api.ErrInvalid)
	}
	if err := s.checkRoom(sum, "", size, lim); err != nil {
		return Image{}, fmt.Errorf("add image %s: %w", digest, err)
	}
	tmp, err := s.receive(ctx, io.LimitReader(r, size), 0)
	if err != nil {
		return Image{}, fmt.Errorf("add image %s from %s: %w", digest, source, err)
	}
	if tmp.digest != digest {
		os.Remove(tmp.path)
		return Image{}, fmt.Errorf("add image %s from %s: the bytes received hash to %s: %w", digest, source, tmp.digest, api.ErrInvalid)
	}
	img, err := s.add(ctx, sum, "", tmp, source, lim)
	if err != nil {
		return Image{}, fmt.Errorf("add image %s from %s: %w", digest, source, err)
	}
	return img, nil
}

// OpenDigest opens the blob of digest for reading, if a name still
// gives it (api.ErrNotFound if none does). The caller closes it. The
// blob stays readable through the open file even if its last name is
// removed meanwhile.
func (s *Store) OpenDigest(digest string) (*os.File, error) {
	sum, err := parseDigest(digest)
	if err != nil {
		return nil, err
	}
	s.mu.Lock() // no blob is removed while held
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed()
	}
	found := false
	if err := s.db.View(func(tx *bolt.Tx) error { _, found = named(tx, digest); return nil }); err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("image %s: %w", digest, api.ErrNotFound)
	}
	f, err := os.Open(s.blobPath(sum))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("image %s: %w: its blob is missing", digest, api.ErrNotFound)
	}
	return f, err
}
