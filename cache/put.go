package cache

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/units"
)

// PutOptions say what a put expects and how far it may go.
type PutOptions struct {
	// Want is the digest the bytes must have ("sha256:<64 hex>"), or ""
	// when the caller does not know it. Bytes that hash otherwise are
	// refused (api.ErrInvalid); concurrent puts of the same Want write the
	// bytes to disk once.
	Want string
	// Source is where the bytes come from, for people: a path, a URL,
	// "upload", a peer. It is stored and logged, so it must carry no
	// credential (no token in a URL).
	Source string
	// MaxSize bounds the bytes of this entry (api.ErrTooLarge past it); 0
	// bounds nothing but the cache's own cap.
	MaxSize int64
	// KeepUntil, when set, keeps the entry from eviction until then (a
	// task's output, kept as long as the task's result); Remove still
	// frees it. A later put may extend it, never shorten it.
	KeepUntil time.Time
	// Quota bounds the bytes the account may read in the cache, each entry
	// counted in full even when others read it too (api.ErrDenied past
	// it); 0 bounds nothing.
	Quota int64
	// Size is the number of bytes the caller expects r to yield (a
	// Content-Length, a file's size); 0 or -1 when it does not know. A
	// known size is checked before a byte is written, as the bytes would
	// be once received: against MaxSize and the cache's cap
	// (api.ErrTooLarge), Quota (api.ErrDenied), and the room pinned
	// entries and Config.MinFree leave (api.ErrUnavailable); entries that
	// must go for the private copy to leave Config.MinFree free go then,
	// before it is written. A put that yields more than Size bytes is
	// refused (api.ErrInvalid).
	Size int64
}

// Put stores the bytes r yields as an entry that account reads, and
// returns it as account sees it. The bytes are streamed into a private
// file while their sha256 is computed, flushed to disk, and then either
// become the entry's blob or, when the cache holds them already, are
// dropped and account is added to the entry's readers: the same bytes are
// stored once, each account sees only what it put. Room is made by
// evicting the least recently used unpinned entries; a put that would
// need a pinned one, or leave less than Config.MinFree on disk, fails
// with api.ErrUnavailable; so does one whose private copy, checked every
// 64 MiB, would leave less than that while it is written. A put that
// fails for any reason, is cancelled or is killed leaves no entry (and no
// file) behind.
//
// With p.Want, a put of a digest account reads already returns its entry
// without reading r; one that another put is writing waits for it and
// then reads r only to check that its bytes hash to p.Want, as it does
// for any digest the cache holds: knowing a digest gives no access.
func (s *Store) Put(ctx context.Context, account string, r io.Reader, p PutOptions) (Entry, error) {
	if err := checkAccount(account); err != nil {
		return Entry{}, fmt.Errorf("put data: %w", err)
	}
	var e Entry
	var err error
	if p.Want == "" {
		e, err = s.putNew(ctx, account, r, p, "")
	} else if want, perr := ParseDigest(p.Want); perr != nil {
		err = perr
	} else {
		e, err = s.putWant(ctx, account, want, r, p)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("put data for account %s: %w", account, err)
	}
	return e, nil
}

// flight is a put of a known digest under way: other puts of the digest
// wait for it rather than write the same bytes to disk again.
type flight struct {
	done chan struct{} // closed when the put ends, stored or not
}

// putWant puts the bytes r yields, which must hash to want (hex). It
// leads a flight of want, or waits for the one under way and then checks
// r against the bytes it stored (golang.org/x/sync/singleflight would run
// a leader in a goroutine of its own, which then cannot tell its caller
// whether a cancelled put was committed, or not let waiters give up when
// their ctx is done).
func (s *Store) putWant(ctx context.Context, account, want string, r io.Reader, p PutOptions) (Entry, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return Entry{}, errClosed()
		}
		rec, found, err := s.get(want)
		f := s.flights[want]
		switch {
		case err != nil:
			s.mu.Unlock()
			return Entry{}, fmt.Errorf("read cache index: %w", err)
		case found && rec.visibleTo(account):
			s.touch(want, account, s.now().UTC())
			e := rec.entry(want, account, s.pins[want], s.touched[want])
			s.mu.Unlock()
			return e, nil
		case found:
			s.pins[want]++ // not evicted while r is read
			s.mu.Unlock()
			return s.putKnown(ctx, account, want, r, p)
		case f == nil:
			f = &flight{done: make(chan struct{})}
			s.flights[want] = f
			s.mu.Unlock()
			e, err := s.putNew(ctx, account, r, p, want)
			s.land(want, f)
			return e, err
		}
		s.mu.Unlock()
		select {
		case <-f.done: // stored: r is checked against it; failed: r is tried
		case <-ctx.Done():
			return Entry{}, fmt.Errorf("wait for the same data being put by another request: %w", ctx.Err())
		}
	}
}

// land ends the flight f of hex.
func (s *Store) land(hex string, f *flight) {
	s.mu.Lock()
	delete(s.flights, hex)
	s.mu.Unlock()
	close(f.done)
}

