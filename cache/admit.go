package cache

import (
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/units"
)

// freeCheckEvery is how many bytes of a private copy are written between
// two looks at the free space of Dir's file system.
const freeCheckEvery = 64 << 20

// admit checks a put of p.Size bytes, when the caller knows the size,
// before a byte of it is written, as commit will once it is staged: the
// size against p.MaxSize and the cache's cap, account's quota, the room
// pinned entries leave, and Config.MinFree with the private copy on disk.
// The entries that must go for the copy to leave MinFree free go now, not
// at commit: the copy must not take the space the state directory keeps
// (the task store lives there). Those that must go only for the cap wait
// for commit, which is refused if they cannot. Without p.Want the digest
// is not known yet, and the bytes may be an entry already cached, which
// commit would only share: then quota (when account reads an entry of
// that size) and the cap (when anyone does) are left to commit.
func (s *Store) admit(account string, p PutOptions) error {
	if p.Size <= 0 {
		return nil
	}
	if limit, tooLarge := s.sizeLimit(p); limit >= 0 && p.Size > limit {
		return tooLarge
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed()
	}
	cached, mine, err := s.sized(account, p.Size)
	if err != nil {
		return err
	}
	if !mine {
		if err := s.checkQuota(account, p.Size, p.Quota); err != nil {
			return err
		}
	}
	size := p.Size
	if cached {
		size = 0
	}
	if _, err := s.room(size, p.Size); err != nil {
		return err
	}
	evict, err := s.room(0, p.Size) // for the free space only
	if err != nil {
		return err
	}
	return s.evict(evict, "to make space for a put being received")
}

// sized reports whether the cache holds an entry of size bytes, and
// whether account reads one. The caller holds s.mu.
func (s *Store) sized(account string, size int64) (cached, mine bool, err error) {
	err = s.scan(func(_ string, r record) error {
		if r.Size == size && len(r.Readers) > 0 {
			cached = true
			_, ok := r.Readers[account]
			mine = mine || ok
		}
		return nil
	})
	if err != nil {
		return false, false, fmt.Errorf("read cache index: %w", err)
	}
	return cached, mine, nil
}

// evict removes the entries evict from the index, then their blobs. The
// caller holds s.mu and took them from room, so none is pinned.
func (s *Store) evict(evict []victim, why string) error {
	if len(evict) == 0 {
		return nil
	}
	err := s.update(func(b *bolt.Bucket) error {
		for _, v := range evict {
			if err := b.Delete(key(v.hex)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("evict cache entries: %w", err)
	}
	for _, v := range evict {
		s.removeBlob(v.hex)
		s.log.Info().Str("digest", "sha256:"+v.hex).Int64("size", v.size).Time("last_used", v.lastUsed).Msg("cache entry evicted " + why)
	}
	return nil
}

// spaceWriter writes a private copy and, every s.freeEvery bytes, stops
// it with api.ErrUnavailable when the next bytes would leave less than
// Config.MinFree free on Dir's file system: concurrent puts, or one of
// unknown size, must not fill the disk the task store is on. It evicts
// nothing: what may go for a put goes once it is admitted (see admit).
type spaceWriter struct {
	s    *Store
	w    io.Writer
	size int64 // expected in all (PutOptions.Size), or 0 or less
	n    int64 // written
	next int64 // when to look again
}

func (sw *spaceWriter) Write(b []byte) (int, error) {
	if sw.s.c.MinFree > 0 && sw.n >= sw.next {
		if err := sw.check(); err != nil {
			return 0, err
		}
		sw.next = sw.n + sw.s.freeEvery
	}
	n, err := sw.w.Write(b)
	sw.n += int64(n)
	return n, err
}

// check fails when the next bytes, up to freeEvery or what remains of the
// expected size, would leave less than Config.MinFree free.
func (sw *spaceWriter) check() error {
	ahead := sw.s.freeEvery
	if sw.size > 0 {
		ahead = max(min(ahead, sw.size-sw.n), 0)
	}
	free, err := sw.s.free(sw.s.c.Dir)
	if err != nil {
		return err
	}
	if free-ahead >= sw.s.c.MinFree {
		return nil
	}
	return fmt.Errorf("the disk of the state dir (%s) would keep %s free, less than cache.min_free_space (%s), with %s of this data written; free space there, or stage less (give its size so the cache makes room first): %w",
		sw.s.c.Dir, units.Bytes(max(free-ahead, 0)), units.Bytes(sw.s.c.MinFree), units.Bytes(sw.n), api.ErrUnavailable)
}
