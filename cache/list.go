package cache

import (
	"fmt"
	"strings"
)

// Get returns the entry digest as account sees it. An entry that does not
// exist and one that account does not read fail the same way, with
// api.ErrNotFound: nobody learns by digest what others cached. Account ""
// is the admin, who sees every entry.
func (s *Store) Get(digest, account string) (Entry, error) {
	hex, err := ParseDigest(digest)
	if err != nil {
		return Entry{}, fmt.Errorf("get cached data: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Entry{}, fmt.Errorf("get cached data %s: %w", digest, errClosed())
	}
	rec, found, err := s.get(hex)
	if err != nil {
		return Entry{}, fmt.Errorf("get cached data %s: %w", digest, err)
	}
	if !found || !rec.visibleTo(account) {
		return Entry{}, fmt.Errorf("get %w", notFound(digest))
	}
	return rec.entry(hex, account, s.pins[hex], s.touched[hex]), nil
}

// List returns the entries account reads, sorted by digest. Account "" is
// the admin: List returns every entry.
func (s *Store) List(account string) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("list cached data: %w", errClosed())
	}
	var list []Entry
	err := s.scan(func(hex string, r record) error {
		if r.visibleTo(account) {
			list = append(list, r.entry(hex, account, s.pins[hex], s.touched[hex]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list cached data: %w", err)
	}
	return list, nil
}

// Usage returns total, the bytes on disk: every blob counted once
// however many accounts read it (what Config.MaxBytes caps), and
// byAccount, the bytes each account reads: each entry counted in full for
// every account that reads it (what PutOptions.Quota bounds), so the
// figures of byAccount may add up to more than total. An entry removed
// while pinned counts in total and for no account. It is the admin's
// figure, for no account in particular; it does not count entries.
func (s *Store) Usage() (total int64, byAccount map[string]int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, nil, fmt.Errorf("read cache usage: %w", errClosed())
	}
	byAccount = map[string]int64{}
	err = s.scan(func(_ string, r record) error {
		total += r.Size
		for a := range r.Readers {
			byAccount[a] += r.Size
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("read cache usage: %w", err)
	}
	return total, byAccount, nil
}

// Fetched returns the digests of the entries some account staged from an
// http(s) URL, sorted: data a site may tell its federation it holds,
// where uploads and site files stay private.
func (s *Store) Fetched() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("list fetched data: %w", errClosed())
	}
	out := []string{}
	err := s.scan(func(hex string, r record) error {
		for _, rd := range r.Readers {
			if strings.HasPrefix(rd.Source, "https://") || strings.HasPrefix(rd.Source, "http://") {
				out = append(out, "sha256:"+hex)
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list fetched data: %w", err)
	}
	return out, nil
}
