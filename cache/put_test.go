package cache

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
)

// TestRoundTrip puts, reads, lists, pins and removes one entry.
func TestRoundTrip(t *testing.T) {
	s := newStore(t, Config{})
	d := digestOf("hello")
	e := mustPut(t, s, "alice", "hello", PutOptions{Want: d, Source: "/data/hello.txt"})
	if e.Digest != d || e.Size != 5 || e.Source != "/data/hello.txt" || !slices.Equal(e.Readers, []string{"alice"}) || e.Added.IsZero() {
		t.Errorf("Put = %+v, want digest %s, size 5, source /data/hello.txt, readers [alice]", e, d)
	}
	got, err := s.Get(d, "alice")
	if err != nil || got.Digest != d || got.Size != 5 || got.Source != e.Source {
		t.Errorf("Get(alice) = %+v, %v; want %+v", got, err, e)
	}
	if admin, err := s.Get(d, ""); err != nil || !slices.Equal(admin.Readers, []string{"alice"}) {
		t.Errorf("Get(admin) = %+v, %v; want readers [alice]", admin, err)
	}
	if list, err := s.List("alice"); err != nil || len(list) != 1 || list[0].Digest != d {
		t.Errorf("List(alice) = %+v, %v; want the entry", list, err)
	}
	if list, err := s.List("bob"); err != nil || len(list) != 0 {
		t.Errorf("List(bob) = %+v, %v; want nothing", list, err)
	}
	total, by, err := s.Usage()
	if err != nil || total != 5 || by["alice"] != 5 || len(by) != 1 {
		t.Errorf("Usage = %d, %v, %v; want 5, alice 5", total, by, err)
	}

	path, release, err := s.Pin(d, "alice")
	if err != nil {
		t.Fatalf("Pin = %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "hello" {
		t.Errorf("blob %s holds %q, %v; want hello", path, b, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("blob mode = %v, %v; want 0644 (inside 0700 directories)", fi.Mode().Perm(), err)
	}
	if got, _ := s.Get(d, "alice"); got.Pins != 1 || !got.LastUsed.After(e.LastUsed) {
		t.Errorf("Get while pinned = %+v, want 1 pin, used after %v", got, e.LastUsed)
	}
	release()

	if err := s.Remove(d, "alice"); err != nil {
		t.Fatalf("Remove = %v", err)
	}
	if _, err := s.Get(d, "alice"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Get after Remove = %v, want api.ErrNotFound", err)
	}
	if err := s.Remove(d, "alice"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("second Remove = %v, want api.ErrNotFound", err)
	}
	requireEmpty(t, s)
}

// TestPutEmpty: no bytes are data too.
func TestPutEmpty(t *testing.T) {
	s := newStore(t, Config{MaxBytes: 10})
	e := mustPut(t, s, "alice", "", PutOptions{})
	if e.Digest != digestOf("") || e.Size != 0 {
		t.Errorf("Put(empty) = %+v, want %s, size 0", e, digestOf(""))
	}
}

// TestPutRefusals: refused puts say why and leave nothing behind.
func TestPutRefusals(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		c       Config
		ctx     context.Context
		account string
		r       io.Reader
		p       PutOptions
		kind    error
		want    string
	}{
		{name: "digest mismatch", account: "alice", r: strings.NewReader("hello"), p: PutOptions{Want: digestOf("other")},
			kind: api.ErrInvalid, want: "not to the expected " + digestOf("other")},
		{name: "bad digest", account: "alice", r: strings.NewReader("hello"), p: PutOptions{Want: "sha256:XYZ"},
			kind: api.ErrInvalid, want: "64 lowercase hex"},
		{name: "no account", r: strings.NewReader("hello"), kind: api.ErrInvalid, want: "no account"},
		{name: "past MaxSize", account: "alice", r: strings.NewReader("hello"), p: PutOptions{MaxSize: 4},
			kind: api.ErrTooLarge, want: "larger than 4 B, the limit for one entry"},
		{name: "past MaxSize with want", account: "alice", r: strings.NewReader("hello"), p: PutOptions{MaxSize: 4, Want: digestOf("hello")},
			kind: api.ErrTooLarge, want: "limit for one entry"},
		{name: "larger than the cache", c: Config{MaxBytes: 4}, account: "alice", r: strings.NewReader("hello"),
			kind: api.ErrTooLarge, want: "larger than the whole cache"},
		{name: "past quota", account: "alice", r: strings.NewReader("hello"), p: PutOptions{Quota: 4},
			kind: api.ErrDenied, want: "past its quota of 4 B"},
		{name: "min free", c: Config{MinFree: 1 << 62}, account: "alice", r: strings.NewReader("hello"),
			kind: api.ErrUnavailable, want: "must keep free"},
		{name: "cancelled", ctx: cancelled, account: "alice", r: strings.NewReader("hello"), kind: context.Canceled},
		{name: "reader fails", account: "alice", r: io.MultiReader(strings.NewReader("hel"), failingReader{}),
			kind: io.ErrUnexpectedEOF, want: "copy data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, tt.c)
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			e, err := s.Put(ctx, tt.account, tt.r, tt.p)
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Put = %+v, %v; want %v saying %q", e, err, tt.kind, tt.want)
			}
			requireEmpty(t, s)
		})
	}
}

