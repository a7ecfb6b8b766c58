package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

// newStore opens a store in a new directory (when c.Dir is "") with a
// clock that moves one second a reading, and closes it when the test
// ends.
func newStore(t *testing.T, c Config) *Store {
	t.Helper()
	if c.Dir == "" {
		c.Dir = filepath.Join(t.TempDir(), "cache")
	}
	s := openStore(t, c)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	return s
}

// openStore opens the store of c, with a test clock; the caller closes it.
func openStore(t *testing.T, c Config) *Store {
	t.Helper()
	s, err := Open(c, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("Open(%+v) = %v", c, err)
	}
	s.now = newClock().now
	return s
}

// clock is a time that moves one second each time it is read, so that
// every use is later than the one before.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// digestOf is the digest of data as the cache writes it.
func digestOf(data string) string {
	sum := sha256.Sum256([]byte(data))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// mustPut puts data for account and fails the test if that fails.
func mustPut(t *testing.T, s *Store, account, data string, p PutOptions) Entry {
	t.Helper()
	e, err := s.Put(t.Context(), account, strings.NewReader(data), p)
	if err != nil {
		t.Fatalf("Put(%s, %q) = %v", account, clip(data), err)
	}
	return e
}

// files lists the names in dir under the store's Dir.
func files(t *testing.T, s *Store, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.c.Dir, dir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// requireEmpty fails the test unless the store holds no entry, no blob
// and no private copy.
func requireEmpty(t *testing.T, s *Store) {
	t.Helper()
	if tmp := files(t, s, "tmp"); len(tmp) > 0 {
		t.Errorf("tmp holds %v, want nothing", tmp)
	}
	if blobs := files(t, s, "blobs/sha256"); len(blobs) > 0 {
		t.Errorf("blobs are %v, want none", blobs)
	}
	if list, err := s.List(""); err != nil || len(list) > 0 {
		t.Errorf("List(admin) = %+v, %v; want no entries", list, err)
	}
}

// hexOf is the hex part of digest.
func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

func TestOpenRefuses(t *testing.T) {
	testenv.RequireRoot(t) // to give a directory to another user
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns Config.Dir
		want  string
	}{
		{"relative", func(*testing.T, string) string { return "state/cache" }, "absolute path"},
		{"symlink", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "cache")
			if err := os.Mkdir(filepath.Join(dir, "real"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(dir, "real"), p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "symlink"},
		{"a file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "cache")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, "move it away"},
		{"owned by another user", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "cache")
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return p
		}, "owned by uid 65534"},
		{"blob directory a symlink", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "cache")
			if err := os.MkdirAll(filepath.Join(p, "blobs"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/etc", filepath.Join(p, "blobs", "sha256")); err != nil {
				t.Fatal(err)
			}
			return p
		}, "symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t, t.TempDir())
			s, err := Open(Config{Dir: dir}, zerolog.New(zerolog.NewTestWriter(t)))
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open(%s) = %v, want api.ErrInvalid saying %q", dir, err, tt.want)
			}
		})
	}
}

// TestOpenTightens: a cache directory open to others is made private.
func TestOpenTightens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	newStore(t, Config{Dir: dir})
	for _, d := range []string{"", "blobs", "blobs/sha256", "tmp"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("mode of %s/%s = %v, %v; want 0700", dir, d, fi.Mode().Perm(), err)
		}
	}
}

// TestOpenLocked: only one process (here, one open) has the cache.
func TestOpenLocked(t *testing.T) {
	s := newStore(t, Config{})
	second, err := Open(s.c, zerolog.New(zerolog.NewTestWriter(t)))
	if err == nil {
		second.Close()
	}
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open = %v, want api.ErrUnavailable saying it is in use", err)
	}
}

// TestClosed: after Close, methods fail with api.ErrUnavailable and a
// release does nothing.
func TestClosed(t *testing.T) {
	s := openStore(t, Config{Dir: filepath.Join(t.TempDir(), "cache")})
	d := mustPut(t, s, "alice", "hello", PutOptions{}).Digest
	_, release, err := s.Pin(d, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	release()
	_, putErr := s.Put(t.Context(), "alice", strings.NewReader("more"), PutOptions{})
	_, getErr := s.Get(d, "alice")
	_, listErr := s.List("alice")
	_, _, usageErr := s.Usage()
	for name, err := range map[string]error{"Put": putErr, "Get": getErr, "List": listErr, "Usage": usageErr, "Remove": s.Remove(d, "alice")} {
		if !errors.Is(err, api.ErrUnavailable) {
			t.Errorf("%s after Close = %v, want api.ErrUnavailable", name, err)
		}
	}
}
