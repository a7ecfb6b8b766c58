package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
)

// record is the value of one name in the images bucket (see doc.go).
type record struct {
	Owner        string    `json:"owner,omitempty"`
	Digest       string    `json:"digest"`
	Size         int64     `json:"size"`
	Arch         string    `json:"arch"`
	Signers      []string  `json:"signers,omitempty"`
	Source       string    `json:"source,omitempty"`
	Added        time.Time `json:"added"`
	RootfsOffset int64     `json:"rootfs_offset"`
	RootfsSize   int64     `json:"rootfs_size"`
}

// hex is the hex part of the record's (checked) digest.
func (r record) hex() string { return r.Digest[len("sha256:"):] }

// image is the record as the Image named ref.
func (r record) image(ref string) Image {
	return Image{Name: ref, Owner: r.Owner, Digest: r.Digest, Size: r.Size, Arch: r.Arch,
		Signers: r.Signers, Source: r.Source, Added: r.Added}
}

// decode reads the record of ref and checks what paths and mounts are
// made from.
func decode(ref string, v []byte) (record, error) {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("image %q: record damaged: %w; remove and add the image again", ref, err)
	}
	if _, err := parseDigest(r.Digest); err != nil || r.Size <= 0 || r.RootfsOffset < 0 || r.RootfsSize <= 0 || r.RootfsOffset > r.Size-r.RootfsSize {
		return r, fmt.Errorf("image %q: record damaged (digest %q, size %d, root file system at %d+%d); remove and add the image again",
			ref, r.Digest, r.Size, r.RootfsOffset, r.RootfsSize)
	}
	return r, nil
}

// visible reports whether account sees images owned by owner: everyone
// sees site images, an account its own, the admin ("") all.
func visible(owner, account string) bool {
	return account == "" || owner == "" || owner == account
}

// notFound is the answer for a name that does not exist or that account
// may not see: the same, so it gives no hint which.
func notFound(ref string) error {
	return fmt.Errorf("image %q: %w; fx runtimes lists the images you can use", ref, api.ErrNotFound)
}

// Get returns the image that a caller running as account means by ref:
// "python" is the site image, "alice/python" alice's own image, which only
// account "alice" sees (others get api.ErrNotFound, as for a name that does
// not exist). Account "" is the admin, who sees every image.
func (s *Store) Get(ref, account string) (Image, error) {
	owner, _, err := parseRef(ref)
	if err != nil {
		return Image{}, fmt.Errorf("get image: %w", err)
	}
	if !visible(owner, account) {
		return Image{}, fmt.Errorf("get image: %w", notFound(ref))
	}
	var r record
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketImages).Get([]byte(ref))
		if v == nil {
			return notFound(ref)
		}
		var derr error
		r, derr = decode(ref, v)
		return derr
	})
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		err = errClosed()
	}
	if err != nil {
		return Image{}, fmt.Errorf("get image: %w", err)
	}
	return r.image(ref), nil
}

// List returns the site images and account's own images, sorted by name.
// Account "" is the admin: List returns every image.
func (s *Store) List(account string) ([]Image, error) {
	var list []Image
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			r, err := decode(string(k), v)
			if err != nil {
				return err
			}
			if visible(r.Owner, account) {
				list = append(list, r.image(string(k)))
			}
			return nil
		})
	})
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		err = errClosed()
	}
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	return list, nil
}

// Remove deletes the name ref. Account may remove its own images; only the
// admin (account "") removes site images or other accounts' images, which
// are not found for anyone else. The blob goes when no other name uses it
// and it is not mounted (then Close removes it).
func (s *Store) Remove(ref, account string) error {
	owner, _, err := parseRef(ref)
	if err != nil {
		return fmt.Errorf("remove image: %w", err)
	}
	if !visible(owner, account) {
		return fmt.Errorf("remove image: %w", notFound(ref))
	}
	if account != "" && owner != account {
		return fmt.Errorf("remove image %q: %w: it is a site image; only the site admin removes it (fxd runtime rm)", ref, api.ErrDenied)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("remove image %q: %w", ref, errClosed())
	}
	var old record
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		v := b.Get([]byte(ref))
		if v == nil {
			return notFound(ref)
		}
		old, _ = decode(ref, v) // a damaged record is removed all the same
		return b.Delete([]byte(ref))
	})
	if err != nil {
		return fmt.Errorf("remove image: %w", err)
	}
	s.log.Info().Str("runtime", ref).Str("digest", old.Digest).Msg("image removed")
	if _, err := parseDigest(old.Digest); err == nil {
		s.unmountUnused(old.hex())
		s.dropBlob(old.hex())
	}
	return nil
}

// named returns a record that gives digest a name, if any. Images are few
// (tens to hundreds), so it scans.
func named(tx *bolt.Tx, digest string) (record, bool) {
	c := tx.Bucket(bucketImages).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if r, err := decode(string(k), v); err == nil && r.Digest == digest {
			return r, true
		}
	}
	return record{}, false
}

// dropBlob removes the blob hex when no name uses it and it is not
// mounted. The caller holds s.mu. A failure is logged: the blob is then a
// stray that the next Open removes.
func (s *Store) dropBlob(hex string) {
	if _, mounted := s.mounts[hex]; mounted {
		return
	}
	used := true
	err := s.db.View(func(tx *bolt.Tx) error {
		_, used = named(tx, "sha256:"+hex)
		return nil
	})
	if err != nil || used {
		return
	}
	if err := os.Remove(s.blobPath(hex)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn().Err(err).Str("digest", "sha256:"+hex).Msg("remove unused image blob; the next start removes it")
		return
	}
	s.log.Info().Str("digest", "sha256:"+hex).Msg("unused image blob removed")
}