// putKnown adds account to the readers of hex, which the cache holds and
// the caller pinned, once r has shown that account has its bytes. It
// releases the pin.
func (s *Store) putKnown(ctx context.Context, account, hex string, r io.Reader, p PutOptions) (Entry, error) {
	defer s.unpin(hex)
	sum, err := s.hashOnly(ctx, r, p)
	if err != nil {
		return Entry{}, err
	}
	if sum != hex {
		return Entry{}, mismatch(hex, sum)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Entry{}, errClosed()
	}
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	rec, found, err := s.get(hex)
	if err != nil {
		return Entry{}, fmt.Errorf("read cache index: %w", err)
	}
	if !found { // pinned, so only a damaged index gets here
		return Entry{}, fmt.Errorf("cached data sha256:%s went while it was read; put it again: %w", hex, api.ErrUnavailable)
	}
	return s.addReader(hex, rec, account, p)
}

// putNew stages the bytes r yields and commits them; with want (hex) they
// must hash to it.
func (s *Store) putNew(ctx context.Context, account string, r io.Reader, p PutOptions, want string) (Entry, error) {
	if err := s.admit(account, p); err != nil {
		return Entry{}, err
	}
	st, err := s.stage(ctx, r, p)
	if err != nil {
		return Entry{}, err
	}
	if want != "" && st.hex != want {
		os.Remove(st.path)
		return Entry{}, mismatch(want, st.hex)
	}
	return s.commit(ctx, account, st, p)
}

// mismatch says that bytes expected to hash to want hash to got.
func mismatch(want, got string) error {
	return fmt.Errorf("the bytes read hash to sha256:%s, not to the expected sha256:%s; check the source, or give the digest it has: %w",
		got, want, api.ErrInvalid)
}

// commit makes the staged copy st the entry account reads: it joins the
// entry of the same bytes if the cache holds it, else it becomes a new
// blob, after the entries that must go to make room. st's file is gone
// when commit returns.
func (s *Store) commit(ctx context.Context, account string, st staged, p PutOptions) (Entry, error) {
	placed := false
	defer func() {
		if !placed {
			os.Remove(st.path)
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Entry{}, errClosed()
	}
	if err := ctx.Err(); err != nil { // not visible if the caller gave up
		return Entry{}, err
	}
	rec, found, err := s.get(st.hex)
	if err != nil {
		return Entry{}, fmt.Errorf("read cache index: %w", err)
	}
	if found {
		return s.addReader(st.hex, rec, account, p)
	}
	if err := s.checkQuota(account, st.size, p.Quota); err != nil {
		return Entry{}, err
	}
	evict, err := s.room(st.size, 0)
	if err != nil {
		return Entry{}, err
	}
	if placed, err = s.place(st); err != nil {
		return Entry{}, err
	}
	now := s.now().UTC()
	rec = record{Size: st.size, Source: p.Source, Added: now, LastUsed: now, KeepUntil: p.KeepUntil.UTC(),
		Readers: map[string]reader{account: {Source: p.Source, Added: now, LastUsed: now}}}
	err = s.update(func(b *bolt.Bucket) error {
		for _, v := range evict {
			if err := b.Delete(key(v.hex)); err != nil {
				return err
			}
		}
		return put(b, st.hex, rec)
	})
	if err != nil {
		s.removeBlob(st.hex)
		return Entry{}, fmt.Errorf("record cache entry: %w", err)
	}
	for _, v := range evict {
		s.removeBlob(v.hex)
		s.log.Info().Str("digest", "sha256:"+v.hex).Int64("size", v.size).Time("last_used", v.lastUsed).Msg("cache entry evicted")
	}
	s.log.Debug().Str("digest", "sha256:"+st.hex).Int64("size", st.size).Str("account", account).Str("source", p.Source).Msg("data cached")
	return rec.entry(st.hex, account, 0, use{}), nil
}

// place renames the staged copy to its blob and makes the rename durable
// before the index names the blob. It reports whether the copy was
// renamed (then it is not in tmp any more). The caller holds s.mu.
func (s *Store) place(st staged) (bool, error) {
	if err := os.Rename(st.path, s.blobPath(st.hex)); err != nil {
		return false, fmt.Errorf("store blob: %w", err)
	}
	d, err := os.Open(s.blobDir())
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		s.removeBlob(st.hex)
		return true, fmt.Errorf("sync blob directory: %w", err)
	}
	return true, nil
}

// addReader makes account a reader of the entry hex (rec), within p's
// bounds, and notes the use. The caller holds s.mu.
func (s *Store) addReader(hex string, rec record, account string, p PutOptions) (Entry, error) {
	now := s.now().UTC()
	if _, ok := rec.Readers[account]; !ok {
		if p.MaxSize > 0 && rec.Size > p.MaxSize {
			return Entry{}, fmt.Errorf("the data (%s) is larger than %s, the limit for one entry; ask the site admin for a higher limit: %w",
				units.Bytes(rec.Size), units.Bytes(p.MaxSize), api.ErrTooLarge)
		}
		if err := s.checkQuota(account, rec.Size, p.Quota); err != nil {
			return Entry{}, err
		}
		if rec.Readers == nil {
			rec.Readers = map[string]reader{}
		}
		rec.Readers[account] = reader{Source: p.Source, Added: now}
	}
	rec.used(account, now)
	if p.KeepUntil.After(rec.KeepUntil) {
		rec.KeepUntil = p.KeepUntil.UTC()
	}
	if err := s.update(func(b *bolt.Bucket) error { return put(b, hex, rec) }); err != nil {
		return Entry{}, fmt.Errorf("record cache entry: %w", err)
	}
	s.log.Debug().Str("digest", "sha256:"+hex).Int64("size", rec.Size).Str("account", account).Str("source", p.Source).Msg("cached data shared")
	return rec.entry(hex, account, s.pins[hex], s.touched[hex]), nil
}
