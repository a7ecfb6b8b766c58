package runtimes

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation"
)

// binDir holds fxd-shim and the test servables, readable by test users.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fxd-runtimes-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	binDir = dir
	if _, err := testenv.BuildShim(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := testenv.BuildUpper(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for name, src := range map[string]string{"servable.py": "testdata/servable.py", "upper.py": ""} {
		var b []byte
		if src != "" {
			b, err = os.ReadFile(src)
		} else {
			b, err = testenv.ServableExample()
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// fixture is a Pools with an account to run tasks as.
type fixture struct {
	pools *Pools
	acct  isolation.Account
	real  bool // the real executor: cgroups, limits, OOM counts
}

func newFixture(t testing.TB, cfg conf.Workers) *fixture {
	t.Helper()
	return newFixtureData(t, cfg, "")
}

// newFixtureData is newFixture with task data in dataDir (see New).
func newFixtureData(t testing.TB, cfg conf.Workers, dataDir string) *fixture {
	t.Helper()
	f := &fixture{}
	ex, real := realExecutor(t)
	f.real = real
	if os.Geteuid() == 0 {
		u := testenv.NewUser(t)
		f.acct = isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home}
	} else {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		f.acct = isolation.Account{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: t.TempDir()}
	}
	cfg.Shim = filepath.Join(binDir, "fxd-shim")
	var err error
	f.pools, err = New(cfg, cfg.Shim, ex, nil, dataDir, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := f.pools.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		f.noProcsLeft(t)
	})
	return f
}

func (f *fixture) function(kind api.Kind, argv ...string) api.Function {
	return api.Function{
		FunctionSpec: api.FunctionSpec{Name: "f", Runtime: api.RuntimeHost, Kind: kind, Command: argv},
		Owner:        f.acct.Name,
		Version:      1,
	}
}

func (f *fixture) command(argv ...string) Job {
	return Job{TaskID: "task1", Attempt: 1, Function: f.function(api.KindCommand, argv...), Account: f.acct, Timeout: 30 * time.Second, MaxOutput: 1 << 20}
}

func (f *fixture) servable(argv ...string) Job {
	j := f.command()
	j.Function = f.function(api.KindServable, argv...)
	return j
}

// with returns j with input.
func (j Job) with(input string) Job {
	j.Input = []byte(input)
	return j
}

func python(t testing.TB, script string) []string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testenv.Unavailable(t, "needs /usr/bin/python3 for the servable tests")
	}
	return []string{"/usr/bin/python3", "-u", filepath.Join(binDir, script)}
}

// userPids lists the live processes of uid.
func userPids(uid uint32) []int {
	var pids []int
	for _, st := range procStatuses(uid) {
		if pid, err := strconv.Atoi(st["Pid"]); err == nil && !strings.HasPrefix(st["State"], "Z") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// noProcsLeft fails if the account has processes after a short grace.
func (f *fixture) noProcsLeft(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		return // our own processes are the test's too
	}
	var left []int
	for range 100 {
		if left = userPids(f.acct.UID); len(left) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("processes of %s left: %v", f.acct.Name, left)
}

// cgroupsNamed lists cgroup directories named id, in every hierarchy.
func cgroupsNamed(id string) []string {
	var found []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if strings.Count(p[len(root):], "/") > 5 {
				return filepath.SkipDir
			}
			if d.Name() == id {
				found = append(found, p)
			}
			return nil
		})
	}
	return found
}
