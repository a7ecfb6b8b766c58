package cache

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"fxd.dev/fxd/api"
)

// Entry is one cached blob as an account sees it.
type Entry struct {
	// Digest is "sha256:" and the 64 lowercase hex digits of the sha256 of
	// the bytes.
	Digest string
	// Size is the number of bytes.
	Size int64
	// Source is where the account's copy came from (a path, a URL,
	// "upload", a peer); for the admin, where the bytes were first staged
	// from.
	Source string
	// Added is when the account was given the entry; for the admin, when
	// the blob was stored.
	Added time.Time
	// LastUsed is when the account last put or pinned the entry (who else
	// uses it is not its business either); for the admin, when anyone
	// did: eviction takes the least recently used first.
	LastUsed time.Time
	// Readers are the accounts that may read the entry: for an account
	// just itself (who else reads it is not its business), for the admin
	// all of them, sorted. Empty for an entry removed while pinned.
	Readers []string
	// Pins is how many uses hold the entry now; while it is above 0 the
	// entry is neither evicted nor removed.
	Pins int
}

// record is the value of one digest in the entries bucket (see doc.go).
type record struct {
	Size     int64             `json:"size"`
	Source   string            `json:"source,omitempty"`
	Added    time.Time         `json:"added"`
	LastUsed time.Time         `json:"last_used"`
	Readers  map[string]reader `json:"readers,omitempty"`
	// KeepUntil keeps the entry from eviction until then (PutOptions).
	KeepUntil time.Time `json:"keep_until,omitzero"`
}

// reader is one account's access to a record.
type reader struct {
	Source string    `json:"source,omitempty"`
	Added  time.Time `json:"added"`
	// LastUsed is the account's last put or pin; zero in records written
	// before it was kept, where Added stands for it.
	LastUsed time.Time `json:"last_used,omitzero"`
}

// lastUsed is the later of the reader's last use, Added and t.
func (rd reader) lastUsed(t time.Time) time.Time {
	return latest(rd.Added, rd.LastUsed, t)
}

// use is what pins noted of an entry since the index was last written:
// its last use, and each account's.
type use struct {
	at time.Time
	by map[string]time.Time // by account; the admin's ("") uses are not kept
}

// latest is the latest of ts.
func latest(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

// decode reads the record stored under key and checks what paths are made
// from: the key must be a digest and the size not negative.
func decode(key, v []byte) (hex string, r record, err error) {
	hex, err = ParseDigest(string(key))
	if err != nil {
		return "", r, fmt.Errorf("cache index key: %w", err)
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return "", r, fmt.Errorf("cache entry %s: record damaged: %w", key, err)
	}
	if r.Size < 0 {
		return "", r, fmt.Errorf("cache entry %s: record damaged: size %d", key, r.Size)
	}
	return hex, r, nil
}

// key is the index key of the blob hex.
func key(hex string) []byte { return []byte("sha256:" + hex) }

// visibleTo reports whether account may see the record: the admin ("")
// sees all, an account those it reads.
func (r record) visibleTo(account string) bool {
	if account == "" {
		return true
	}
	_, ok := r.Readers[account]
	return ok
}

// entry is the record of hex as account sees it, with pins running uses
// and the uses touched noted since the last write.
func (r record) entry(hex, account string, pins int, touched use) Entry {
	e := Entry{Digest: "sha256:" + hex, Size: r.Size, Source: r.Source, Added: r.Added, LastUsed: r.lastUsed(touched), Pins: pins}
	if account == "" {
		e.Readers = r.readers()
		return e
	}
	rd := r.Readers[account]
	e.Source, e.Added, e.LastUsed, e.Readers = rd.Source, rd.Added, rd.lastUsed(touched.by[account]), []string{account}
	return e
}

// readers returns the names of the record's readers, sorted.
func (r record) readers() []string {
	names := make([]string, 0, len(r.Readers))
	for a := range r.Readers {
		names = append(names, a)
	}
	slices.Sort(names)
	return names
}

// lastUsed is the later of the record's last use and touched's.
func (r record) lastUsed(touched use) time.Time {
	return latest(r.LastUsed, touched.at)
}

// used notes in r a use by account at t: the entry's last use and, for a
// reader, its own.
func (r *record) used(account string, t time.Time) {
	r.LastUsed = latest(r.LastUsed, t)
	if rd, ok := r.Readers[account]; ok {
		rd.LastUsed = rd.lastUsed(t)
		r.Readers[account] = rd
	}
}

// notFound is the answer for a digest that is not cached or that account
// may not read: the same, so it tells nobody what others cached.
func notFound(digest string) error {
	return fmt.Errorf("cached data %s: %w; fx data ls lists what you can use", digest, api.ErrNotFound)
}

// checkAccount refuses an empty account where one is needed.
func checkAccount(account string) error {
	if account == "" {
		return fmt.Errorf("%w: no account given; name the account the data is cached for", api.ErrInvalid)
	}
	return nil
}
