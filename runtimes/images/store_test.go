package images

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/rs/zerolog"
	sifv2 "github.com/sylabs/sif/v2/pkg/sif"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/runtimes/sif"
)

// newStore opens a store in a new directory (when c.Dir is "") and closes
// it when the test ends.
func newStore(t *testing.T, c Config) *Store {
	t.Helper()
	if c.Dir == "" {
		c.Dir = filepath.Join(t.TempDir(), "images")
	}
	s, err := Open(c, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("Open(%+v) = %v", c, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	return s
}

// addPath adds the file at path through Add.
func addPath(t *testing.T, s *Store, name, owner, path string) (Image, error) {
	t.Helper()
	return addLimited(t, s, name, owner, path, Limits{})
}

// addLimited adds the file at path, read as root, under owner's name,
// within lim.
func addLimited(t *testing.T, s *Store, name, owner, path string, lim Limits) (Image, error) {
	t.Helper()
	return s.addFile(t.Context(), name, owner, path, lim, func() (*os.File, error) { return openFile(path) })
}

// mustAdd adds the file at path and fails the test if that fails.
func mustAdd(t *testing.T, s *Store, name, owner, path string) Image {
	t.Helper()
	img, err := addPath(t, s, name, owner, path)
	if err != nil {
		t.Fatalf("Add(%s, %q) = %v", name, owner, err)
	}
	return img
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

// refs lists the names of images.
func refs(list []Image) []string {
	var names []string
	for _, img := range list {
		names = append(names, img.Name)
	}
	return names
}

// otherArch is an architecture that is not the host's.
func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

func TestAddGetListRemove(t *testing.T) {
	s := newStore(t, Config{})
	path := testenv.BuildSIF(t)
	var want struct {
		sif.Image
		Digest string // as sha256sum says
	}
	var err error
	want.Image, err = sif.Inspect(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testenv.RequireCommand(t, "sha256sum"), path).Output()
	if err != nil {
		t.Fatalf("sha256sum: %v", err)
	}
	want.Digest = "sha256:" + strings.Fields(string(out))[0]
	img := mustAdd(t, s, "python", "", path)
	if img.Name != "python" || img.Owner != "" || img.Digest != want.Digest || img.Size != want.Size ||
		img.Arch != runtime.GOARCH || img.Source != path || img.Added.IsZero() || img.Signers != nil {
		t.Errorf("Add = %+v, want python with digest %s, size %d, source %s", img, want.Digest, want.Size, path)
	}
	blob := filepath.Join(s.c.Dir, "blobs", "sha256", strings.TrimPrefix(want.Digest, "sha256:"))
	if fi, err := os.Stat(blob); err != nil || fi.Size() != want.Size || fi.Mode().Perm() != 0o600 {
		t.Errorf("blob %s: %v, %v; want a 0600 file of %d bytes", blob, fi, err, want.Size)
	}
	got, err := s.Get("python", "alice")
	if err != nil || got.Digest != img.Digest || !got.Added.Equal(img.Added) {
		t.Errorf("Get(python) = %+v, %v; want %+v", got, err, img)
	}
	if list, err := s.List("alice"); err != nil || !slices.Equal(refs(list), []string{"python"}) {
		t.Errorf("List(alice) = %v, %v; want [python]", refs(list), err)
	}
	if err := s.Remove("python", ""); err != nil {
		t.Fatalf("Remove(python) = %v", err)
	}
	if _, err := s.Get("python", ""); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Get(python) after Remove = %v, want api.ErrNotFound", err)
	}
	if err := s.Remove("python", ""); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Remove(python) twice = %v, want api.ErrNotFound", err)
	}
	if b := files(t, s, "blobs/sha256"); len(b) != 0 {
		t.Errorf("blobs after Remove = %v, want none", b)
	}
	if tmp := files(t, s, "tmp"); len(tmp) != 0 {
		t.Errorf("tmp = %v, want empty", tmp)
	}
}

func TestSharedBlobs(t *testing.T) {
	s := newStore(t, Config{})
	a := testenv.BuildSIF(t)
	b := testenv.BuildSIF(t, testenv.SIFFile("opt/b", 0o644, []byte("b\n")))
	imgA := mustAdd(t, s, "python", "", a)
	mustAdd(t, s, "py3", "", a)
	mustAdd(t, s, "python", "alice", a)
	if blobs := files(t, s, "blobs/sha256"); len(blobs) != 1 {
		t.Fatalf("blobs for three names of the same bytes = %v, want one", blobs)
	}

	if err := s.Remove("py3", ""); err != nil {
		t.Fatal(err)
	}
	if blobs := files(t, s, "blobs/sha256"); len(blobs) != 1 {
		t.Errorf("blobs after removing one of three names = %v, want the shared one kept", blobs)
	}

	imgB := mustAdd(t, s, "python", "", b) // re-add: python now names b
	if got, err := s.Get("python", ""); err != nil || got.Digest != imgB.Digest {
		t.Errorf("Get(python) after re-add = %+v, %v; want digest %s", got, err, imgB.Digest)
	}
	if blobs := files(t, s, "blobs/sha256"); len(blobs) != 2 {
		t.Errorf("blobs = %v, want a's (still alice/python) and b's", blobs)
	}
	mustAdd(t, s, "python", "alice", b) // a is no longer named
	want := []string{strings.TrimPrefix(imgB.Digest, "sha256:")}
	if blobs := files(t, s, "blobs/sha256"); !slices.Equal(blobs, want) {
		t.Errorf("blobs after the last name of %s moved = %v, want %v", imgA.Digest, blobs, want)
	}
}

func TestConcurrentAdds(t *testing.T) {
	s := newStore(t, Config{})
	path := testenv.BuildSIF(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := addPath(t, s, "n"+string(rune('0'+i)), "", path); err != nil {
				t.Errorf("Add(n%d) = %v", i, err)
			}
		})
	}
	wg.Wait()
	if list, err := s.List(""); err != nil || len(list) != 8 {
		t.Errorf("List = %v, %v; want 8 images", refs(list), err)
	}
	if blobs := files(t, s, "blobs/sha256"); len(blobs) != 1 {
		t.Errorf("blobs = %v, want one", blobs)
	}
	if tmp := files(t, s, "tmp"); len(tmp) != 0 {
		t.Errorf("tmp = %v, want empty", tmp)
	}
}

