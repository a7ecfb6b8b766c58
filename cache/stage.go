package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/units"
)

// staged is a complete private copy of a put's bytes in Dir/tmp, flushed
// to disk, that is not a blob yet.
type staged struct {
	path string
	hex  string
	size int64
}

// stage copies r into a new private file in Dir/tmp (mode 0600 while it
// is written, 0644 once complete, inside 0700 directories), hashing it on
// the way, and flushes it to disk. It stops when the copy would leave less
// than Config.MinFree free (see spaceWriter). On failure the file is gone.
func (s *Store) stage(ctx context.Context, r io.Reader, p PutOptions) (_ staged, err error) {
	f, err := os.CreateTemp(s.tmpDir(), "put-*")
	if err != nil {
		return staged{}, fmt.Errorf("create private copy: %w", err)
	}
	s.stages.Add(1)
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	sum, n, err := s.copyHashed(ctx, &spaceWriter{s: s, w: f, size: p.Size, next: s.freeEvery}, r, p)
	if err != nil {
		return staged{}, err
	}
	if err := f.Chmod(0o644); err != nil {
		return staged{}, fmt.Errorf("chmod private copy: %w", err)
	}
	if err := f.Sync(); err != nil {
		return staged{}, fmt.Errorf("sync private copy: %w", err)
	}
	if err := f.Close(); err != nil {
		return staged{}, fmt.Errorf("close private copy: %w", err)
	}
	return staged{path: f.Name(), hex: sum, size: n}, nil
}

// hashOnly reads r to its end and returns the hex sha256 of what it read,
// keeping nothing: a put of bytes the cache holds shows so that the caller
// has them, without writing them again.
func (s *Store) hashOnly(ctx context.Context, r io.Reader, p PutOptions) (string, error) {
	sum, _, err := s.copyHashed(ctx, io.Discard, r, p)
	return sum, err
}

// copyHashed copies r to w until r ends, ctx is done or a limit is passed,
// and returns the hex sha256 and the number of bytes copied.
func (s *Store) copyHashed(ctx context.Context, w io.Writer, r io.Reader, p PutOptions) (string, int64, error) {
	limit, tooLarge := s.sizeLimit(p)
	if limit >= 0 {
		r = io.LimitReader(r, limit+1)
	}
	if p.Size > 0 {
		r = io.LimitReader(r, p.Size+1)
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), ctxReader{ctx, r}, make([]byte, 1<<20))
	if err != nil {
		return "", n, fmt.Errorf("copy data: %w", err)
	}
	if p.Size > 0 && n > p.Size {
		return "", n, fmt.Errorf("the data is longer than the %d bytes announced; send the size it has, or none: %w", p.Size, api.ErrInvalid)
	}
	if limit >= 0 && n > limit {
		return "", n, tooLarge
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// sizeLimit is the most bytes one put may hold (-1 for no limit) and the
// error that says it was passed: the smaller of p.MaxSize and the cache's
// cap, for an entry larger than the whole cache never fits.
func (s *Store) sizeLimit(p PutOptions) (int64, error) {
	switch {
	case p.MaxSize > 0 && (s.c.MaxBytes <= 0 || p.MaxSize <= s.c.MaxBytes):
		return p.MaxSize, fmt.Errorf("the data is larger than %s, the limit for one entry; send less, or ask the site admin for a higher limit: %w",
			units.Bytes(p.MaxSize), api.ErrTooLarge)
	case s.c.MaxBytes > 0:
		return s.c.MaxBytes, fmt.Errorf("the data is larger than the whole cache of this node (%s); the site admin raises the cache's size cap: %w",
			units.Bytes(s.c.MaxBytes), api.ErrTooLarge)
	}
	return -1, nil
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
