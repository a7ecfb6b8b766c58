package images

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/boltfile"
	"fxd.dev/fxd/internal/privdir"
)

// Image is one stored SIF image under one name.
type Image struct {
	// Name is "python" for a site image, or "alice/python" for an image
	// owned by account alice: the reference Get and Remove take.
	Name string
	// Owner is "" for a site image, else the owning account's name.
	Owner string
	// Digest is "sha256:" and the hex sha256 of the whole SIF file.
	Digest string
	// Size is the file size in bytes.
	Size int64
	// Arch is the root file system's architecture, GOARCH-style.
	Arch string
	// Signers are the fingerprints (upper-case hex) of the keys whose
	// signatures verified when the image was added; empty unless the store
	// requires signed images.
	Signers []string
	// Source is the path (or other origin) the image was added from, for
	// people.
	Source string
	// Added is when the name was last given these bytes.
	Added time.Time
}

// Config configures a Store.
type Config struct {
	// Dir is the repository's directory, e.g. <state_dir>/images. Open
	// creates it (mode 0700) and refuses it when it is a symlink or owned
	// by another user than the one fxd runs as (root).
	Dir string
	// KeyRing holds the public keys whose signatures the site trusts; used
	// when RequireSigned.
	KeyRing openpgp.KeyRing
	// RequireSigned refuses images whose signatures do not verify against
	// KeyRing.
	RequireSigned bool
}

// Store is the runtime repository's image store: SIF files kept by
// content address under Dir, names for them in a bbolt index, and
// read-only mounts of their root file systems. It is safe for concurrent
// use. It needs root: it reads files as other accounts and mounts images.
type Store struct {
	c   Config // Dir cleaned
	db  *bolt.DB
	log zerolog.Logger

	// mu orders the steps that create or remove blobs (so a blob is never
	// removed while a name or a mount takes it) and guards mounts and
	// closed. It is never held while copying, inspecting or mounting.
	mu     sync.Mutex
	mounts map[string]*mount // by digest hex: mounted, or being mounted
	closed bool
}

// schemaVersion is the version of the bucket tree drawn in doc.go.
const schemaVersion = 1

// Bucket names and meta keys (see doc.go).
var (
	bucketImages = []byte("images")
)

// Open opens the image store in c.Dir, creating it if needed, and brings
// it back to a consistent state after a crash: it removes partial copies,
// unmounts images a previous run left mounted, drops names whose blob is
// gone and removes blobs no name uses. Only one process may have a store
// open; Open waits a second for another to let go, then fails with
// api.ErrUnavailable.
func Open(c Config, log zerolog.Logger) (*Store, error) {
	c, err := c.check()
	if err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	log = log.With().Str("component", "runtimes.images").Logger()
	for _, d := range []string{c.Dir, filepath.Join(c.Dir, "blobs"), filepath.Join(c.Dir, "blobs", "sha256"), filepath.Join(c.Dir, "tmp"), filepath.Join(c.Dir, "mnt")} {
		if err := privdir.Ensure(d, "image", log); err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
	}
	db, err := boltfile.Open(filepath.Join(c.Dir, "images.db"), "image index", schemaVersion, [][]byte{bucketImages}, bolt.Options{}, log)
	if err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	s := &Store{c: c, db: db, log: log, mounts: map[string]*mount{}}
	if err := s.recover(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open image store %s: %w", c.Dir, err)
	}
	s.log.Info().Str("dir", c.Dir).Bool("require_signed", c.RequireSigned).Msg("image store open")
	return s, nil
}

// check returns c with defaults applied, or says what is wrong with it.
func (c Config) check() (Config, error) {
	if c.Dir == "" || !filepath.IsAbs(c.Dir) {
		return c, fmt.Errorf("directory %q: %w: give an absolute path, e.g. <state_dir>/images", c.Dir, api.ErrInvalid)
	}
	c.Dir = filepath.Clean(c.Dir)
	if c.RequireSigned {
		if el, ok := c.KeyRing.(openpgp.EntityList); c.KeyRing == nil || ok && len(el) == 0 {
			return c, fmt.Errorf("%w: signed images are required but the keyring holds no keys; give the public keys the site trusts, or stop requiring signatures", api.ErrInvalid)
		}
	}
	return c, nil
}

// Close unmounts every image the store mounted (lazily, when a container
// still uses one), removes blobs that only a mount kept, and closes the
// index. Calls after the first return nil; other methods then fail with
// api.ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	pending := make([]*mount, 0, len(s.mounts))
	for _, m := range s.mounts {
		pending = append(pending, m)
	}
	s.mu.Unlock()
	for _, m := range pending { // mounts under way finish first
		<-m.done
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for hex, m := range s.mounts {
		if err := s.unmount(m.dir); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(s.mounts, hex)
		s.dropBlob(hex)
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close image index: %w", err))
	}
	return errors.Join(errs...)
}

// errClosed is returned by methods called after Close.
func errClosed() error {
	return fmt.Errorf("image store is closed: %w", api.ErrUnavailable)
}

// Paths under Dir (see doc.go).
func (s *Store) blobPath(hex string) string { return filepath.Join(s.c.Dir, "blobs", "sha256", hex) }
func (s *Store) blobDir() string            { return filepath.Join(s.c.Dir, "blobs", "sha256") }
func (s *Store) tmpDir() string             { return filepath.Join(s.c.Dir, "tmp") }
func (s *Store) mntDir() string             { return filepath.Join(s.c.Dir, "mnt") }
