package cache

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/boltfile"
	"fxd.dev/fxd/internal/privdir"
	"fxd.dev/fxd/internal/units"
)

// Config configures a Store.
type Config struct {
	// Dir is the cache's directory, <state_dir>/cache. Open creates it
	// (mode 0700) and refuses it when it is a symlink or owned by another
	// user than the one fxd runs as.
	Dir string
	// MaxBytes caps the bytes of all blobs: a put past it first evicts the
	// least recently used unpinned entries. 0 caps nothing.
	MaxBytes int64
	// MinFree is the space a put must leave free on Dir's file system: a
	// put evicts entries to keep it, and is refused when it cannot. 0
	// keeps none.
	MinFree int64
}

// Store is the node-local data cache: blobs under Config.Dir and their
// index. It is safe for concurrent use. It runs as the daemon's user
// (root); the accounts it names are only labels to it.
type Store struct {
	c      Config // Dir cleaned
	db     *bolt.DB
	log    zerolog.Logger
	now    func() time.Time                // time.Now; tests set a clock
	free   func(dir string) (int64, error) // freeSpace; tests set what a real file system cannot be made to show
	stages atomic.Int64                    // private copies made, which tests count
	// freeEvery is how many bytes of a private copy are written between
	// two looks at the free space (freeCheckEvery; tests lower it).
	freeEvery int64

	// mu orders every step that creates or removes a blob or changes the
	// index, so that a pinned entry is never evicted and a blob never
	// goes while an entry names it. It guards the fields below. It is
	// never held while bytes are read.
	mu      sync.Mutex
	pins    map[string]int     // by hex: running uses
	touched map[string]use     // by hex: uses not yet written to the index
	flights map[string]*flight // by hex: puts of a known digest under way
	closed  bool
}

// schemaVersion is the version of the bucket tree drawn in doc.go.
const schemaVersion = 1

// bucketEntries holds one record per digest (see doc.go).
var bucketEntries = []byte("entries")

// Open opens the cache in c.Dir, creating it if needed, and makes the
// index and the blobs agree after a crash (see the package doc). Only one
// process may have a store open; Open waits a second for another to let
// go, then fails with api.ErrUnavailable naming it.
func Open(c Config, log zerolog.Logger) (*Store, error) {
	c, err := c.check()
	if err != nil {
		return nil, fmt.Errorf("open cache: %w", err)
	}
	log = log.With().Str("component", "cache").Logger()
	for _, d := range []string{c.Dir, filepath.Join(c.Dir, "blobs"), filepath.Join(c.Dir, "blobs", "sha256"), filepath.Join(c.Dir, "tmp")} {
		if err := privdir.Ensure(d, "cache", log); err != nil {
			return nil, fmt.Errorf("open cache: %w", err)
		}
	}
	db, err := boltfile.Open(filepath.Join(c.Dir, "index.db"), "cache index", schemaVersion, [][]byte{bucketEntries}, bolt.Options{}, log)
	if err != nil {
		return nil, fmt.Errorf("open cache: %w", err)
	}
	s := &Store{c: c, db: db, log: log, now: time.Now, free: freeSpace, freeEvery: freeCheckEvery,
		pins: map[string]int{}, touched: map[string]use{}, flights: map[string]*flight{}}
	n, total, err := s.recover() // with the index locked, before anyone shares s
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open cache %s: %w", c.Dir, err)
	}
	s.log.Info().Str("dir", c.Dir).Int("entries", n).Str("size", units.Bytes(total)).
		Int64("max_bytes", c.MaxBytes).Int64("min_free", c.MinFree).Msg("cache open")
	return s, nil
}

// check returns c cleaned, or says what is wrong with it.
func (c Config) check() (Config, error) {
	if c.Dir == "" || !filepath.IsAbs(c.Dir) {
		return c, fmt.Errorf("directory %q: %w: give an absolute path, e.g. <state_dir>/cache", c.Dir, api.ErrInvalid)
	}
	c.Dir = filepath.Clean(c.Dir)
	if c.MaxBytes < 0 || c.MinFree < 0 {
		return c, fmt.Errorf("size cap %d, min free %d: %w: give sizes of 0 (none) or more", c.MaxBytes, c.MinFree, api.ErrInvalid)
	}
	return c, nil
}

// Close writes the uses pins noted to the index and closes it. Pins still
// held keep nothing after Close: releasing them does nothing, and an
// entry removed while pinned goes at the next Open. Calls after the first
// return nil; other methods then fail with api.ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if len(s.touched) > 0 {
		if err := s.update(func(*bolt.Bucket) error { return nil }); err != nil {
			errs = append(errs, fmt.Errorf("write last uses: %w", err))
		}
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close cache index: %w", err))
	}
	return errors.Join(errs...)
}

// errClosed is returned by methods called after Close.
func errClosed() error {
	return fmt.Errorf("the cache is closed: %w", api.ErrUnavailable)
}

// Paths under Dir (see doc.go).
func (s *Store) blobDir() string            { return filepath.Join(s.c.Dir, "blobs", "sha256") }
func (s *Store) blobPath(hex string) string { return filepath.Join(s.blobDir(), hex) }
func (s *Store) tmpDir() string             { return filepath.Join(s.c.Dir, "tmp") }
