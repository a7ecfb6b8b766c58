package cache

import (
	"fmt"
	"sync"
	"time"
)

// Pin holds the entry digest for a use by account (a task that reads it)
// and returns the path of its blob: the entry is neither evicted nor
// removed until release is called, which is safe to call more than once.
// Like Get, it fails with api.ErrNotFound when account does not read the
// entry. The use counts for eviction order. Pins live in memory: after a
// restart nothing holds an entry.
func (s *Store) Pin(digest, account string) (path string, release func(), err error) {
	hex, err := ParseDigest(digest)
	if err != nil {
		return "", nil, fmt.Errorf("pin cached data: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", nil, fmt.Errorf("pin cached data %s: %w", digest, errClosed())
	}
	rec, found, err := s.get(hex)
	if err != nil {
		return "", nil, fmt.Errorf("pin cached data %s: %w", digest, err)
	}
	if !found || !rec.visibleTo(account) {
		return "", nil, fmt.Errorf("pin %w", notFound(digest))
	}
	s.pins[hex]++
	s.touch(hex, account, s.now().UTC()) // written with the next change to the index
	var once sync.Once
	return s.blobPath(hex), func() { once.Do(func() { s.unpin(hex) }) }, nil
}

// touch notes a use of hex by account at t, to be written to the index
// with its next change. The caller holds s.mu.
func (s *Store) touch(hex, account string, t time.Time) {
	u := s.touched[hex]
	u.at = latest(u.at, t)
	if account != "" {
		if u.by == nil {
			u.by = map[string]time.Time{}
		}
		u.by[account] = latest(u.by[account], t)
	}
	s.touched[hex] = u
}

// unpin releases one pin of hex. The last one lets an entry removed while
// pinned go.
func (s *Store) unpin(hex string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if n := s.pins[hex] - 1; n > 0 {
		s.pins[hex] = n
		return
	}
	delete(s.pins, hex)
	rec, found, err := s.get(hex)
	if err != nil || !found || len(rec.Readers) > 0 {
		return
	}
	if err := s.deleteEntry(hex); err != nil {
		s.log.Warn().Err(err).Str("digest", "sha256:"+hex).Msg("remove released cache entry; the next start removes it")
		return
	}
	s.log.Debug().Str("digest", "sha256:"+hex).Msg("removed cache entry released and gone")
}
