// Package boltfile opens the daemon's bbolt files the same way: one
// process at a time, private to the daemon's user, with a schema version
// that a newer file refuses to an older fxd. It is used by daemon/store and
// runtimes/images and imports only api among fxd packages.
package boltfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"fxd.dev/fxd/api"
)

// lockTimeout is how long Open waits for another process's lock.
const lockTimeout = time.Second

// Meta is the bucket that holds the schema version, under "schema".
var (
	Meta      = []byte("meta")
	keySchema = []byte("schema")
)

// Open opens the bbolt file at path (what names it for people: "task
// store"), creating it with mode 0600, and tightens an existing file to
// 0600. Only one process may hold it: Open waits a second, then fails with
// api.ErrUnavailable naming the process that holds it. A new file gets
// buckets (Meta first, holding version); an existing one must hold
// version: an older or newer one, or a damaged one, fails with
// api.ErrInvalid. opts may set more bolt options (the timeout is Open's).
func Open(path, what string, version uint64, buckets [][]byte, opts bolt.Options, log zerolog.Logger) (*bolt.DB, error) {
	opts.Timeout = lockTimeout
	db, err := bolt.Open(path, 0o600, &opts)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s %s: it is in use by another fxd%s; stop it or give this one its own site.state_dir: %w",
			what, path, lockHolder(path), api.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s %s: %w", what, path, err)
	}
	if err := tightenMode(path, what, log); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error { return initSchema(tx, version, buckets) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s %s: %w", what, path, err)
	}
	return db, nil
}

// tightenMode makes an existing file private to the daemon's user.
func tightenMode(path, what string, log zerolog.Logger) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s %s: %w", what, path, err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("chmod %s %s to 0600: %w", what, path, err)
	}
	log.Warn().Str("path", path).Str("mode", fi.Mode().Perm().String()).Msg(what + " was readable by others; mode set to 0600")
	return nil
}

// initSchema creates the buckets of a new file, or checks the schema
// version of an existing one.
func initSchema(tx *bolt.Tx, version uint64, buckets [][]byte) error {
	if meta := tx.Bucket(Meta); meta != nil {
		v := meta.Get(keySchema)
		if len(v) != 8 {
			return fmt.Errorf("meta.schema missing or damaged; restore the state dir from a backup: %w", api.ErrInvalid)
		}
		switch n := binary.BigEndian.Uint64(v); {
		case n > version:
			return fmt.Errorf("schema version %d is newer than this fxd knows (%d); run the fxd that wrote it or a newer one: %w", n, version, api.ErrInvalid)
		case n < version:
			return fmt.Errorf("schema version %d has no migration to %d: %w", n, version, api.ErrInvalid)
		}
	}
	for _, name := range append([][]byte{Meta}, buckets...) {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(Meta)
	if meta.Get(keySchema) == nil {
		return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, version))
	}
	return nil
}
