package images

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

// distinctSIFs builds n images with different bytes, of the same size.
func distinctSIFs(t *testing.T, n int) ([]string, int64) {
	t.Helper()
	paths := make([]string, n)
	for i := range paths {
		paths[i] = testenv.BuildSIF(t, testenv.SIFFile("etc/which", 0o644, []byte(fmt.Sprintf("image %03d\n", i))))
	}
	fi, err := os.Stat(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	return paths, fi.Size()
}

func TestMaxImages(t *testing.T) {
	s := newStore(t, Config{})
	paths, _ := distinctSIFs(t, 3)
	lim := Limits{MaxImages: 2}
	for i, name := range []string{"a", "b"} {
		if _, err := addLimited(t, s, name, "alice", paths[i], lim); err != nil {
			t.Fatalf("add %s (image %d of 2) = %v", name, i+1, err)
		}
	}
	_, err := addLimited(t, s, "c", "alice", paths[2], lim)
	if !errors.Is(err, api.ErrDenied) || !strings.Contains(err.Error(), "owns 2 images, as many as containers.max_user_images allows") {
		t.Fatalf("third image = %v, want denied naming containers.max_user_images", err)
	}
	if _, err := addLimited(t, s, "a", "alice", paths[2], lim); err != nil {
		t.Errorf("replace a = %v, want it allowed: the count stays 2", err)
	}
	if _, err := addLimited(t, s, "c", "bob", paths[2], lim); err != nil {
		t.Errorf("bob's first image = %v, want it allowed: bounds are per account", err)
	}
	if _, err := addLimited(t, s, "c", "", paths[2], lim); err != nil {
		t.Errorf("site image = %v, want it allowed: site images count against no account", err)
	}
	if got := len(files(t, s, "tmp")); got != 0 {
		t.Errorf("%d partial copies left in tmp", got)
	}
}

func TestMaxImageBytes(t *testing.T) {
	s := newStore(t, Config{})
	paths, size := distinctSIFs(t, 3)
	lim := Limits{MaxBytes: 2*size + size/2}
	for i, name := range []string{"a", "b"} {
		if _, err := addLimited(t, s, name, "alice", paths[i], lim); err != nil {
			t.Fatalf("add %s = %v", name, err)
		}
	}
	_, err := addLimited(t, s, "c", "alice", paths[2], lim)
	if !errors.Is(err, api.ErrDenied) || !strings.Contains(err.Error(), "past containers.max_user_image_bytes") {
		t.Fatalf("third image = %v, want denied naming containers.max_user_image_bytes", err)
	}
	// The same bytes under a second name count again: a bound per name
	// is one a user can predict.
	if _, err := addLimited(t, s, "a2", "alice", paths[0], lim); !errors.Is(err, api.ErrDenied) {
		t.Errorf("second name for a's bytes = %v, want denied", err)
	}
	if err := s.Remove("alice/b", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := addLimited(t, s, "c", "alice", paths[2], lim); err != nil {
		t.Errorf("after removing b: add c = %v, want it allowed", err)
	}
}

// Adds racing each other pass the check before copying together; the one
// at commit lets only as many through as the bound allows.
func TestMaxImagesConcurrent(t *testing.T) {
	s := newStore(t, Config{})
	paths, _ := distinctSIFs(t, 4)
	var wg sync.WaitGroup
	errs := make([]error, len(paths))
	for i, p := range paths {
		wg.Go(func() { _, errs[i] = addLimited(t, s, fmt.Sprintf("img%d", i), "alice", p, Limits{MaxImages: 1}) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, api.ErrDenied):
			t.Errorf("add = %v, want nil or denied", err)
		}
	}
	list, err := s.List("alice")
	if err != nil {
		t.Fatal(err)
	}
	if ok != 1 || len(list) != 1 {
		t.Errorf("%d adds succeeded and alice has %d images, want 1 and 1", ok, len(list))
	}
	if got := len(files(t, s, "blobs/sha256")); got != 1 {
		t.Errorf("%d blobs, want 1: a refused add leaves no blob", got)
	}
}

func TestMinFreeSpace(t *testing.T) {
	s := newStore(t, Config{})
	good := testenv.BuildSIF(t)
	_, err := addLimited(t, s, "python", "alice", good, Limits{MinFree: 1 << 62})
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "containers.min_free_space") {
		t.Fatalf("add = %v, want unavailable naming containers.min_free_space", err)
	}
	requireEmpty(t, s)
	if _, err := addLimited(t, s, "python", "alice", good, Limits{MinFree: 1 << 20}); err != nil {
		t.Errorf("add leaving more than 1 MiB free = %v", err)
	}
}