// TestDedupAcrossTenants: the same bytes are stored once, but each
// account reads only what it put; another's entry does not exist for it,
// even by digest, and knowing the digest gives no access.
func TestDedupAcrossTenants(t *testing.T) {
	s := newStore(t, Config{})
	const data = "instrument run 42"
	d := digestOf(data)
	mustPut(t, s, "alice", data, PutOptions{Source: "/data/alice/run42"})

	// bob gets for alice's digest what he gets for a digest nobody stored.
	never := digestOf("nobody stored this")
	_, err := s.Get(d, "bob")
	_, neverErr := s.Get(never, "bob")
	if !errors.Is(err, api.ErrNotFound) || err.Error() != strings.ReplaceAll(neverErr.Error(), never, d) {
		t.Errorf("Get(alice's digest, bob) = %v; want api.ErrNotFound, as for a digest nobody stored (%v)", err, neverErr)
	}
	if _, _, err := s.Pin(d, "bob"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Pin(alice's digest, bob) = %v, want api.ErrNotFound", err)
	}
	if err := s.Remove(d, "bob"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Remove(alice's digest, bob) = %v, want api.ErrNotFound", err)
	}
	// Claiming the digest with other bytes gets bob nothing.
	if _, err := s.Put(t.Context(), "bob", strings.NewReader("not the data"), PutOptions{Want: d}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Put(bob, other bytes, want alice's digest) = %v, want api.ErrInvalid", err)
	}
	if _, err := s.Get(d, "bob"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Get(bob) after a put of other bytes = %v, want api.ErrNotFound", err)
	}

	stages := s.stages.Load()
	e := mustPut(t, s, "bob", data, PutOptions{Want: d, Source: "https://example.org/run42"})
	if s.stages.Load() != stages {
		t.Errorf("bob's put of bytes the cache holds wrote a private copy")
	}
	if e.Source != "https://example.org/run42" || !slices.Equal(e.Readers, []string{"bob"}) {
		t.Errorf("bob's entry = %+v, want his own source and only him as reader", e)
	}
	for _, account := range []string{"alice", "bob"} {
		if _, err := s.Get(d, account); err != nil {
			t.Errorf("Get(%s) = %v", account, err)
		}
	}
	if got, err := s.Get(d, "alice"); err != nil || got.Source != "/data/alice/run42" || !slices.Equal(got.Readers, []string{"alice"}) {
		t.Errorf("Get(alice) = %+v, %v; want her own source and only her as reader", got, err)
	}
	if admin, _ := s.Get(d, ""); !slices.Equal(admin.Readers, []string{"alice", "bob"}) {
		t.Errorf("Get(admin).Readers = %v, want [alice bob]", admin.Readers)
	}
	if blobs := files(t, s, "blobs/sha256"); !slices.Equal(blobs, []string{hexOf(d)}) {
		t.Errorf("blobs = %v, want one: %s", blobs, hexOf(d))
	}
	total, by, _ := s.Usage()
	if n := int64(len(data)); total != n || by["alice"] != n || by["bob"] != n {
		t.Errorf("Usage = %d, %v; want %d on disk, counted in full for each", total, by, n)
	}

	if err := s.Remove(d, "alice"); err != nil {
		t.Fatalf("Remove(alice) = %v", err)
	}
	if _, err := s.Get(d, "alice"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Get(alice) after her Remove = %v, want api.ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(s.blobDir(), hexOf(d))); err != nil {
		t.Errorf("blob after alice's Remove: %v; want it kept for bob", err)
	}
	if err := s.Remove(d, "bob"); err != nil {
		t.Fatalf("Remove(bob) = %v", err)
	}
	requireEmpty(t, s)
}

// TestPutAgain: an account that reads a digest puts it again without its
// bytes being read, and without it counting twice.
func TestPutAgain(t *testing.T) {
	s := newStore(t, Config{})
	d := mustPut(t, s, "alice", "hello", PutOptions{}).Digest
	e, err := s.Put(t.Context(), "alice", failingReader{}, PutOptions{Want: d, Quota: 5})
	if err != nil || e.Digest != d {
		t.Errorf("Put again = %+v, %v; want the entry, nothing read", e, err)
	}
	e = mustPut(t, s, "alice", "hello", PutOptions{Quota: 5})
	if e.Digest != d {
		t.Errorf("Put again unknown = %+v, want %s", e, d)
	}
	if tmp := files(t, s, "tmp"); len(tmp) > 0 {
		t.Errorf("tmp holds %v, want nothing", tmp)
	}
}

// TestQuota counts every entry an account reads in full, shared or not,
// in Put and Grant alike.
func TestQuota(t *testing.T) {
	s := newStore(t, Config{})
	q := PutOptions{Quota: 10}
	mustPut(t, s, "alice", "aaaaaa", q)
	if _, err := s.Put(t.Context(), "alice", strings.NewReader("bbbbbb"), q); !errors.Is(err, api.ErrDenied) || !strings.Contains(err.Error(), "quota") {
		t.Errorf("Put past quota = %v, want api.ErrDenied naming the quota", err)
	}
	b := mustPut(t, s, "bob", "bbbbbb", q).Digest
	if _, err := s.Put(t.Context(), "alice", strings.NewReader("bbbbbb"), PutOptions{Want: b, Quota: 10}); !errors.Is(err, api.ErrDenied) {
		t.Errorf("Put of bob's bytes past alice's quota = %v, want api.ErrDenied", err)
	}
	if _, err := s.Grant(b, "alice", q); !errors.Is(err, api.ErrDenied) {
		t.Errorf("Grant past quota = %v, want api.ErrDenied", err)
	}
	if _, err := s.Get(b, "alice"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Get after refused puts = %v, want api.ErrNotFound", err)
	}
	mustPut(t, s, "alice", "cccc", q) // exactly at the quota
	if tmp := files(t, s, "tmp"); len(tmp) > 0 {
		t.Errorf("tmp holds %v, want nothing", tmp)
	}
	if _, by, _ := s.Usage(); by["alice"] != 10 || by["bob"] != 6 {
		t.Errorf("Usage = %v, want alice 10, bob 6", by)
	}
}

// TestGrant gives an account an entry it proved it may read the source
// of, without the bytes.
func TestGrant(t *testing.T) {
	s := newStore(t, Config{})
	d := mustPut(t, s, "alice", "shared dataset", PutOptions{Source: "/site/data/ds"}).Digest
	e, err := s.Grant(d, "bob", PutOptions{Source: "/site/data/ds"})
	if err != nil || e.Digest != d || !slices.Equal(e.Readers, []string{"bob"}) {
		t.Fatalf("Grant = %+v, %v; want bob reading %s", e, err, d)
	}
	if _, err := s.Get(d, "bob"); err != nil {
		t.Errorf("Get(bob) after Grant = %v", err)
	}
	tests := []struct {
		name    string
		digest  string
		account string
		p       PutOptions
		kind    error
	}{
		{"not cached", digestOf("nothing"), "bob", PutOptions{}, api.ErrNotFound},
		{"bad digest", "sha256:../../etc", "bob", PutOptions{}, api.ErrInvalid},
		{"no account", d, "", PutOptions{}, api.ErrInvalid},
		{"other want", d, "carol", PutOptions{Want: digestOf("x")}, api.ErrInvalid},
		{"past MaxSize", d, "carol", PutOptions{MaxSize: 3}, api.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Grant(tt.digest, tt.account, tt.p); !errors.Is(err, tt.kind) {
				t.Errorf("Grant(%s, %q, %+v) = %v, want %v", tt.digest, tt.account, tt.p, err, tt.kind)
			}
		})
	}
}

// TestBadDigests: a digest from outside is checked before it names a
// path, in every method that takes one.
func TestBadDigests(t *testing.T) {
	s := newStore(t, Config{})
	for _, d := range []string{"", "sha256:", "sha256:../../../etc/passwd", strings.ToUpper(digestOf("x")),
		"sha512:" + hexOf(digestOf("x")), digestOf("x") + "\n", digestOf("x")[:70], "sha256:/" + hexOf(digestOf("x"))[1:]} {
		t.Run(clip(d), func(t *testing.T) {
			_, getErr := s.Get(d, "alice")
			_, _, pinErr := s.Pin(d, "alice")
			_, grantErr := s.Grant(d, "alice", PutOptions{})
			for name, err := range map[string]error{"Get": getErr, "Pin": pinErr, "Remove": s.Remove(d, "alice"), "Grant": grantErr} {
				if !errors.Is(err, api.ErrInvalid) {
					t.Errorf("%s(%q) = %v, want api.ErrInvalid", name, d, err)
				}
			}
		})
	}
}

// failingReader fails every read.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// TestLastUsedPerReader: an account sees its own last use of a shared
// entry, not when another account used it; the admin sees the last use
// by anyone, which orders eviction. Both outlive a restart.
func TestLastUsedPerReader(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	s := openStore(t, Config{Dir: dir})
	const data = "shared"
	alice := mustPut(t, s, "alice", data, PutOptions{}).LastUsed
	mustPut(t, s, "bob", data, PutOptions{})
	_, release, err := s.Pin(digestOf(data), "bob")
	if err != nil {
		t.Fatal(err)
	}
	release()
	check := func(when string) {
		t.Helper()
		a, _ := s.Get(digestOf(data), "alice")
		b, _ := s.Get(digestOf(data), "bob")
		admin, _ := s.Get(digestOf(data), "")
		if !a.LastUsed.Equal(alice) {
			t.Errorf("%s: alice's LastUsed = %v, want her own put's %v, not bob's uses", when, a.LastUsed, alice)
		}
		if !b.LastUsed.After(a.LastUsed) || !admin.LastUsed.Equal(b.LastUsed) {
			t.Errorf("%s: bob's LastUsed = %v, admin's %v; want bob's pin, later than %v, for both", when, b.LastUsed, admin.LastUsed, alice)
		}
	}
	check("pinned")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = newStore(t, Config{Dir: dir})
	check("after a restart")
}

// TestLastUsedOldRecord: a record written before readers kept their last
// use shows a reader its Added, not the entry's last use by anyone.
func TestLastUsedOldRecord(t *testing.T) {
	s := newStore(t, Config{})
	d := mustPut(t, s, "alice", "old", PutOptions{}).Digest
	old := `{"size":3,"added":"2025-01-01T00:00:00Z","last_used":"2025-01-05T00:00:00Z","readers":{"alice":{"added":"2025-01-02T00:00:00Z"}}}`
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEntries).Put(key(hexOf(d)), []byte(old)) }); err != nil {
		t.Fatal(err)
	}
	a, err := s.Get(d, "alice")
	if want := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC); err != nil || !a.LastUsed.Equal(want) {
		t.Errorf("Get(alice) = %+v, %v; want LastUsed %v, her Added", a, err, want)
	}
	if admin, _ := s.Get(d, ""); !admin.LastUsed.Equal(time.Date(2025, 1, 5, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Get(admin).LastUsed = %v, want the record's 2025-01-05", admin.LastUsed)
	}
}
