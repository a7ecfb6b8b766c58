package runtimes

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation"
)

// dataPlace stands for a state dir: a data cache, whose blobs are root's
// (0644) in a directory only root may enter, and the pools' task data
// dir, on one file system.
type dataPlace struct {
	cache   string
	dataDir string
}

func newDataPlace(t testing.TB) *dataPlace {
	t.Helper()
	dir, err := os.MkdirTemp("", "fxd-data-") // t.TempDir's parent is 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	d := &dataPlace{cache: filepath.Join(dir, "cache"), dataDir: filepath.Join(dir, "task-data")}
	if err := os.Mkdir(d.cache, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

// blob stores content in the cache as the cache does and returns its path.
func (d *dataPlace) blob(t testing.TB, content string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(content))
	p := filepath.Join(d.cache, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// workerDirs lists the worker directories in the data dir.
func (d *dataPlace) workerDirs(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(d.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.Name() != ".lock" {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs
}

// withData returns j reading files.
func (j Job) withData(files ...DataFile) Job {
	j.Data = files
	return j
}

func TestCheckData(t *testing.T) {
	src := "/var/lib/fxd/cache/blobs/ab"
	for _, tc := range []struct {
		name  string
		files []DataFile
		words string // "" = accepted
	}{
		{"none", nil, ""},
		{"plain and nested", []DataFile{{src, "input.h5"}, {src, "run-1/part_2.dat"}, {src, "run-1/deep/.x"}}, ""},
		{"empty", []DataFile{{src, ""}}, `data name ""`},
		{"absolute", []DataFile{{src, "/etc/passwd"}}, `data name "/etc/passwd"`},
		{"dot-dot", []DataFile{{src, "../x"}}, `data name "../x"`},
		{"dot-dot inside", []DataFile{{src, "a/../../x"}}, "want a relative path"},
		{"dot", []DataFile{{src, "."}}, "want a relative path"},
		{"dot element", []DataFile{{src, "a/./b"}}, "want a relative path"},
		{"doubled slash", []DataFile{{src, "a//b"}}, "want a relative path"},
		{"trailing slash", []DataFile{{src, "a/"}}, "want a relative path"},
		{"space", []DataFile{{src, "a b"}}, "want a relative path"},
		{"not ascii", []DataFile{{src, "données"}}, "want a relative path"},
		{"too long", []DataFile{{src, strings.Repeat("a", 256)}}, "want a relative path"},
		{"twice", []DataFile{{src, "a"}, {"/other", "a"}}, "named twice"},
		{"file and directory", []DataFile{{src, "a/b/c"}, {src, "a"}}, `"a" is a data file`},
		{"relative source", []DataFile{{"blobs/ab", "a"}}, "want the absolute, clean path"},
		{"unclean source", []DataFile{{"/cache/../etc/shadow", "a"}}, "want the absolute, clean path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkData(tc.files)
			switch {
			case tc.words == "" && err != nil:
				t.Errorf("checkData(%q) = %v, want nil", tc.files, err)
			case tc.words != "" && (!errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.words)):
				t.Errorf("checkData(%q) = %v, want invalid saying %q", tc.files, err, tc.words)
			}
		})
	}
}

func TestDataKey(t *testing.T) {
	a, b := DataFile{"/c/1", "a"}, DataFile{"/c/2", "b"}
	for _, tc := range []struct {
		name string
		x, y []DataFile
		same bool
	}{
		{"order", []DataFile{a, b}, []DataFile{b, a}, true},
		{"none", nil, []DataFile{}, true},
		{"none and some", nil, []DataFile{a}, false},
		{"other source", []DataFile{a}, []DataFile{{"/c/3", "a"}}, false},
		{"other name", []DataFile{a}, []DataFile{{"/c/1", "b"}}, false},
		{"subset", []DataFile{a, b}, []DataFile{a}, false},
	} {
		if got := dataKey(tc.x) == dataKey(tc.y); got != tc.same {
			t.Errorf("%s: dataKey(%v) == dataKey(%v) is %v, want %v", tc.name, tc.x, tc.y, got, tc.same)
		}
	}
}

// A task reads its data files, read-only, at $FXD_DATA as its account;
// another account cannot; workers are kept per data set; a worker's data
// goes with it.
func TestData(t *testing.T) {
	testenv.RequireRoot(t)
	d := newDataPlace(t)
	f := newFixtureData(t, conf.Workers{IdleTimeout: conf.Duration(time.Minute)}, d.dataDir)
	a, b := d.blob(t, "alpha\n"), d.blob(t, "beta\n")
	data := []DataFile{{Source: a, Name: "a.txt"}, {Source: b, Name: "sub/b.txt"}}
	read := f.command("sh", "-c", `echo "$FXD_DATA"; cat "$FXD_DATA/a.txt" "$FXD_DATA/sub/b.txt"`).withData(data...)

	first := f.pools.Run(t.Context(), read, 4)
	dir, out, _ := strings.Cut(string(first.Output), "\n")
	if first.State != api.StateSucceeded || !first.Cold || out != "alpha\nbeta\n" || dir != filepath.Join(d.dataDir, first.Worker) {
		t.Fatalf("read data = %s %q (error %q, stderr %q), want alpha, beta from %s", first.State, first.Output, first.Error, first.Stderr,
			filepath.Join(d.dataDir, first.Worker))
	}
	checkDataDir(t, dir, f.acct, map[string]string{"a.txt": a, "sub/b.txt": b})

	// Read-only: the directories are root's (the account reads them
	// through an ACL), the files the cache's own (root's, 0644): the
	// account can neither change a file nor the directory, nor move or
	// link a file out to keep its bytes past the cache's eviction.
	for _, script := range []string{
		`echo x >> "$FXD_DATA/a.txt"`,
		`echo x > "$FXD_DATA/sub/b.txt"`,
		`touch "$FXD_DATA/new"`,
		`mkdir "$FXD_DATA/sub/new"`,
		`rm -f "$FXD_DATA/a.txt"`,
		`chmod u+w "$FXD_DATA" && echo x >> "$FXD_DATA/a.txt"`,
		`chmod u+w "$FXD_DATA"`,
		`mv "$FXD_DATA/a.txt" "$HOME/kept.txt"`,
		`ln "$FXD_DATA/a.txt" "$HOME/kept.txt"`,
	} {
		r := f.pools.Run(t.Context(), f.command("sh", "-c", script).withData(data...), 4)
		if r.State != api.StateFailed || r.Cold || r.Worker != first.Worker {
			t.Errorf("%s = %s (error %q, cold %v, worker %s), want failed on the warm %s", script, r.State, r.Error, r.Cold, r.Worker, first.Worker)
		}
	}
	for p, want := range map[string]string{a: "alpha\n", b: "beta\n"} {
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("cache file %s after the writes = %q, %v; want %q", p, got, err, want)
		}
	}

	// The same set in another order runs warm; another set gets a worker
	// of its own, and so does no set.
	same := f.pools.Run(t.Context(), read.withData(data[1], data[0]), 4)
	if same.State != api.StateSucceeded || same.Cold || same.Worker != first.Worker {
		t.Errorf("same data, reordered = %s (error %q, cold %v, worker %s), want warm on %s", same.State, same.Error, same.Cold, same.Worker, first.Worker)
	}
	other := f.pools.Run(t.Context(), f.command("sh", "-c", `cat "$FXD_DATA/b.txt"`).withData(DataFile{Source: b, Name: "b.txt"}), 4)
	if other.State != api.StateSucceeded || string(other.Output) != "beta\n" || !other.Cold || other.Worker == first.Worker {
		t.Errorf("other data = %s %q (error %q, cold %v, worker %s), want beta on a new worker", other.State, other.Output, other.Error, other.Cold, other.Worker)
	}
	none := f.pools.Run(t.Context(), f.command("sh", "-c", `echo "${FXD_DATA-unset}"`), 4)
	if none.State != api.StateSucceeded || string(none.Output) != "unset\n" || !none.Cold {
		t.Errorf("no data = %s %q (error %q, cold %v), want FXD_DATA unset on a new worker", none.State, none.Output, none.Error, none.Cold)
	}

	// Another account cannot list or read the first worker's data, even
	// knowing where it is.
	u := testenv.NewUser(t)
	stranger := f.command("sh", "-c", "ls "+dir+"; cat "+dir+"/a.txt "+dir+"/sub/b.txt")
	stranger.Account = isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home}
	r := f.pools.Run(t.Context(), stranger, 4)
	if r.State != api.StateFailed || len(r.Output) != 0 || strings.Count(r.Stderr, "Permission denied") != 3 {
		t.Errorf("another account reading %s = %s %q (stderr %q), want three refusals", dir, r.State, r.Output, r.Stderr)
	}
	t.Cleanup(func() { waitNoProcs(t, u.UID) })

	// An idle worker's data goes when it stops; the rest with Close.
	if n := f.pools.reap(time.Now().Add(2 * time.Minute)); n != 4 {
		t.Errorf("reap stopped %d workers, want 4", n)
	}
	if left := d.workerDirs(t); len(left) != 0 {
		t.Errorf("data dirs after the idle workers stopped: %v, want none", left)
	}
	busy := f.pools.Run(t.Context(), read, 4)
	if busy.State != api.StateSucceeded || !busy.Cold {
		t.Fatalf("read data again = %s (error %q, cold %v), want a cold success", busy.State, busy.Error, busy.Cold)
	}
	if left := d.workerDirs(t); len(left) != 1 {
		t.Errorf("data dirs with one worker: %v, want its own", left)
	}
	if err := f.pools.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if left := d.workerDirs(t); len(left) != 0 {
		t.Errorf("data dirs after Close: %v, want none", left)
	}
	for _, p := range []string{a, b} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("cache file after its links went: %v", err)
		}
	}
}

