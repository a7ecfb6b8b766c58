package runtimes

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/isolation/oci"
	"fxd.dev/fxd/isolation/plain"
	"fxd.dev/fxd/runtimes/images"
)

// containerFixture is Pools with container workers of one OCI runtime and
// a site image "busybox" holding the upper servable at /usr/bin/upper.
type containerFixture struct {
	*fixture
	images *images.Store
	exec   *oci.Executor
	state  string // the executor's state dir: runtime state and bundles
	data   *dataPlace
}

func newContainerFixture(t testing.TB, runtime string, cfg conf.Workers) *containerFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts containers")
	}
	testenv.RequireCgroup(t)
	rt, err := oci.FindRuntime(context.Background(), testenv.RequireCommand(t, runtime))
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	parent := "fxd-test-ctr-" + rand.Text()[:10]
	t.Cleanup(func() { testenv.RemoveCgroupParent(t, parent) })
	host, err := plain.New(plain.Config{CgroupParent: parent}, log)
	if err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(binDir, "fxd-shim")
	state := t.TempDir()
	def := conf.Default().Containers
	ex, err := oci.New(oci.Config{Runtime: rt, Site: oci.Site{CgroupParent: parent, Shim: shim,
		Network: oci.Network(def.Network), WorkDir: def.WorkDir, TmpSize: int64(def.TmpSize)},
		StateDir: filepath.Join(state, "containers"), Monitor: shim}, log)
	if err != nil {
		t.Fatal(err)
	}
	store, err := images.Open(images.Config{Dir: filepath.Join(state, "images")}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The workers are gone (Pools.Close ran first) and released their
		// images: removing the names unmounts them at once.
		imgs, err := store.List("")
		for _, img := range imgs {
			if err == nil {
				err = store.Remove(img.Name, "")
			}
		}
		if err != nil {
			t.Errorf("remove images: %v", err)
		}
		if left, _ := os.ReadDir(filepath.Join(state, "images", "mnt")); len(left) > 0 {
			t.Errorf("images still mounted after their workers stopped and their names went: %v", left)
		}
		if err := store.Close(); err != nil {
			t.Errorf("close images: %v", err)
		}
	})
	upper, err := os.ReadFile(filepath.Join(binDir, "upper"))
	if err != nil {
		t.Fatal(err)
	}
	img := testenv.BuildSIF(t, testenv.SIFFile("usr/bin/upper", 0o755, upper))
	if _, err := store.AddSiteFile(context.Background(), "busybox", img, images.Limits{}); err != nil {
		t.Fatal(err)
	}
	u := testenv.NewUser(t)
	f := &containerFixture{fixture: &fixture{real: true, acct: isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home}},
		images: store, exec: ex, state: filepath.Join(state, "containers"), data: newDataPlace(t)}
	f.pools, err = New(cfg, shim, host, &Containers{Exec: ex, Images: store, ShimPath: oci.ShimPath, WorkDir: def.WorkDir}, f.data.dataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.pools.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		f.noProcsLeft(t)
	})
	return f
}

// in returns j run in the busybox image.
func in(j Job) Job {
	j.Function.Runtime = "busybox"
	return j
}

func TestContainerWorkers(t *testing.T) {
	for _, rt := range []string{"crun", "runc"} {
		t.Run(rt, func(t *testing.T) {
			f := newContainerFixture(t, rt, conf.Workers{IdleTimeout: conf.Duration(time.Minute)})
			t.Run("Command", f.testCommand)
			t.Run("Servable", f.testServable)
			t.Run("ServableOrphans", f.testServableOrphans)
			t.Run("Limits", f.testLimits)
			t.Run("DeadWorkerReplaced", f.testDeadWorker)
			t.Run("UnknownImage", f.testUnknownImage)
			t.Run("Data", f.testData)
		})
	}
}

// A command task runs in the image as the account, in the work dir, and
// the next one on the same warm container.
func (f *containerFixture) testCommand(t *testing.T) {
	j := in(f.command("/bin/sh", "-c", "id -u; pwd; echo HOME=$HOME; cat; test -e /usr/bin/upper && echo in-image"))
	first := f.pools.Run(t.Context(), j.with("input!"), 2)
	work := conf.Default().Containers.WorkDir
	want := strconv.Itoa(int(f.acct.UID)) + "\n" + work + "\nHOME=" + work + "\ninput!in-image\n"
	if first.State != api.StateSucceeded || string(first.Output) != want || !first.Cold {
		t.Fatalf("first task = %s %q (error %q, cold %v), want succeeded %q, cold", first.State, first.Output, first.Error, first.Cold, want)
	}
	second := f.pools.Run(t.Context(), j.with("again"), 2)
	if second.State != api.StateSucceeded || second.Cold || second.Worker != first.Worker {
		t.Errorf("second task = %s (error %q, cold %v, worker %s), want succeeded, warm, on %s", second.State, second.Error, second.Cold, second.Worker, first.Worker)
	}
	failed := f.pools.Run(t.Context(), in(f.command("/bin/sh", "-c", "echo oops >&2; exit 3")), 2)
	if failed.State != api.StateFailed || failed.ExitCode != 3 || !strings.Contains(failed.Stderr, "oops") {
		t.Errorf("failing task = %s exit %d stderr %q, want failed, 3, oops", failed.State, failed.ExitCode, failed.Stderr)
	}
}

