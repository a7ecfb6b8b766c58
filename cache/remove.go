package cache

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
)

// Remove takes the entry digest away from account: it no longer reads it.
// Account "" is the admin, who takes it from every account. Once no
// account reads the entry its blob goes, at once or, if the entry is
// pinned, when the last pin is released. An entry account does not read
// fails with api.ErrNotFound, as in Get.
func (s *Store) Remove(digest, account string) error {
	hex, err := ParseDigest(digest)
	if err != nil {
		return fmt.Errorf("remove cached data: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("remove cached data %s: %w", digest, errClosed())
	}
	rec, found, err := s.get(hex)
	if err != nil {
		return fmt.Errorf("remove cached data %s: %w", digest, err)
	}
	if !found || !rec.visibleTo(account) {
		return fmt.Errorf("remove %w", notFound(digest))
	}
	if account == "" {
		clear(rec.Readers)
	} else {
		delete(rec.Readers, account)
	}
	if len(rec.Readers) == 0 && s.pins[hex] == 0 {
		if err := s.deleteEntry(hex); err != nil {
			return err
		}
		s.log.Debug().Str("digest", digest).Str("account", account).Msg("cache entry removed")
		return nil
	}
	if err := s.update(func(b *bolt.Bucket) error { return put(b, hex, rec) }); err != nil {
		return fmt.Errorf("remove cached data %s: %w", digest, err)
	}
	s.log.Debug().Str("digest", digest).Str("account", account).Int("readers", len(rec.Readers)).Int("pins", s.pins[hex]).Msg("cache entry unshared")
	return nil
}

// Grant makes account a reader of the entry digest, as if it had put the
// bytes: for a caller that proved account may read the entry's source
// (a file account opened, a URL), so the bytes need not be read again.
// Of p, Source is where account's copy comes from, and MaxSize and Quota
// bound it as in Put; Want, if given, must be digest. An entry the cache
// does not hold fails with api.ErrNotFound.
func (s *Store) Grant(digest, account string, p PutOptions) (Entry, error) {
	hex, err := ParseDigest(digest)
	if err == nil {
		err = checkAccount(account)
	}
	if err == nil && p.Want != "" && p.Want != digest {
		err = fmt.Errorf("want %s: %w: it differs from the digest granted", clip(p.Want), api.ErrInvalid)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("grant cached data: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Entry{}, fmt.Errorf("grant cached data %s: %w", digest, errClosed())
	}
	rec, found, err := s.get(hex)
	if err != nil {
		return Entry{}, fmt.Errorf("grant cached data %s: %w", digest, err)
	}
	if !found {
		return Entry{}, fmt.Errorf("grant %w", notFound(digest))
	}
	e, err := s.addReader(hex, rec, account, p)
	if err != nil {
		return Entry{}, fmt.Errorf("grant cached data %s to account %s: %w", digest, account, err)
	}
	return e, nil
}