// checkDataDir checks the data directory of a worker of account a:
// root's, 0550 (the account reads it through an ACL), and each name a
// hard link to its cache file.
func checkDataDir(t *testing.T, dir string, a isolation.Account, links map[string]string) {
	t.Helper()
	for _, p := range []string{dir, filepath.Join(dir, "sub")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if !st.IsDir() || st.Mode().Perm() != 0o550 || sys.Uid != 0 {
			t.Errorf("%s: %v owned by %d:%d, want a directory, 0550, root's (the account reads it through an ACL)", p, st.Mode(), sys.Uid, sys.Gid)
		}
	}
	for name, src := range links {
		got, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(got, want) || got.Mode().Perm() != 0o644 || got.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s: %v owned by %d, want a hard link to %s (root's, 0644)", name, got.Mode(), got.Sys().(*syscall.Stat_t).Uid, src)
		}
	}
}

// waitNoProcs fails if uid has processes after a short grace.
func waitNoProcs(t *testing.T, uid uint32) {
	var left []int
	for range 100 {
		if left = userPids(uid); len(left) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("processes of uid %d left: %v", uid, left)
}

// Bad data sets fail the task before any worker starts.
func TestDataRefused(t *testing.T) {
	testenv.RequireRoot(t)
	d := newDataPlace(t)
	f := newFixtureData(t, conf.Workers{}, d.dataDir)
	src := d.blob(t, "x")
	shm, err := os.MkdirTemp("/dev/shm", "fxd-data-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	elsewhere := filepath.Join(shm, "blob")
	if err := os.WriteFile(elsewhere, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files []DataFile
		words string
	}{
		{"dot-dot", []DataFile{{src, "../x"}}, `data name "../x"`},
		{"absolute", []DataFile{{src, "/abs"}}, `data name "/abs"`},
		{"empty", []DataFile{{src, ""}}, `data name ""`},
		{"twice", []DataFile{{src, "a"}, {src, "a"}}, "named twice"},
		{"no such source", []DataFile{{src + ".gone", "a"}}, "stage it into the cache again"},
		{"directory source", []DataFile{{d.cache, "a"}}, "not a regular file"},
		{"other file system", []DataFile{{elsewhere, "a"}}, "different file systems"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "other file system" && sameDevice(t, shm, d.dataDir) {
				t.Skip("/dev/shm and the temp dir are one file system here")
			}
			r := f.pools.Run(t.Context(), f.command("true").withData(tc.files...), 2)
			if r.State != api.StateFailed || !strings.Contains(r.Error, tc.words) {
				t.Errorf("Run with data %q = %s (error %q), want failed saying %q", tc.files, r.State, r.Error, tc.words)
			}
			if s := f.pools.Stats(); s.Idle+s.Busy != 0 {
				t.Errorf("Stats = %+v, want no worker", s)
			}
			if left := d.workerDirs(t); len(left) != 0 {
				t.Errorf("data dirs left: %v", left)
			}
		})
	}
	// Pools without a data dir run no task with data.
	nodata := newFixture(t, conf.Workers{})
	if r := nodata.pools.Run(t.Context(), nodata.command("true").withData(DataFile{src, "a"}), 2); r.State != api.StateFailed || !strings.Contains(r.Error, "keeps no task data") {
		t.Errorf("Run with data on pools without a data dir = %s (error %q), want failed", r.State, r.Error)
	}
}

func sameDevice(t *testing.T, a, b string) bool {
	var sa, sb syscall.Stat_t
	if syscall.Stat(a, &sa) != nil || syscall.Stat(b, &sb) != nil {
		t.Fatalf("stat %s, %s", a, b)
	}
	return sa.Dev == sb.Dev
}

// New makes the data dir, refuses one others may write or another Pools
// holds, and removes what a previous run left in it.
func TestDataDir(t *testing.T) {
	testenv.RequireRoot(t)
	d := newDataPlace(t)
	shim := filepath.Join(binDir, "fxd-shim")
	log := zerolog.New(zerolog.NewTestWriter(t))
	newPools := func() (*Pools, error) { return New(conf.Workers{}, shim, groupExecutor{}, nil, d.dataDir, log) }

	// What a crashed run left: a worker's directory, 0500 and the
	// account's, with a link into the cache; and an agent's data dir.
	old := filepath.Join(d.dataDir, workerPrefix+"dead00-1")
	agents := filepath.Join(d.dataDir, "nodes")
	blob := d.blob(t, "kept")
	for _, p := range []string{old, agents} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(blob, filepath.Join(old, "f")); err != nil {
		t.Fatal(err)
	}
	os.Chmod(old, 0o500)
	os.Chown(old, 65000, 65000)

	p, err := newPools()
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover worker data after New: %v, want gone", err)
	}
	if _, err := os.Stat(agents); err != nil {
		t.Errorf("agents' data dir after New: %v, want kept", err)
	}
	if b, err := os.ReadFile(blob); err != nil || string(b) != "kept" {
		t.Errorf("cache file after its leftover link went: %q, %v", b, err)
	}
	if st, err := os.Stat(d.dataDir); err != nil || st.Mode().Perm() != 0o711 {
		t.Errorf("data dir = %v, %v; want 0711", st.Mode(), err)
	}
	if _, err := newPools(); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "in use by another fxd") {
		t.Errorf("second New on the data dir = %v, want conflict", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = newPools()
	if err != nil {
		t.Fatalf("New after Close = %v", err)
	}
	p.Close()

	os.Chmod(d.dataDir, 0o777)
	if _, err := newPools(); !errors.Is(err, api.ErrDenied) || !strings.Contains(err.Error(), "chmod 0711") {
		t.Errorf("New on a data dir others may write = %v, want denied saying the fix", err)
	}
	if _, err := New(conf.Workers{}, shim, groupExecutor{}, nil, "task-data", log); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("New with a relative data dir = %v, want invalid", err)
	}
}
