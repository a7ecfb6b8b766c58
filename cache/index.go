package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// get reads the record of hex; found is false when the index has none.
func (s *Store) get(hex string) (r record, found bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEntries).Get(key(hex))
		if v == nil {
			return nil
		}
		found = true
		_, r, err = decode(key(hex), v)
		return err
	})
	return r, found, indexErr(err)
}

// scan calls fn for every record, in digest order.
func (s *Store) scan(fn func(hex string, r record) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			hex, r, err := decode(k, v)
			if err != nil {
				return err
			}
			return fn(hex, r)
		})
	})
	return indexErr(err)
}

// update runs fn in a write transaction of the index, then writes there
// the uses that pins noted since the last one. The caller holds s.mu.
func (s *Store) update(fn func(b *bolt.Bucket) error) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if err := fn(b); err != nil {
			return err
		}
		return s.writeTouches(b)
	})
	if err != nil {
		return indexErr(err)
	}
	clear(s.touched)
	return nil
}

// writeTouches moves the last uses of every touched record forward, its
// own and its readers'. A record gone meanwhile is skipped.
func (s *Store) writeTouches(b *bolt.Bucket) error {
	for hex, u := range s.touched {
		v := b.Get(key(hex))
		if v == nil {
			continue
		}
		_, r, err := decode(key(hex), v)
		if err != nil {
			continue
		}
		r.used("", u.at)
		for account, t := range u.by {
			r.used(account, t)
		}
		if err := put(b, hex, r); err != nil {
			return err
		}
	}
	return nil
}

// put writes the record of hex.
func put(b *bolt.Bucket, hex string, r record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(key(hex), v)
}

// deleteEntry removes the entry of hex from the index, then its blob. The
// caller holds s.mu and has checked that nobody reads or pins it.
func (s *Store) deleteEntry(hex string) error {
	if err := s.update(func(b *bolt.Bucket) error { return b.Delete(key(hex)) }); err != nil {
		return fmt.Errorf("remove cache entry sha256:%s: %w", hex, err)
	}
	s.removeBlob(hex)
	return nil
}

// removeBlob removes the blob of hex, whose entry is gone from the index.
// A failure is logged: the blob is then an orphan that the next Open
// removes. The caller holds s.mu.
func (s *Store) removeBlob(hex string) {
	if err := os.Remove(s.blobPath(hex)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn().Err(err).Str("digest", "sha256:"+hex).Msg("remove cache blob; the next start removes it")
	}
}

// indexErr says that the store is closed when the index is.
func indexErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return errClosed()
	}
	return err
}