// A servable in the image answers many tasks from one process.
func (f *containerFixture) testServable(t *testing.T) {
	j := in(f.servable("/usr/bin/upper"))
	for i, input := range []string{"hello", "world", ""} {
		r := f.pools.Run(t.Context(), j.with(input), 2)
		if r.State != api.StateSucceeded || string(r.Output) != strings.ToUpper(input) || r.Cold != (i == 0) {
			t.Errorf("task %d = %s %q (error %q, cold %v), want %q", i, r.State, r.Output, r.Error, r.Cold, strings.ToUpper(input))
		}
	}
}

// A servable is not its container's PID 1: the shim's init is, and reaps
// the orphans the servable leaves, which would otherwise stay zombies.
func (f *containerFixture) testServableOrphans(t *testing.T) {
	j := in(f.servable("/bin/sh", "-c", "(sleep 0.2 &); exec /usr/bin/upper"))
	r := f.pools.Run(t.Context(), j.with("x"), 2)
	if r.State != api.StateSucceeded || string(r.Output) != "X" {
		t.Fatalf("servable = %s %q (error %q), want X", r.State, r.Output, r.Error)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		sleeps := procsNamed(f.acct.UID, "sleep")
		if len(sleeps) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the servable's orphan is still there 5 s on, in state %v: nothing reaps it", sleeps)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ns := nsPids(f.acct.UID, "upper"); len(ns) != 1 || ns[0] == "1" {
		t.Errorf("the servable's pid in its container = %v, want one, not 1", ns)
	}
}

// procsNamed returns the states of uid's processes named comm, zombies too.
func procsNamed(uid uint32, comm string) []string {
	var states []string
	for _, st := range procStatuses(uid) {
		if st["Name"] == comm {
			states = append(states, st["State"])
		}
	}
	return states
}

// nsPids returns the pid in its own pid namespace (the last of NSpid) of
// each live process of uid named comm.
func nsPids(uid uint32, comm string) []string {
	var pids []string
	for _, st := range procStatuses(uid) {
		if ns := strings.Fields(st["NSpid"]); st["Name"] == comm && len(ns) > 0 && !strings.HasPrefix(st["State"], "Z") {
			pids = append(pids, ns[len(ns)-1])
		}
	}
	return pids
}

// procStatuses returns /proc/PID/status, as fields, of each process whose
// real uid is uid.
func procStatuses(uid uint32) []map[string]string {
	ents, _ := os.ReadDir("/proc")
	var out []map[string]string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		st := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				st[k] = strings.TrimSpace(v)
			}
		}
		if fs := strings.Fields(st["Uid"]); len(fs) > 0 && fs[0] == strconv.Itoa(int(uid)) {
			out = append(out, st)
		}
	}
	return out
}

// The worker's limits hold in the container.
func (f *containerFixture) testLimits(t *testing.T) {
	mem := int64(32 << 20)
	j := in(f.command("/bin/sh", "-c", "head -c 200000000 /dev/zero | tail > /dev/null; echo survived"))
	j.Limits = specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &mem}}
	r := f.pools.Run(t.Context(), j, 2)
	if r.State != api.StateFailed || !strings.Contains(r.Error, "out of memory") {
		t.Errorf("hog = %s %q (error %q), want failed: out of memory", r.State, r.Output, r.Error)
	}
	pids := int64(16)
	j = in(f.command("/bin/sh", "-c", "for i in $(seq 40); do sleep 5 & done; wait"))
	j.Limits = specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &pids}}
	j.Timeout = 2 * time.Second
	r = f.pools.Run(t.Context(), j, 2)
	if !strings.Contains(r.Stderr, "fork") {
		t.Errorf("forks past the pids limit: %s, stderr %q, want the shell's fork failure", r.State, r.Stderr)
	}
}