func TestVisibility(t *testing.T) {
	s := newStore(t, Config{})
	a := testenv.BuildSIF(t)
	mustAdd(t, s, "python", "", a)
	mustAdd(t, s, "python", "alice", a)
	mustAdd(t, s, "torch", "bob", a)

	lists := map[string][]string{
		"alice": {"alice/python", "python"},
		"bob":   {"bob/torch", "python"},
		"carol": {"python"},
		"":      {"alice/python", "bob/torch", "python"},
	}
	for account, want := range lists {
		if list, err := s.List(account); err != nil || !slices.Equal(refs(list), want) {
			t.Errorf("List(%q) = %v, %v; want %v", account, refs(list), err, want)
		}
	}
	for _, account := range []string{"alice", "bob", ""} {
		if _, err := s.Get("python", account); err != nil {
			t.Errorf("Get(python, %q) = %v, want the site image", account, err)
		}
	}
	if img, err := s.Get("alice/python", "alice"); err != nil || img.Owner != "alice" {
		t.Errorf("Get(alice/python, alice) = %+v, %v", img, err)
	}
	if _, err := s.Get("alice/python", ""); err != nil {
		t.Errorf("Get(alice/python, admin) = %v", err)
	}

	hidden, err := s.Get("alice/python", "bob")
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get(alice/python, bob) = %+v, %v; want api.ErrNotFound", hidden, err)
	}
	if err := s.Remove("alice/python", "bob"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Remove(alice/python, bob) = %v, want api.ErrNotFound", err)
	}
	if err := s.Remove("python", "bob"); !errors.Is(err, api.ErrDenied) || !strings.Contains(err.Error(), "site admin") {
		t.Errorf("Remove(python, bob) = %v, want api.ErrDenied naming the site admin", err)
	}
	if err := s.Remove("alice/python", "alice"); err != nil {
		t.Fatalf("Remove(alice/python, alice) = %v", err)
	}
	_, gone := s.Get("alice/python", "bob")
	if gone == nil || gone.Error() != err.Error() {
		t.Errorf("Get as bob of alice's image said %q while it existed and %v once removed; want the same answer", err, gone)
	}
	if err := s.Remove("bob/torch", ""); err != nil {
		t.Errorf("Remove(bob/torch, admin) = %v", err)
	}
	if blobs := files(t, s, "blobs/sha256"); len(blobs) != 1 {
		t.Errorf("blobs = %v, want the one python still names", blobs)
	}
}

