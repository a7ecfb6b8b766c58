package cache

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/units"
)

// victim is an entry that makes room for a new one.
type victim struct {
	hex      string
	size     int64
	lastUsed time.Time
}

// room says which entries must go for a new blob of size bytes to fit
// under Config.MaxBytes and leave Config.MinFree on disk once the
// unwritten bytes of it not on disk yet are (0 at commit, when it is
// staged in Dir/tmp; size before a byte is written): the least recently
// used unpinned ones, as few as will do. It removes nothing; it fails with
// api.ErrUnavailable, before anything is evicted, when evicting every
// unpinned entry would not do. The caller holds s.mu.
func (s *Store) room(size, unwritten int64) ([]victim, error) {
	if s.c.MaxBytes <= 0 && s.c.MinFree <= 0 {
		return nil, nil
	}
	candidates, total, pinned, err := s.lru()
	if err != nil {
		return nil, err
	}
	free := int64(0)
	if s.c.MinFree > 0 {
		if free, err = s.free(s.c.Dir); err != nil {
			return nil, err
		}
		free -= unwritten
	}
	overCap := func(freed int64) bool { return s.c.MaxBytes > 0 && total-freed+size > s.c.MaxBytes }
	underFree := func(freed int64) bool { return s.c.MinFree > 0 && free+freed < s.c.MinFree }
	var evict []victim
	var freed int64
	for _, v := range candidates {
		if !overCap(freed) && !underFree(freed) {
			break
		}
		evict = append(evict, v)
		freed += v.size
	}
	switch {
	case overCap(freed):
		return nil, fmt.Errorf("the cache of this node holds %s in entries that running tasks use (its cap is %s); this %s entry fits once they end, so try again later, or the site admin raises the cache's size cap: %w",
			units.Bytes(pinned), units.Bytes(s.c.MaxBytes), units.Bytes(size), api.ErrUnavailable)
	case underFree(freed):
		return nil, fmt.Errorf("the cache's file system (%s) has %s free with this %s entry, less than the %s it must keep free, even with every unused entry evicted; the site admin frees space there or lowers the minimum: %w",
			s.c.Dir, units.Bytes(free+freed), units.Bytes(size), units.Bytes(s.c.MinFree), api.ErrUnavailable)
	}
	return evict, nil
}

// lru returns the unpinned entries, least recently used first, and the
// bytes of all entries and of the pinned ones. The caller holds s.mu.
func (s *Store) lru() (candidates []victim, total, pinned int64, err error) {
	now := s.now()
	err = s.scan(func(hex string, r record) error {
		total += r.Size
		if s.pins[hex] > 0 || r.KeepUntil.After(now) {
			pinned += r.Size
			return nil
		}
		candidates = append(candidates, victim{hex: hex, size: r.Size, lastUsed: r.lastUsed(s.touched[hex])})
		return nil
	})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read cache index: %w", err)
	}
	slices.SortFunc(candidates, func(a, b victim) int {
		return cmp.Or(a.lastUsed.Compare(b.lastUsed), cmp.Compare(a.hex, b.hex))
	})
	return candidates, total, pinned, nil
}

// freeSpace is the space an unprivileged user may still use on the file
// system of dir.
func freeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// checkQuota says whether account may read size more bytes within quota:
// the sizes of the entries it reads, each counted in full. The caller
// holds s.mu.
func (s *Store) checkQuota(account string, size, quota int64) error {
	if quota <= 0 {
		return nil
	}
	var used int64
	err := s.scan(func(_ string, r record) error {
		if _, ok := r.Readers[account]; ok {
			used += r.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read cache index: %w", err)
	}
	if used+size > quota {
		return fmt.Errorf("account %s would have %s of cached data with this %s entry, past its quota of %s; remove entries you no longer use (fx data rm DIGEST): %w",
			account, units.Bytes(used+size), units.Bytes(size), units.Bytes(quota), api.ErrDenied)
	}
	return nil
}
