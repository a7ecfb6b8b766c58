package cache

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOpenRecovers plants what a crash leaves (an orphan blob, a partial
// copy, entries whose blob is gone or of the wrong size, an entry removed
// while pinned) and checks that Open cleans up all of it and keeps the
// rest.
func TestOpenRecovers(t *testing.T) {
	c := Config{Dir: filepath.Join(t.TempDir(), "cache")}
	s := openStore(t, c)
	kept := mustPut(t, s, "alice", "kept", PutOptions{}).Digest
	gone := mustPut(t, s, "alice", "blob gone", PutOptions{}).Digest
	wrong := mustPut(t, s, "bob", "blob of the wrong size", PutOptions{}).Digest
	removed := mustPut(t, s, "bob", "removed while pinned", PutOptions{}).Digest
	if _, _, err := s.Pin(removed, "bob"); err != nil { // never released: the process "dies"
		t.Fatal(err)
	}
	if err := s.Remove(removed, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	orphan := hexOf(digestOf("a put that crashed before its entry was written"))
	plant := map[string]string{
		filepath.Join("blobs", "sha256", orphan): "a put that crashed before its entry was written",
		filepath.Join("tmp", "put-123456"):       "a partial co",
		filepath.Join("blobs", "sha256", "junk"): "not a digest",
	}
	for p, data := range plant {
		if err := os.WriteFile(filepath.Join(c.Dir, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(c.Dir, "blobs", "sha256", hexOf(gone))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "blobs", "sha256", hexOf(wrong)), []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}

	s = newStore(t, c)
	if got := entries(t, s); !slices.Equal(got, []string{kept}) {
		t.Errorf("entries after Open = %v, want only %s (dropped: %s gone, %s wrong size, %s removed)", got, kept, gone, wrong, removed)
	}
	if blobs := files(t, s, "blobs/sha256"); !slices.Equal(blobs, []string{hexOf(kept)}) {
		t.Errorf("blobs after Open = %v, want only %s", blobs, hexOf(kept))
	}
	if tmp := files(t, s, "tmp"); len(tmp) > 0 {
		t.Errorf("tmp after Open holds %v, want nothing", tmp)
	}
	path, release, err := s.Pin(kept, "alice")
	if err != nil {
		t.Fatalf("Pin(kept) = %v", err)
	}
	defer release()
	if b, err := os.ReadFile(path); err != nil || string(b) != "kept" {
		t.Errorf("kept blob = %q, %v", b, err)
	}
	// A dropped entry can be put again.
	if e := mustPut(t, s, "alice", "blob gone", PutOptions{}); e.Digest != gone || !strings.HasPrefix(e.Digest, "sha256:") {
		t.Errorf("Put again = %+v, want %s", e, gone)
	}
}

// TestLastUsedSurvives: the uses pins note are in the index after Close.
func TestLastUsedSurvives(t *testing.T) {
	c := Config{Dir: filepath.Join(t.TempDir(), "cache")}
	s := openStore(t, c)
	d := mustPut(t, s, "alice", "hello", PutOptions{}).Digest
	_, release, err := s.Pin(d, "alice")
	if err != nil {
		t.Fatal(err)
	}
	release()
	want, err := s.Get(d, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = newStore(t, c)
	got, err := s.Get(d, "alice")
	if err != nil || !got.LastUsed.Equal(want.LastUsed) {
		t.Errorf("LastUsed after reopen = %v, %v; want %v", got.LastUsed, err, want.LastUsed)
	}
}