// A worker whose container died is replaced by a new one.
func (f *containerFixture) testDeadWorker(t *testing.T) {
	j := in(f.command("/bin/true"))
	first := f.pools.Run(t.Context(), j, 2)
	if first.State != api.StateSucceeded {
		t.Fatalf("first = %s %q", first.State, first.Error)
	}
	for _, dir := range cgroupsNamed(first.Worker) {
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				n, _ := strconv.Atoi(pid)
				if p, err := os.FindProcess(n); err == nil {
					p.Kill()
				}
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(cgroupsNamed(first.Worker)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	next := f.pools.Run(t.Context(), j, 2)
	if next.State != api.StateSucceeded || !next.Cold || next.Worker == first.Worker {
		t.Errorf("after the container died: %s (error %q, cold %v, worker %s), want a new worker", next.State, next.Error, next.Cold, next.Worker)
	}
}

// A function naming an image its owner cannot see fails, saying so.
func (f *containerFixture) testUnknownImage(t *testing.T) {
	j := f.command("/bin/true")
	j.Function.Runtime = "nosuch"
	if r := f.pools.Run(t.Context(), j, 2); r.State != api.StateFailed || !strings.Contains(r.Error, "nosuch") {
		t.Errorf("run in an unknown image = %s (error %q), want failed naming it", r.State, r.Error)
	}
}

// A task in a container reads its data at $FXD_DATA, <work dir>/data, a
// read-only bind of its worker's data directory, and cannot change it;
// the directory goes with the worker.
func (f *containerFixture) testData(t *testing.T) {
	a, b := f.data.blob(t, "alpha\n"), f.data.blob(t, "beta\n")
	data := []DataFile{{Source: a, Name: "a.txt"}, {Source: b, Name: "sub/b.txt"}}
	work := conf.Default().Containers.WorkDir
	j := in(f.command("/bin/sh", "-c", `echo "$FXD_DATA"; cat "$FXD_DATA/a.txt" "$FXD_DATA/sub/b.txt"; grep " $FXD_DATA " /proc/mounts | cut -d' ' -f4`))
	r := f.pools.Run(t.Context(), j.withData(data...), 4)
	lines := strings.Split(string(r.Output), "\n")
	if r.State != api.StateSucceeded || len(lines) != 5 || lines[0] != work+"/data" || lines[1] != "alpha" || lines[2] != "beta" {
		t.Fatalf("read data = %s %q (error %q, stderr %q), want %s/data, alpha, beta, mount options", r.State, r.Output, r.Error, r.Stderr, work)
	}
	opts := strings.Split(lines[3], ",")
	for _, o := range []string{"ro", "nosuid", "nodev"} {
		if !slices.Contains(opts, o) {
			t.Errorf("data mount options %q lack %s", lines[3], o)
		}
	}
	checkDataDir(t, filepath.Join(f.data.dataDir, r.Worker), f.acct, map[string]string{"a.txt": a, "sub/b.txt": b})
	for _, script := range []string{
		`echo x >> "$FXD_DATA/a.txt"`,
		`touch "$FXD_DATA/new"`,
		`rm -f "$FXD_DATA/sub/b.txt"`,
		`chmod u+w "$FXD_DATA"`, // the directory is the account's, but the mount is read-only
	} {
		w := f.pools.Run(t.Context(), in(f.command("/bin/sh", "-c", script)).withData(data...), 4)
		if w.State != api.StateFailed || w.Cold || w.Worker != r.Worker {
			t.Errorf("%s = %s (error %q, cold %v, worker %s), want failed on the warm %s", script, w.State, w.Error, w.Cold, w.Worker, r.Worker)
		}
	}
	for p, want := range map[string]string{a: "alpha\n", b: "beta\n"} {
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("cache file %s after the writes = %q, %v; want %q", p, got, err, want)
		}
	}
	if n := f.pools.reap(time.Now().Add(time.Hour)); n == 0 {
		t.Errorf("reap stopped no worker, want the data worker")
	}
	if left := f.data.workerDirs(t); len(left) != 0 {
		t.Errorf("data dirs after the workers stopped: %v, want none", left)
	}
}

// An idle container stops after the idle timeout: its processes, cgroup,
// runtime state and bundle go.
func TestContainerIdleStop(t *testing.T) {
	f := newContainerFixture(t, "crun", conf.Workers{IdleTimeout: conf.Duration(200 * time.Millisecond)})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go f.pools.Reap(ctx)
	r := f.pools.Run(t.Context(), in(f.servable("/usr/bin/upper")).with("x"), 2)
	if r.State != api.StateSucceeded {
		t.Fatalf("servable: %s %q", r.State, r.Error)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, _ := os.ReadDir(filepath.Join(f.state, "runtime"))
		bundles, _ := os.ReadDir(filepath.Join(f.state, "bundles"))
		if len(cgroupsNamed(r.Worker)) == 0 && len(left) == 0 && len(bundles) == 0 && len(userPids(f.acct.UID)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the idle timeout: cgroups %v, runtime state %v, bundles %v, processes %v",
				cgroupsNamed(r.Worker), left, bundles, userPids(f.acct.UID))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
