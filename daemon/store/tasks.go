package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
)

// scanChunk bounds the records read in one read transaction by
// Unfinished and the tasks deleted in one write transaction by Expire, so
// neither holds bbolt for long.
const scanChunk = 1000

// GetTask returns the stored task with id, or an error wrapping
// api.ErrNotFound.
func (s *Store) GetTask(id string) (api.Task, error) {
	var t api.Task
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTasks).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("get task %s: %w", id, api.ErrNotFound)
		}
		var err error
		if t, _, err = decodeRecord(v); err != nil {
			return fmt.Errorf("get task %s: %w", id, err)
		}
		return nil
	})
	return t, err
}

// GetInput returns the input of a task that is not final yet. It wraps
// api.ErrNotFound when the task is absent or final (its input is dropped
// when it finishes).
func (s *Store) GetInput(id string) ([]byte, error) {
	var in []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		key := []byte(id)
		v := tx.Bucket(bucketTasks).Get(key)
		if v == nil {
			return fmt.Errorf("get input of task %s: %w", id, api.ErrNotFound)
		}
		h, err := decodeHeader(v)
		if err != nil {
			return fmt.Errorf("get input of task %s: %w", id, err)
		}
		if h.state.Final() {
			return fmt.Errorf("get input of task %s: dropped when the task became %s: %w", id, h.state, api.ErrNotFound)
		}
		in = append([]byte{}, tx.Bucket(bucketInputs).Get(key)...)
		return nil
	})
	return in, err
}

// Unfinished calls fn with every task that is not final, with its input,
// in ID order (oldest first). It reads the active index only, never the
// finished tasks, and calls fn outside any transaction, so fn may write to
// the store. An error from fn stops the walk and is returned.
func (s *Store) Unfinished(fn func(Record) error) error {
	var after []byte
	for {
		recs, last, err := s.unfinishedChunk(after)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if last == nil {
			return nil
		}
		after = last
	}
}

// unfinishedChunk reads up to scanChunk active records after key after
// (from the start if nil). last is the last key read, or nil at the end.
func (s *Store) unfinishedChunk(after []byte) (recs []Record, last []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		tasks, inputs := tx.Bucket(bucketTasks), tx.Bucket(bucketInputs)
		c := tx.Bucket(bucketActive).Cursor()
		k, _ := c.First()
		if after != nil {
			if k, _ = c.Seek(after); k != nil && string(k) == string(after) {
				k, _ = c.Next()
			}
		}
		for ; k != nil; k, _ = c.Next() {
			if len(recs) == scanChunk {
				last = []byte(recs[len(recs)-1].Task.ID)
				return nil
			}
			v := tasks.Get(k)
			if v == nil {
				continue // stale index entry; nothing to recover
			}
			t, identity, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("read unfinished task %s: %w", k, err)
			}
			if t.State.Final() {
				continue
			}
			recs = append(recs, Record{Task: t, Identity: identity, Input: append([]byte{}, inputs.Get(k)...)})
		}
		return nil
	})
	return recs, last, err
}

// Expire deletes the finished tasks whose ExpiresAt is not after now and
// returns how many it deleted. It walks the expiry index from its start,
// so its cost follows what expires, not what is stored.
func (s *Store) Expire(now time.Time) (int, error) {
	limit := unixNano(now)
	total := 0
	for {
		n, more, err := s.expireChunk(limit)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

func (s *Store) expireChunk(limit uint64) (n int, more bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		tasks, inputs, active := tx.Bucket(bucketTasks), tx.Bucket(bucketInputs), tx.Bucket(bucketActive)
		expiry := tx.Bucket(bucketExpiry)
		var keys [][]byte
		c := expiry.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= limit; k, _ = c.Next() {
			if len(keys) == scanChunk {
				more = true
				break
			}
			keys = append(keys, append([]byte{}, k...)) // outlive the deletes below
		}
		var counts [16]int
		for _, k := range keys {
			id := k[8:]
			if v := tasks.Get(id); v != nil {
				h, err := decodeHeader(v)
				if err != nil {
					return fmt.Errorf("expire task %s: %w", id, err)
				}
				// Only the index entry of the stored expiry time deletes the task.
				if h.state.Final() && h.expires == binary.BigEndian.Uint64(k) {
					for _, b := range []*bolt.Bucket{tasks, inputs, active} {
						if err := b.Delete(id); err != nil {
							return fmt.Errorf("expire task %s: %w", id, err)
						}
					}
					counts[stateCode(h.state)]--
					n++
				}
			}
			if err := expiry.Delete(k); err != nil {
				return fmt.Errorf("unindex expired task %s: %w", id, err)
			}
		}
		return addCounts(tx.Bucket(bucketMeta), &counts)
	})
	if err != nil {
		return 0, false, fmt.Errorf("expire tasks: %w", err)
	}
	return n, more, nil
}

// Counts returns how many tasks are stored in each state (every state is
// present, zero included). It reads counters kept by every write, not
// the tasks.
func (s *Store) Counts() (map[api.State]int, error) {
	counts := make(map[api.State]int, len(api.States))
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		for _, st := range api.States {
			n := 0
			if v := meta.Get(countKey(st)); len(v) == 8 {
				n = int(binary.BigEndian.Uint64(v))
			}
			counts[st] = n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count tasks: %w", err)
	}
	return counts, nil
}

// Each calls fn with every stored task, final ones included, in ID order,
// reading scanChunk tasks per read transaction and calling fn outside
// any. It is for audits and tests: its cost follows what is stored.
func (s *Store) Each(fn func(api.Task) error) error {
	var after []byte
	for {
		var tasks []api.Task
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketTasks).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && string(k) == string(after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(tasks) < scanChunk; k, v = c.Next() {
				t, _, err := decodeRecord(v)
				if err != nil {
					return fmt.Errorf("read task %s: %w", k, err)
				}
				tasks = append(tasks, t)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, t := range tasks {
			if err := fn(t); err != nil {
				return err
			}
		}
		if len(tasks) < scanChunk {
			return nil
		}
		after = []byte(tasks[len(tasks)-1].ID)
	}
}
