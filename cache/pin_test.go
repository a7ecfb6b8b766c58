package cache

import (
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"fxd.dev/fxd/api"
)

// TestRemoveWhilePinned: a removed entry that tasks still use disappears
// for its readers at once, and its blob goes when the last pin is
// released, however often release is called.
func TestRemoveWhilePinned(t *testing.T) {
	tests := []struct {
		name    string
		remover string // "" is the admin
	}{
		{"by its reader", "alice"},
		{"by the admin", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Config{MaxBytes: 10})
			d := mustPut(t, s, "alice", "hello", PutOptions{}).Digest
			path, release1, err := s.Pin(d, "alice")
			if err != nil {
				t.Fatal(err)
			}
			_, release2, err := s.Pin(d, "")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Remove(d, tt.remover); err != nil {
				t.Fatalf("Remove(%q) = %v", tt.remover, err)
			}
			if _, err := s.Get(d, "alice"); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Get(alice) after Remove = %v, want api.ErrNotFound", err)
			}
			if e, err := s.Get(d, ""); err != nil || len(e.Readers) != 0 || e.Pins != 2 {
				t.Errorf("Get(admin) after Remove = %+v, %v; want no readers, 2 pins", e, err)
			}
			// still pinned: neither evicted for a put nor removed
			if _, err := s.Put(t.Context(), "bob", strings.NewReader("0123456789"), PutOptions{}); !errors.Is(err, api.ErrUnavailable) {
				t.Errorf("Put needing the pinned entry's room = %v, want api.ErrUnavailable", err)
			}
			release1()
			release1()
			if b, err := os.ReadFile(path); err != nil || string(b) != "hello" {
				t.Fatalf("blob after one of two releases = %q, %v; want it kept", b, err)
			}
			release2()
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("blob after the last release: %v, want it gone", err)
			}
			release2()
			requireEmpty(t, s)
		})
	}
}

// TestPutRevivesRemoved: putting the bytes of an entry removed while
// pinned makes it an entry again, which the release then keeps.
func TestPutRevivesRemoved(t *testing.T) {
	s := newStore(t, Config{})
	d := mustPut(t, s, "alice", "hello", PutOptions{}).Digest
	_, release, err := s.Pin(d, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(d, "alice"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "bob", "hello", PutOptions{Want: d})
	release()
	if _, err := s.Get(d, "bob"); err != nil {
		t.Errorf("Get(bob) after the release = %v, want the entry", err)
	}
	if _, err := s.Get(d, "alice"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Get(alice) = %v, want api.ErrNotFound: she removed it", err)
	}
}

// TestPutSameDigestOnce: concurrent puts of one digest write it to disk
// once; the others wait, then each shows its own bytes hash to it before
// it reads the entry, so a put of other bytes under that digest is refused.
func TestPutSameDigestOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, Config{})
		const data = "a dataset many tasks want"
		d := digestOf(data)
		gate := make(chan struct{})
		accounts := []string{"alice", "bob", "carol", "dave", "mallory"}
		readers := make([]*gatedReader, len(accounts))
		errs := make([]error, len(accounts))
		var wg sync.WaitGroup
		for i, a := range accounts {
			bytes := data
			if a == "mallory" {
				bytes = "knows the digest, not the data"
			}
			readers[i] = &gatedReader{gate: gate, r: strings.NewReader(bytes)}
			wg.Go(func() {
				_, errs[i] = s.Put(t.Context(), a, readers[i], PutOptions{Want: d})
			})
			synctest.Wait() // alice's put reads from its gated reader, the others wait for it
		}
		for i, r := range readers {
			if r.started() != (i == 0) {
				t.Errorf("%s's reader read before the first put ended: %v", accounts[i], r.started())
			}
		}
		close(gate)
		wg.Wait()

		for i, a := range accounts {
			if a == "mallory" {
				if !errors.Is(errs[i], api.ErrInvalid) {
					t.Errorf("Put(mallory, other bytes) = %v, want api.ErrInvalid", errs[i])
				}
				if _, err := s.Get(d, a); !errors.Is(err, api.ErrNotFound) {
					t.Errorf("Get(mallory) = %v, want api.ErrNotFound", err)
				}
				continue
			}
			if errs[i] != nil {
				t.Errorf("Put(%s) = %v", a, errs[i])
			}
			if _, err := s.Get(d, a); err != nil {
				t.Errorf("Get(%s) = %v", a, err)
			}
			if !readers[i].ended() {
				t.Errorf("%s's reader was not read to its end", a)
			}
		}
		if n := s.stages.Load(); n != 1 {
			t.Errorf("private copies made = %d, want 1", n)
		}
		if blobs := files(t, s, "blobs/sha256"); len(blobs) != 1 {
			t.Errorf("blobs = %v, want one", blobs)
		}
		if tmp := files(t, s, "tmp"); len(tmp) > 0 {
			t.Errorf("tmp holds %v, want nothing", tmp)
		}
	})
}

// TestPutSameDigestLeaderFails: when the put that writes a digest fails,
// one that waited for it writes its own bytes.
func TestPutSameDigestLeaderFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, Config{})
		const data = "the real bytes"
		d := digestOf(data)
		gate := make(chan struct{})
		bad := &gatedReader{gate: gate, r: io.MultiReader(strings.NewReader("the real"), failingReader{})}
		var badErr, goodErr error
		var wg sync.WaitGroup
		wg.Go(func() { _, badErr = s.Put(t.Context(), "alice", bad, PutOptions{Want: d}) })
		synctest.Wait() // alice's put reads
		wg.Go(func() { _, goodErr = s.Put(t.Context(), "bob", strings.NewReader(data), PutOptions{Want: d}) })
		synctest.Wait() // bob's waits for it
		close(gate)
		wg.Wait()
		if badErr == nil || goodErr != nil {
			t.Fatalf("Put(alice, failing) = %v, Put(bob) = %v; want alice's to fail, bob's to store the data", badErr, goodErr)
		}
		if _, err := s.Get(d, "bob"); err != nil {
			t.Errorf("Get(bob) = %v", err)
		}
		if _, err := s.Get(d, "alice"); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("Get(alice) = %v, want api.ErrNotFound", err)
		}
	})
}

// gatedReader reads r once gate is closed, and notes how far it got.
type gatedReader struct {
	gate <-chan struct{}
	r    io.Reader

	mu       sync.Mutex
	began    bool
	finished bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	g.began = true
	g.mu.Unlock()
	<-g.gate
	n, err := g.r.Read(p)
	if err == io.EOF {
		g.mu.Lock()
		g.finished = true
		g.mu.Unlock()
	}
	return n, err
}

func (g *gatedReader) started() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.began }
func (g *gatedReader) ended() bool   { g.mu.Lock(); defer g.mu.Unlock(); return g.finished }
