package cache

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fxd.dev/fxd/api"
)

// fakeDisk makes s see a file system of capacity bytes that holds only its
// blobs and private copies: a real one, shared with other processes,
// cannot be made to show a given amount.
func fakeDisk(s *Store, capacity int64) {
	s.free = func(string) (int64, error) {
		var used int64
		for _, dir := range []string{s.blobDir(), s.tmpDir()} {
			filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if fi, err := d.Info(); err == nil {
						used += fi.Size()
					}
				}
				return nil
			})
		}
		return capacity - used, nil
	}
}

// unread fails the test if it is read.
type unread struct{ t *testing.T }

func (u unread) Read([]byte) (int, error) {
	u.t.Error("the put read its bytes; want it refused before")
	return 0, io.ErrUnexpectedEOF
}

// TestPutAdmit: a put of known size that commit would refuse is refused
// before a byte is read or written, with the error commit gives.
func TestPutAdmit(t *testing.T) {
	data := strings.Repeat("d", 20)
	tests := []struct {
		name  string
		c     Config
		setup func(t *testing.T, s *Store)
		p     PutOptions
		kind  error
		want  string
	}{
		{name: "past MaxSize", p: PutOptions{MaxSize: 10}, kind: api.ErrTooLarge, want: "the limit for one entry"},
		{name: "larger than the cache", c: Config{MaxBytes: 10}, kind: api.ErrTooLarge, want: "larger than the whole cache"},
		{name: "past quota", p: PutOptions{Quota: 30},
			setup: func(t *testing.T, s *Store) { mustPut(t, s, "alice", strings.Repeat("a", 15), PutOptions{}) },
			kind:  api.ErrDenied, want: "past its quota"},
		{name: "pinned", c: Config{MaxBytes: 30},
			setup: func(t *testing.T, s *Store) {
				d := mustPut(t, s, "bob", strings.Repeat("b", 15), PutOptions{}).Digest
				_, release, err := s.Pin(d, "bob")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(release)
			},
			kind: api.ErrUnavailable, want: "running tasks use"},
		{name: "min free", c: Config{MinFree: 100},
			setup: func(t *testing.T, s *Store) {
				fakeDisk(s, 200)
				mustPut(t, s, "bob", strings.Repeat("b", 15), PutOptions{}) // too little to evict
				fakeDisk(s, 115)
			},
			kind: api.ErrUnavailable, want: "must keep free"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// put puts data for alice and returns what it said, with the
			// store's directory as DIR, and the private copies it made.
			put := func(r io.Reader, size int64) (string, int64) {
				s := newStore(t, tt.c)
				if tt.setup != nil {
					tt.setup(t, s)
				}
				p := tt.p
				p.Size = size
				stages := s.stages.Load()
				_, err := s.Put(t.Context(), "alice", r, p)
				if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Put(size %d) = %v, want %v saying %q", size, err, tt.kind, tt.want)
				}
				return strings.ReplaceAll(err.Error(), s.c.Dir, "DIR"), s.stages.Load() - stages
			}
			early, copies := put(unread{t}, int64(len(data)))
			if copies != 0 {
				t.Errorf("Put(size %d) made %d private copies, want none", len(data), copies)
			}
			if late, _ := put(strings.NewReader(data), 0); late != early {
				t.Errorf("Put of unknown size = %s; want what the put of known size said: %s", late, early)
			}
		})
	}
}

// TestPutAdmitEvicts: the entries that must go for a put of known size to
// leave Config.MinFree free go before its private copy is written.
func TestPutAdmitEvicts(t *testing.T) {
	s := newStore(t, Config{MinFree: 100})
	fakeDisk(s, 250)
	a := mustPut(t, s, "alice", strings.Repeat("a", 50), PutOptions{}).Digest
	b := mustPut(t, s, "alice", strings.Repeat("b", 50), PutOptions{}).Digest
	data := strings.Repeat("c", 60) // 150 free - 60 < 100: a must go first
	r := &firstRead{r: strings.NewReader(data), on: func() {
		if _, err := os.Stat(s.blobPath(hexOf(a))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("blob of a when the put's bytes were read: %v, want it evicted before", err)
		}
	}}
	c, err := s.Put(t.Context(), "bob", r, PutOptions{Size: int64(len(data))})
	if err != nil {
		t.Fatalf("Put = %v", err)
	}
	if got, want := entries(t, s), sorted(b, c.Digest); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("entries = %v, want %v", got, want)
	}
}

// firstRead calls on before its first read.
type firstRead struct {
	r    io.Reader
	on   func()
	done bool
}

func (f *firstRead) Read(p []byte) (int, error) {
	if !f.done {
		f.done = true
		f.on()
	}
	return f.r.Read(p)
}

// TestPutLonger: a put that yields more than its Size is refused.
func TestPutLonger(t *testing.T) {
	s := newStore(t, Config{})
	_, err := s.Put(t.Context(), "alice", strings.NewReader("hello"), PutOptions{Size: 4})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "longer than the 4 bytes announced") {
		t.Fatalf("Put(5 bytes, Size 4) = %v, want api.ErrInvalid saying so", err)
	}
	requireEmpty(t, s)
	if e := mustPut(t, s, "alice", "hello", PutOptions{Size: 5}); e.Size != 5 {
		t.Errorf("Put(Size 5) = %+v, want 5 bytes", e)
	}
}

// TestPutStopsOnFreeSpace: a private copy that would take the disk below
// Config.MinFree stops while it is written, whether its size was given or
// not, and leaves nothing behind.
func TestPutStopsOnFreeSpace(t *testing.T) {
	for _, size := range []int64{0, 10 << 10} {
		t.Run(map[bool]string{true: "unknown size", false: "known size"}[size == 0], func(t *testing.T) {
			s := newStore(t, Config{MinFree: 100})
			s.freeEvery = 1 << 10
			fakeDisk(s, 100+(20<<10))
			r := &countingReader{r: strings.NewReader(strings.Repeat("x", 10<<10))}
			if size > 0 { // admitted: then another upload takes the space
				r.on, r.at = func() { fakeDisk(s, 100+(7<<10)) }, 2<<10
			} else {
				fakeDisk(s, 100+(3<<10))
			}
			_, err := s.Put(t.Context(), "alice", r, PutOptions{Size: size})
			if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "less than cache.min_free_space") {
				t.Fatalf("Put = %v, want api.ErrUnavailable naming cache.min_free_space", err)
			}
			if r.n >= 10<<10 {
				t.Errorf("the put read all %d bytes, want it stopped early", r.n)
			}
			requireEmpty(t, s)
		})
	}
}

// countingReader counts the bytes read from it and calls on once at
// bytes in.
type countingReader struct {
	r  io.Reader
	n  int64
	at int64
	on func()
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.on != nil && c.n >= c.at {
		c.on()
		c.on = nil
	}
	n, err := c.r.Read(p[:min(len(p), 512)]) // writes of 512 bytes
	c.n += int64(n)
	return n, err
}
