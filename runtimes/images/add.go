package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/runtimes/sif"
)

// received is a private copy of an image in Dir/tmp, not yet checked.
type received struct {
	path   string
	digest string // of the bytes as they were received
}

// newRef checks name and owner and returns the reference they make.
func newRef(name, owner string) (string, error) {
	if err := api.CheckName("image name", name); err != nil {
		return "", err
	}
	if owner != "" {
		if err := checkOwner(owner); err != nil {
			return "", err
		}
	}
	return refOf(owner, name), nil
}

// receive copies r, at most maxSize bytes when maxSize > 0, into a new
// private file in Dir/tmp, hashing it on the way.
func (s *Store) receive(ctx context.Context, r io.Reader, maxSize int64) (_ received, err error) {
	f, err := os.CreateTemp(s.tmpDir(), "add-*.sif") // mode 0600
	if err != nil {
		return received{}, fmt.Errorf("create private copy: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if maxSize > 0 {
		r = io.LimitReader(r, maxSize+1)
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(f, h), ctxReader{ctx, r}, make([]byte, 1<<20))
	if err != nil {
		return received{}, fmt.Errorf("copy image: %w", err)
	}
	if maxSize > 0 && n > maxSize {
		return received{}, tooLarge(maxSize)
	}
	if err := f.Sync(); err != nil {
		return received{}, fmt.Errorf("sync private copy: %w", err)
	}
	if err := f.Close(); err != nil {
		return received{}, fmt.Errorf("close private copy: %w", err)
	}
	return received{path: f.Name(), digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}, nil
}

// tooLarge says an image is past maxSize bytes.
func tooLarge(maxSize int64) error {
	return fmt.Errorf("the image is larger than containers.max_image_size (%d bytes); make it smaller (fewer files, zstd compression), or the site admin raises the limit: %w", maxSize, api.ErrTooLarge)
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// add checks the private copy tmp and stores it under ref; the copy is
// gone when add returns.
func (s *Store) add(ctx context.Context, ref, owner string, tmp received, source string, lim Limits) (Image, error) {
	im, signers, err := s.check(ctx, tmp)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		os.Remove(tmp.path)
		return Image{}, err
	}
	rec := record{Owner: owner, Digest: tmp.digest, Size: im.Size, Arch: im.Arch, Signers: signers,
		Source: source, Added: time.Now().UTC(), RootfsOffset: im.Rootfs.Offset, RootfsSize: im.Rootfs.Size}
	if err := s.commit(ref, rec, tmp.path, lim); err != nil {
		return Image{}, err
	}
	s.log.Info().Str("runtime", ref).Str("digest", rec.Digest).Int64("size", rec.Size).Str("source", source).Msg("image added")
	return rec.image(ref), nil
}

// check inspects, verifies when required, and scans the root file
// system of the private copy.
func (s *Store) check(ctx context.Context, tmp received) (sif.Image, []string, error) {
	im, err := sif.Inspect(ctx, tmp.path)
	if err != nil {
		return sif.Image{}, nil, err
	}
	var signers []string
	if s.c.RequireSigned {
		if signers, err = sif.Verify(ctx, tmp.path, s.c.KeyRing); err != nil {
			return sif.Image{}, nil, err
		}
	}
	if err := s.scanRootfs(ctx, tmp.path, im.Rootfs.Offset, im.Rootfs.Size); err != nil {
		return sif.Image{}, nil, err
	}
	return im, signers, nil
}

// commit moves the checked copy tmp to its blob, or removes it when the
// blob exists, and points ref at the blob, unless that takes rec's owner
// past lim. The blob ref pointed at before goes if now unused.
func (s *Store) commit(ref string, rec record, tmp string, lim Limits) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		os.Remove(tmp)
		return errClosed()
	}
	// Under s.mu, so adds racing each other cannot all pass.
	if err := s.db.View(func(tx *bolt.Tx) error { return ownerRoom(tx, ref, rec.Owner, rec.Size, lim) }); err != nil {
		os.Remove(tmp)
		return err
	}
	sum := rec.hex()
	created, err := s.placeBlob(sum, tmp)
	if err != nil {
		return err
	}
	var old record
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		if v := b.Get([]byte(ref)); v != nil {
			old, _ = decode(ref, v) // a damaged record is replaced all the same
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(ref), v)
	})
	if err != nil {
		if created {
			s.dropBlob(sum)
		}
		return fmt.Errorf("record image: %w", err)
	}
	if _, err := parseDigest(old.Digest); err == nil && old.Digest != rec.Digest {
		s.unmountUnused(old.hex())
		s.dropBlob(old.hex())
	}
	return nil
}

// placeBlob renames tmp to the blob sum (hex), or removes tmp when the
// blob exists already (the same bytes, stored before), and reports whether
// it made the blob. The caller holds s.mu.
func (s *Store) placeBlob(sum, tmp string) (bool, error) {
	blob := s.blobPath(sum)
	_, err := os.Lstat(blob)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		os.Remove(tmp)
		if err != nil {
			return false, fmt.Errorf("check blob: %w", err)
		}
		return false, nil
	}
	if err := os.Rename(tmp, blob); err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("store blob: %w", err)
	}
	if d, err := os.Open(s.blobDir()); err == nil { // make the rename durable before the record
		d.Sync()
		d.Close()
	}
	return true, nil
}
