package images

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/units"
)

// Limits bound what one add may store; a zero field bounds nothing.
type Limits struct {
	// MaxSize bounds the bytes of one image (containers.max_image_size).
	MaxSize int64
	// MaxImages bounds the images one account owns, MaxBytes their bytes,
	// each image counted in full even when its bytes are shared
	// (containers.max_user_images, max_user_image_bytes). Site images
	// count against neither.
	MaxImages int
	MaxBytes  int64
	// MinFree is the space an add must leave free on the file system of
	// Dir (containers.min_free_space).
	MinFree int64
}

// checkRoom says whether an image of size bytes fits under ref's name:
// within the bounds of its owner, and in the free space of Dir's file
// system. commit checks the owner's bounds again, under s.mu.
func (s *Store) checkRoom(ref, owner string, size int64, lim Limits) error {
	if err := s.db.View(func(tx *bolt.Tx) error { return ownerRoom(tx, ref, owner, size, lim) }); err != nil {
		return err
	}
	if lim.MinFree <= 0 {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.c.Dir, &st); err != nil {
		return fmt.Errorf("free space of %s: %w", s.c.Dir, err)
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free-size < lim.MinFree {
		return fmt.Errorf("the image store's file system (%s) has %s free; this %s image would leave less than containers.min_free_space (%s); "+
			"the site admin frees space there or lowers min_free_space: %w",
			s.c.Dir, units.Bytes(free), units.Bytes(size), units.Bytes(lim.MinFree), api.ErrUnavailable)
	}
	return nil
}

// ownerRoom says whether owner may give ref an image of size bytes: the
// images owner has under other names, and their bytes, plus this one stay
// within lim. A site image (owner "") always may.
func ownerRoom(tx *bolt.Tx, ref, owner string, size int64, lim Limits) error {
	if owner == "" || lim.MaxImages <= 0 && lim.MaxBytes <= 0 {
		return nil
	}
	n, bytes := 0, int64(0)
	err := tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
		if string(k) == ref { // replaced by the new image
			return nil
		}
		if r, err := decode(string(k), v); err == nil && r.Owner == owner {
			n++
			bytes += r.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read image index: %w", err)
	}
	if lim.MaxImages > 0 && n+1 > lim.MaxImages {
		return fmt.Errorf("account %s owns %d images, as many as containers.max_user_images allows; remove one you no longer use (fx runtime rm NAME), or replace one by adding under its name: %w",
			owner, n, api.ErrDenied)
	}
	if lim.MaxBytes > 0 && bytes+size > lim.MaxBytes {
		return fmt.Errorf("account %s's images would hold %s with this one (%s), past containers.max_user_image_bytes (%s); remove images you no longer use (fx runtime rm NAME): %w",
			owner, units.Bytes(bytes+size), units.Bytes(size), units.Bytes(lim.MaxBytes), api.ErrDenied)
	}
	return nil
}
