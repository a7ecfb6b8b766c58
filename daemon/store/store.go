package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"fxd.dev/fxd/api"
)

// schemaVersion is the version of the bucket tree drawn in doc.go.
const schemaVersion = 1

// lockTimeout is how long Open waits for another process to release the file.
const lockTimeout = time.Second

// Bucket names and meta keys (see doc.go).
var (
	bucketMeta       = []byte("meta")
	bucketTasks      = []byte("tasks")
	bucketInputs     = []byte("inputs")
	bucketActive     = []byte("active")
	bucketExpiry     = []byte("expiry")
	bucketFunctions  = []byte("functions")
	bucketFnVersions = []byte("fnversions")

	keySchema = []byte("schema")
)

var allBuckets = [][]byte{bucketMeta, bucketTasks, bucketInputs, bucketActive, bucketExpiry, bucketFunctions, bucketFnVersions}

// Record is a task as stored: its status and result plus what the daemon
// needs to run it again.
type Record struct {
	Task     api.Task
	Identity string // who submitted it, for audit
	Input    []byte // kept in a separate bucket; dropped when the task becomes final
}

// Store is the durable task and function store. It is safe for concurrent
// use; writes from many goroutines share transactions (group commit).
type Store struct {
	db   *bolt.DB
	path string
	log  zerolog.Logger

	ops       chan *op      // to the committer; unbuffered
	quit      chan struct{} // closed by Close
	stopped   chan struct{} // closed when the committer has returned
	commits   atomic.Int64  // transactions committed by the committer (benchmarks report tasks per commit)
	closeOnce sync.Once
	closeErr  error
}

// Open opens the store file at path, creating it (mode 0600) if absent.
// It checks the schema version and refuses a file written by a newer fxd.
// Only one process may have the file open; Open waits a second for it.
func Open(path string, log zerolog.Logger) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        lockTimeout,
		NoFreelistSync: true, // rebuilt on open; halves what each commit writes
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open task store %s: state dir %s is in use by another fxd%s; stop it or give this one its own site.state_dir: %w",
			path, filepath.Dir(path), lockHolder(path), api.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("open task store %s: %w", path, err)
	}
	if err := tightenMode(path, log); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.Update(initSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open task store %s: %w", path, err)
	}
	s := &Store{
		db:      db,
		path:    path,
		log:     log.With().Str("component", "store").Logger(),
		ops:     make(chan *op),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go s.commitLoop()
	s.log.Info().Str("path", path).Int("schema", schemaVersion).Msg("task store open")
	return s, nil
}

// tightenMode makes an existing store file private to the daemon's user.
func tightenMode(path string, log zerolog.Logger) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat task store %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("chmod task store %s to 0600: %w", path, err)
	}
	log.Warn().Str("component", "store").Str("path", path).Str("mode", fi.Mode().Perm().String()).Msg("task store was readable by others; mode set to 0600")
	return nil
}

// initSchema creates the buckets of a new file, or checks the schema
// version of an existing one.
func initSchema(tx *bolt.Tx) error {
	if meta := tx.Bucket(bucketMeta); meta != nil {
		v := meta.Get(keySchema)
		if len(v) != 8 {
			return fmt.Errorf("meta.schema missing or damaged; restore the state dir from a backup: %w", api.ErrInvalid)
		}
		switch n := binary.BigEndian.Uint64(v); {
		case n > schemaVersion:
			return fmt.Errorf("schema version %d is newer than this fxd knows (%d); run the fxd that wrote it or a newer one: %w", n, schemaVersion, api.ErrInvalid)
		case n < schemaVersion:
			return fmt.Errorf("schema version %d has no migration to %d: %w", n, schemaVersion, api.ErrInvalid)
		}
	}
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keySchema) == nil {
		return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, schemaVersion))
	}
	return nil
}

// Close stops the committer, answering callers still waiting to send with
// api.ErrUnavailable, and closes the file. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.stopped
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close task store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Commits returns how many write transactions (each one fsync) the store
// has committed since Open; tasks written over commits is the batching.
func (s *Store) Commits() int64 { return s.commits.Load() }
