package store

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/boltfile"
)

// schemaVersion is the version of the bucket tree drawn in doc.go.
const schemaVersion = 1

// Bucket names and meta keys (see doc.go).
var (
	bucketMeta       = boltfile.Meta
	bucketTasks      = []byte("tasks")
	bucketInputs     = []byte("inputs")
	bucketActive     = []byte("active")
	bucketExpiry     = []byte("expiry")
	bucketFunctions  = []byte("functions")
	bucketFnVersions = []byte("fnversions")

	keySchema = []byte("schema") // in meta, as internal/boltfile writes it
)

var allBuckets = [][]byte{bucketTasks, bucketInputs, bucketActive, bucketExpiry, bucketFunctions, bucketFnVersions}

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
	db, err := boltfile.Open(path, "task store", schemaVersion, allBuckets, bolt.Options{
		NoFreelistSync: true, // rebuilt on open; halves what each commit writes
		FreelistType:   bolt.FreelistMapType,
	}, log)
	if err != nil {
		return nil, err
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