func TestNames(t *testing.T) {
	s := newStore(t, Config{})
	path := testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFFile("x", 0o644, nil))
	valid := []string{"python", "py3.11", "a", "0x", "x_y-z", strings.Repeat("a", 64)}
	for _, name := range valid {
		if _, err := addPath(t, s, name, "", path); err != nil {
			t.Errorf("Add(%q) = %v, want it accepted", name, err)
		}
	}
	invalid := []string{"", "Python", ".x", "-x", "_x", "a/b", "a b", "é", strings.Repeat("a", 65), "../x"}
	for _, name := range invalid {
		if _, err := addPath(t, s, name, "", path); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("Add(%q) = %v, want api.ErrInvalid", name, err)
		}
		if _, err := s.Get(name, ""); !errors.Is(err, api.ErrInvalid) && !strings.Contains(name, "/") {
			t.Errorf("Get(%q) = %v, want api.ErrInvalid", name, err)
		}
	}
	// Owners are accounts, named by NSS: more than image names allow,
	// but never a "/" (it separates owner and name).
	for _, owner := range []string{"Alice", "_svc", "alice@ad.example.org", "x.y-z"} {
		if img, err := addPath(t, s, "ok", owner, path); err != nil || img.Name != owner+"/ok" {
			t.Errorf("Add(ok, owner %q) = %+v, %v; want %s/ok", owner, img, err, owner)
		}
	}
	for _, owner := range []string{"a/b", "x\x00y"} {
		if _, err := addPath(t, s, "ok", owner, path); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("Add(ok, owner %q) = %v, want api.ErrInvalid", owner, err)
		}
	}
	for _, ref := range []string{"a/b/c", "/python", "alice/", "alice/Python"} {
		if _, err := s.Get(ref, ""); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "owner/name") {
			t.Errorf("Get(%q) = %v, want api.ErrInvalid explaining references", ref, err)
		}
	}
	for _, d := range []string{"", "sha256:", "sha256:../../etc/passwd", "md5:" + strings.Repeat("0", 64),
		"sha256:" + strings.Repeat("A", 64), "sha256:" + strings.Repeat("0", 63), "sha256:" + strings.Repeat("0", 64) + "/x"} {
		if _, _, err := s.Mount(t.Context(), d); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("Mount(%q) = %v, want api.ErrInvalid", d, err)
		}
	}
}

func TestRefusalsLeaveNothing(t *testing.T) {
	good := testenv.BuildSIF(t)
	fi, err := os.Stat(good)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		maxSize int64
		want    error
	}{
		{"not a SIF", testenv.WriteTemp(t, "x.sif", []byte("hello, not an image\n")), 0, sif.ErrNotSIF},
		{"empty", testenv.WriteTemp(t, "x.sif", nil), 0, sif.ErrNotSIF},
		{"truncated", testenv.TruncatedCopy(t, good, fi.Size()/2), 0, sif.ErrTruncated},
		{"wrong arch", testenv.BuildSIF(t, testenv.SIFArch(otherArch())), 0, sif.ErrWrongArch},
		{"no root fs", testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFPartType(sifv2.PartData)), 0, sif.ErrNoRootfs},
		{"over maxSize", good, fi.Size() - 1, api.ErrTooLarge},
		{"device node", testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFFile("bin/sh", 0o755, nil),
			testenv.SIFDevice("usr/share/console", 5, 1)), 0, api.ErrInvalid},
		{"rootfs does not mount", testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFRootfsBytes(brokenSquashfs(t, good))), 0, api.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Config{})
			img, err := addLimited(t, s, "python", "alice", tt.path, Limits{MaxSize: tt.maxSize})
			if !errors.Is(err, tt.want) || !(errors.Is(err, api.ErrInvalid) || errors.Is(err, api.ErrTooLarge)) {
				t.Fatalf("Add = %+v, %v; want %v (api.ErrInvalid or, for size, api.ErrTooLarge)", img, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "add image alice/python from "+tt.path+": ") || strings.Contains(err.Error(), s.c.Dir) {
				t.Errorf("Add error %q: want it to name the image and the file given, not the private copy", err)
			}
			requireEmpty(t, s)
		})
	}
	t.Run("at maxSize", func(t *testing.T) {
		s := newStore(t, Config{})
		if _, err := addLimited(t, s, "python", "", good, Limits{MaxSize: fi.Size()}); err != nil {
			t.Errorf("Add(maxSize = size) = %v, want it accepted", err)
		}
	})
}

// brokenSquashfs returns the squashfs of the SIF at path with all but
// its superblock overwritten: it passes sif.Inspect, but no kernel mounts it.
func brokenSquashfs(t *testing.T, path string) []byte {
	off, size := testenv.SIFRootfs(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const superblock = 96
	fs := bytes.Clone(b[off : off+size])
	copy(fs[superblock:], bytes.Repeat([]byte{0xa5}, len(fs)-superblock))
	return fs
}

// requireEmpty fails the test unless the store holds no name, blob or
// partial copy.
func requireEmpty(t *testing.T, s *Store) {
	t.Helper()
	if list, err := s.List(""); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want no image", refs(list), err)
	}
	for _, dir := range []string{"tmp", "blobs/sha256", "mnt"} {
		if names := files(t, s, dir); len(names) != 0 {
			t.Errorf("%s = %v, want empty", dir, names)
		}
	}
}

