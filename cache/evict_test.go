package cache

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
)

// entries lists the digests the admin sees.
func entries(t *testing.T, s *Store) []string {
	t.Helper()
	list, err := s.List("")
	if err != nil {
		t.Fatalf("List(admin) = %v", err)
	}
	var ds []string
	for _, e := range list {
		ds = append(ds, e.Digest)
	}
	return ds
}

// sorted returns ds sorted, as List returns digests.
func sorted(ds ...string) []string { return slices.Sorted(slices.Values(ds)) }

// TestEvictLRU: a put past the cap evicts the least recently used entries,
// as few as will do; a pin counts as a use.
func TestEvictLRU(t *testing.T) {
	s := newStore(t, Config{MaxBytes: 30})
	a := mustPut(t, s, "alice", strings.Repeat("a", 10), PutOptions{}).Digest
	b := mustPut(t, s, "bob", strings.Repeat("b", 10), PutOptions{}).Digest
	c := mustPut(t, s, "alice", strings.Repeat("c", 10), PutOptions{}).Digest
	_, release, err := s.Pin(a, "alice") // a is now the most recently used
	if err != nil {
		t.Fatal(err)
	}
	release()

	d := mustPut(t, s, "carol", strings.Repeat("d", 10), PutOptions{})
	if got, want := entries(t, s), sorted(a, c, d.Digest); !slices.Equal(got, want) {
		t.Errorf("entries after a put past the cap = %v, want %v (b, the least recently used, evicted)", got, want)
	}
	if _, err := os.Stat(s.blobPath(hexOf(b))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("blob of evicted b: %v, want it gone", err)
	}
	ga, _ := s.Get(a, "")
	gc, _ := s.Get(c, "")
	if !ga.LastUsed.After(gc.LastUsed) {
		t.Errorf("a used at %v, c at %v; want the pin to have made a the later", ga.LastUsed, gc.LastUsed)
	}

	e := mustPut(t, s, "alice", strings.Repeat("e", 20), PutOptions{}) // c, then a, used before d
	if got, want := entries(t, s), sorted(d.Digest, e.Digest); !slices.Equal(got, want) {
		t.Errorf("entries after a 20-byte put = %v, want %v", got, want)
	}
	if total, _, _ := s.Usage(); total != 30 {
		t.Errorf("Usage total = %d, want 30", total)
	}
}

// TestEvictNeverPinned: eviction skips pinned entries, however old, and a
// put that only pinned entries could make room for is refused and evicts
// nothing.
func TestEvictNeverPinned(t *testing.T) {
	s := newStore(t, Config{MaxBytes: 30})
	p := mustPut(t, s, "alice", strings.Repeat("p", 10), PutOptions{}).Digest // the oldest
	path, releaseP, err := s.Pin(p, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer releaseP()
	x := mustPut(t, s, "alice", strings.Repeat("x", 10), PutOptions{}).Digest
	y := mustPut(t, s, "bob", strings.Repeat("y", 10), PutOptions{}).Digest

	z := mustPut(t, s, "bob", strings.Repeat("z", 10), PutOptions{}).Digest
	if got, want := entries(t, s), sorted(p, y, z); !slices.Equal(got, want) {
		t.Fatalf("entries = %v, want %v (x %s evicted, pinned p kept)", got, want, x)
	}
	_, releaseY, err := s.Pin(y, "bob")
	if err != nil {
		t.Fatal(err)
	}
	defer releaseY()
	_, releaseZ, err := s.Pin(z, "bob")
	if err != nil {
		t.Fatal(err)
	}

	_, err = s.Put(t.Context(), "carol", strings.NewReader(strings.Repeat("w", 10)), PutOptions{})
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "running tasks use") {
		t.Fatalf("Put with only pinned entries = %v, want api.ErrUnavailable saying they are in use", err)
	}
	if got, want := entries(t, s), sorted(p, y, z); !slices.Equal(got, want) {
		t.Errorf("entries after the refused put = %v, want %v", got, want)
	}
	if tmp := files(t, s, "tmp"); len(tmp) > 0 {
		t.Errorf("tmp holds %v after the refused put, want nothing", tmp)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != strings.Repeat("p", 10) {
		t.Errorf("pinned blob = %q, %v", b, err)
	}

	releaseZ()
	w := mustPut(t, s, "carol", strings.Repeat("w", 10), PutOptions{}).Digest
	if got, want := entries(t, s), sorted(p, y, w); !slices.Equal(got, want) {
		t.Errorf("entries once z was released = %v, want %v", got, want)
	}
}

// TestEvictForMinFree: entries make way for the space the file system
// must keep free, and none goes when that cannot be done. The free space
// is set by the test: a real file system shared with other processes
// cannot be made to show a given amount.
func TestEvictForMinFree(t *testing.T) {
	s := newStore(t, Config{MinFree: 100})
	free := int64(1000)
	s.free = func(string) (int64, error) { return free, nil }
	mustPut(t, s, "alice", strings.Repeat("a", 50), PutOptions{})
	b := mustPut(t, s, "alice", strings.Repeat("b", 50), PutOptions{}).Digest

	free = 60 // with the new entry staged: a (50 bytes) must go to keep 100 free
	c := mustPut(t, s, "bob", strings.Repeat("c", 20), PutOptions{}).Digest
	if got, want := entries(t, s), sorted(b, c); !slices.Equal(got, want) {
		t.Errorf("entries = %v, want %v (a evicted to keep 100 bytes free)", got, want)
	}

	free = 10 // all of b and c would give 80: not enough, so nothing goes
	_, err := s.Put(t.Context(), "bob", strings.NewReader("d"), PutOptions{})
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "must keep free") {
		t.Fatalf("Put = %v, want api.ErrUnavailable saying what must stay free", err)
	}
	if got, want := entries(t, s), sorted(b, c); !slices.Equal(got, want) {
		t.Errorf("entries after the refused put = %v, want %v", got, want)
	}
}

// TestEvictKeepUntil: an entry kept until a time is not evicted before
// it, even when it is the least recently used, and is after it.
func TestEvictKeepUntil(t *testing.T) {
	s := newStore(t, Config{MaxBytes: 20})
	clock := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	kept := mustPut(t, s, "alice", strings.Repeat("k", 10), PutOptions{KeepUntil: clock.Add(time.Hour)}).Digest
	clock = clock.Add(time.Minute)
	mustPut(t, s, "bob", strings.Repeat("b", 10), PutOptions{})
	clock = clock.Add(time.Minute)
	c := mustPut(t, s, "bob", strings.Repeat("c", 10), PutOptions{}).Digest
	if got, want := entries(t, s), sorted(kept, c); !slices.Equal(got, want) {
		t.Errorf("entries = %v, want %v: b evicted, not the older but kept entry", got, want)
	}
	if _, err := s.Put(t.Context(), "bob", strings.NewReader(strings.Repeat("x", 15)), PutOptions{}); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("a put that only evicting the kept entry would fit = %v, want api.ErrUnavailable", err)
	}
	clock = clock.Add(time.Hour)
	d := mustPut(t, s, "bob", strings.Repeat("d", 10), PutOptions{}).Digest
	if got, want := entries(t, s), sorted(c, d); !slices.Equal(got, want) {
		t.Errorf("entries past keep_until = %v, want %v: the kept entry evicted now", got, want)
	}
}
