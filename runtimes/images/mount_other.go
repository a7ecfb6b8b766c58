//go:build !linux

package images

import (
	"context"
	"fmt"

	"fxd.dev/fxd/api"
)

// mount is one mounted image; never made on this system.
type mount struct {
	dir  string
	done chan struct{}
}

// Mount fails: images are mounted on Linux only.
func (s *Store) Mount(ctx context.Context, digest string) (string, func(), error) {
	return "", nil, fmt.Errorf("mount image %s: %w: images are mounted on Linux only", digest, api.ErrUnavailable)
}

func (s *Store) unmount(dir string) error { return nil }

func (s *Store) unmountUnused(sum string) {}

func (s *Store) unmountStale() error { return nil }

// scanRootfs fails: images are mounted on Linux only.
func (s *Store) scanRootfs(ctx context.Context, file string, off, size int64) error {
	return fmt.Errorf("scan image: %w: images are mounted on Linux only", api.ErrUnavailable)
}