func TestRequireSigned(t *testing.T) {
	signer, stranger := testenv.NewKey(t, "signer"), testenv.NewKey(t, "stranger")
	unsigned := testenv.BuildSIF(t)
	signed := testenv.SignedCopy(t, unsigned, signer)
	s := newStore(t, Config{RequireSigned: true, KeyRing: openpgp.EntityList{signer}})

	img, err := addPath(t, s, "python", "", signed)
	if fp := testenv.Fingerprint(signer); err != nil || !slices.Equal(img.Signers, []string{fp}) {
		t.Fatalf("Add(signed) = %+v, %v; want signer %s", img, err, fp)
	}
	if got, err := s.Get("python", ""); err != nil || !slices.Equal(got.Signers, img.Signers) {
		t.Errorf("Get = %+v, %v; want signers %v", got, err, img.Signers)
	}
	if err := s.Remove("python", ""); err != nil {
		t.Fatal(err)
	}

	for name, tt := range map[string]struct {
		path string
		want error
	}{
		"unsigned":       {unsigned, sif.ErrUnsigned},
		"unknown signer": {testenv.SignedCopy(t, unsigned, stranger), sif.ErrUnknownSigner},
	} {
		t.Run(name, func(t *testing.T) {
			if img, err := addPath(t, s, "python", "", tt.path); !errors.Is(err, tt.want) || !errors.Is(err, api.ErrDenied) {
				t.Errorf("Add = %+v, %v; want %v (api.ErrDenied)", img, err, tt.want)
			}
			requireEmpty(t, s)
		})
	}

	for _, kr := range []openpgp.KeyRing{nil, openpgp.EntityList{}} {
		c := Config{Dir: filepath.Join(t.TempDir(), "images"), RequireSigned: true, KeyRing: kr}
		if s, err := Open(c, zerolog.Nop()); !errors.Is(err, api.ErrInvalid) {
			if err == nil {
				s.Close()
			}
			t.Errorf("Open(RequireSigned, keyring %v) = %v, want api.ErrInvalid", kr, err)
		}
	}
}

func TestReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	s := newStore(t, Config{Dir: dir})
	a := mustAdd(t, s, "a", "", testenv.BuildSIF(t))
	b := mustAdd(t, s, "b", "bob", testenv.BuildSIF(t, testenv.SIFFile("opt/b", 0o644, []byte("b\n"))))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close twice = %v, want nil", err)
	}
	if _, err := s.Get("a", ""); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("Get after Close = %v, want api.ErrUnavailable", err)
	}

	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.Remove(filepath.Join(blobs, strings.TrimPrefix(a.Digest, "sha256:"))); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(blobs, hex.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	partial := filepath.Join(dir, "tmp", "add-123.sif")
	for _, p := range []string{stray, partial} {
		if err := os.WriteFile(p, []byte("left over"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	s = newStore(t, Config{Dir: dir})
	if _, err := s.Get("a", ""); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Get(a) whose blob was deleted = %v, want api.ErrNotFound", err)
	}
	if got, err := s.Get("bob/b", "bob"); err != nil || got.Digest != b.Digest || got.Source != b.Source {
		t.Errorf("Get(bob/b) after reopen = %+v, %v; want %+v", got, err, b)
	}
	if names := files(t, s, "blobs/sha256"); !slices.Equal(names, []string{strings.TrimPrefix(b.Digest, "sha256:")}) {
		t.Errorf("blobs after reopen = %v, want only b's", names)
	}
	if names := files(t, s, "tmp"); len(names) != 0 {
		t.Errorf("tmp after reopen = %v, want empty", names)
	}
}

func TestOpenRefuses(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		says string
	}{
		{"relative", "images", "absolute"},
		{"empty", "", "absolute"},
		{"symlink", link, "symlink"},
		{"file", testenv.WriteTemp(t, "images", nil), "move it away"},
	}
	if os.Geteuid() == 0 {
		foreign := filepath.Join(t.TempDir(), "images")
		if err := os.Mkdir(foreign, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct{ name, dir, says string }{"not root's", foreign, "owned by uid 65534"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(Config{Dir: tt.dir}, zerolog.New(zerolog.NewTestWriter(t)))
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Open(%q) = %v; want api.ErrInvalid saying %q", tt.dir, err, tt.says)
			}
		})
	}

	t.Run("in use", func(t *testing.T) {
		s := newStore(t, Config{})
		s2, err := Open(s.c, zerolog.Nop())
		if err == nil {
			s2.Close()
		}
		if want := fmt.Sprintf("another fxd (pid %d)", os.Getpid()); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), want) {
			t.Errorf("second Open of %s = %v; want api.ErrUnavailable saying %q", s.c.Dir, err, want)
		}
	})
	t.Run("mode tightened", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "images")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		newStore(t, Config{Dir: dir})
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("Dir mode after Open = %v, %v; want 0700", fi.Mode(), err)
		}
	})
}
