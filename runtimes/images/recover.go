package images

import (
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/internal/privdir"
)

// recover brings Dir back to a consistent state after a crash (see Open).
// It runs before the store is shared, with the index locked.
func (s *Store) recover() error {
	if err := s.cleanTmp(); err != nil {
		return err
	}
	if err := s.unmountStale(); err != nil {
		return err
	}
	return s.reconcile()
}

// cleanTmp removes partial copies left in Dir/tmp.
func (s *Store) cleanTmp() error {
	return privdir.Prune(s.tmpDir(), nil, "partial copy of a previous run", s.log)
}

// reconcile makes the index and the blobs agree: it drops records that
// are damaged or whose blob is missing or of the wrong size, and removes
// blobs that no record names.
func (s *Store) reconcile() error {
	recs := map[string]record{}
	var drop []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			r, err := decode(string(k), v)
			if err != nil {
				s.log.Warn().Err(err).Str("runtime", string(k)).Msg("damaged image record dropped")
				drop = append(drop, string(k))
				return nil
			}
			recs[string(k)] = r
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("read image index: %w", err)
	}
	used := map[string]bool{}
	for ref, r := range recs {
		fi, err := os.Lstat(s.blobPath(r.hex()))
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != r.Size {
			s.log.Warn().Str("runtime", ref).Str("digest", r.Digest).Msg("image blob missing or damaged; its name is dropped, add the image again")
			drop = append(drop, ref)
			continue
		}
		used[r.hex()] = true
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		for _, ref := range drop {
			if err := tx.Bucket(bucketImages).Delete([]byte(ref)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("drop image records: %w", err)
	}
	return s.removeStrays(used)
}

// removeStrays removes the blobs that are not in used.
func (s *Store) removeStrays(used map[string]bool) error {
	return privdir.Prune(s.blobDir(), used, "image blob no name uses", s.log)
}
