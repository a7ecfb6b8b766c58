package cache

import (
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/internal/privdir"
)

// recover makes Dir agree with the index after a crash (see Open) and
// returns the entries and bytes left. It runs before the store is shared,
// with the index locked.
func (s *Store) recover() (int, int64, error) {
	if err := s.cleanTmp(); err != nil {
		return 0, 0, err
	}
	keep, total, err := s.reconcile()
	if err != nil {
		return 0, 0, err
	}
	if err := s.removeOrphans(keep); err != nil {
		return 0, 0, err
	}
	return len(keep), total, nil
}

// cleanTmp removes the private copies of puts a previous run left.
func (s *Store) cleanTmp() error {
	return privdir.Prune(s.tmpDir(), nil, "partial copy of a previous run", s.log)
}

// reconcile drops the records that are damaged, that no account reads any
// more, or whose blob is missing or of the wrong size, and returns the
// blobs of the others and their bytes.
func (s *Store) reconcile() (map[string]bool, int64, error) {
	keep := map[string]bool{}
	var drop [][]byte
	var total int64
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			hex, r, err := decode(k, v)
			switch {
			case err != nil:
				s.log.Warn().Err(err).Msg("damaged cache record dropped")
			case len(r.Readers) == 0:
				s.log.Info().Str("digest", string(k)).Msg("cache entry removed while pinned by the previous run dropped")
			default:
				fi, serr := os.Lstat(s.blobPath(hex))
				if serr == nil && fi.Mode().IsRegular() && fi.Size() == r.Size {
					keep[hex] = true
					total += r.Size
					return nil
				}
				s.log.Warn().Str("digest", string(k)).Int64("size", r.Size).Msg("cache blob missing or of the wrong size; its entry is dropped, put the data again")
			}
			drop = append(drop, append([]byte(nil), k...))
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read cache index: %w", err)
	}
	if len(drop) == 0 {
		return keep, total, nil
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, k := range drop {
			if err := tx.Bucket(bucketEntries).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("drop cache records: %w", err)
	}
	return keep, total, nil
}

// removeOrphans removes what is in the blob directory but not in keep:
// blobs of puts that crashed before their entry was written, or of
// entries removed before their blob was.
func (s *Store) removeOrphans(keep map[string]bool) error {
	return privdir.Prune(s.blobDir(), keep, "cache blob no entry names", s.log)
}
