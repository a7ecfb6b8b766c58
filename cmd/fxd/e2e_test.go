package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/daemon/store"
	"fxd.dev/fxd/isolation/cgroup"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func register(t *testing.T, c *api.Client, spec api.FunctionSpec) api.Function {
	t.Helper()
	f, err := c.RegisterFunction(ctxT(t, 10*time.Second), spec)
	if err != nil {
		t.Fatalf("register %s: %v", spec.Name, err)
	}
	return f
}

func run(t *testing.T, c *api.Client, name, input string) api.Task {
	t.Helper()
	task, err := c.Run(ctxT(t, time.Minute), name, api.TaskSpec{InputBase64: []byte(input)})
	if err != nil {
		t.Fatalf("run %s: %v", name, err)
	}
	return task
}

// Each tenant's task runs under its own UID; tenants see neither each
// other's tasks nor their unshared functions.
func TestTenantsAreIsolated(t *testing.T) {
	tenants, rules := newTenants(t, 2)
	s := startSite(t, rules)
	a, b := s.client(tenants[0].id), s.client(tenants[1].id)
	whoami := api.FunctionSpec{Name: "whoami", Command: []string{"/bin/sh", "-c", "id -u; id -g; echo $HOME"}}
	register(t, a, whoami)
	register(t, b, whoami)

	for i, c := range []*api.Client{a, b} {
		u := tenants[i].user
		task := run(t, c, "whoami", "")
		want := fmt.Sprintf("%d\n%d\n%s\n", u.UID, u.GID, u.Home)
		if task.State != api.StateSucceeded || string(task.Output) != want {
			t.Errorf("tenant %d: task = %s %q (err %q), want succeeded %q", i, task.State, task.Output, task.Error, want)
		}
	}

	ids, err := a.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "whoami"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Task(ctxT(t, 10*time.Second), ids[0], 0); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("B reading A's task: err = %v, want not found", err)
	}
	if _, err := b.Cancel(ctxT(t, 10*time.Second), ids[0]); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("B cancelling A's task: err = %v, want not found", err)
	}
	aName := tenants[0].user.Name
	if _, err := b.Run(ctxT(t, 10*time.Second), aName+"/whoami", api.TaskSpec{}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("B running A's unshared function: err = %v, want not found", err)
	}
	fs, err := b.Functions(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Owner != tenants[1].user.Name {
			t.Errorf("B lists a function of %s: %+v", f.Owner, f)
		}
	}

	// Shared explicitly, A's function runs for B, as B.
	shared := whoami
	shared.Name, shared.SharedWith = "shared-whoami", []string{tenants[1].user.Name}
	register(t, a, shared)
	task, err := b.Run(ctxT(t, time.Minute), aName+"/shared-whoami", api.TaskSpec{})
	if err != nil {
		t.Fatalf("B running A's shared function: %v", err)
	}
	if got := strings.SplitN(string(task.Output), "\n", 2)[0]; got != strconv.Itoa(int(tenants[1].user.UID)) {
		t.Errorf("shared function ran as uid %s, want the caller's %d", got, tenants[1].user.UID)
	}
}

// A task past its memory limit fails as out of memory; the daemon and
// other tasks, the tenant's own and another tenant's running at the same
// time, are unharmed.
func TestMemoryLimit(t *testing.T) {
	tenants, rules := newTenants(t, 2)
	s := startSite(t, rules)
	c, other := s.client(tenants[0].id), s.client(tenants[1].id)
	register(t, c, api.FunctionSpec{Name: "hog", Command: []string{"/bin/sh", "-c", "head -c 300000000 /dev/zero | tail > /dev/null; echo survived"},
		Limits: api.Limits{MemoryBytes: 32 << 20}})
	register(t, c, api.FunctionSpec{Name: "echo", Command: []string{"/bin/cat"}})
	bystander := startBystander(t, other)
	task := run(t, c, "hog", "")
	if task.State != api.StateFailed || !strings.Contains(task.Error, "out of memory") {
		t.Errorf("hog: state %s error %q output %q, want failed with an out-of-memory reason", task.State, task.Error, task.Output)
	}
	if task := run(t, c, "echo", "still fine"); task.State != api.StateSucceeded || string(task.Output) != "still fine" {
		t.Errorf("echo after the hog: %s %q %q", task.State, task.Output, task.Error)
	}
	bystander.check(t)
}

// A fork bomb is held at the pids limit (the kernel refuses its forks)
// and killed at its timeout with its whole tree; the daemon and another
// tenant's task running at the same time are unharmed.
func TestForkBomb(t *testing.T) {
	tenants, rules := newTenants(t, 2)
	s := startSite(t, rules)
	c, other := s.client(tenants[0].id), s.client(tenants[1].id)
	const pidsLimit = 64
	// The shell execs sleep rather than forking it: a fork refused at
	// the limit would end the task early ("exit status 2") instead of
	// holding it until the timeout.
	register(t, c, api.FunctionSpec{Name: "bomb", Command: []string{"/bin/sh", "-c", "b() { b | b & }; b; exec sleep 30"},
		Limits: api.Limits{Pids: pidsLimit, Timeout: api.Duration(5 * time.Second)}})
	register(t, c, api.FunctionSpec{Name: "echo", Command: []string{"/bin/cat"}})
	bystander := startBystander(t, other)
	ids, err := c.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "bomb"}})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, c, ids[0], api.StateRunning)

	// While it runs, its worker's pids cgroup refuses forks at the limit.
	var refused int
	deadline := time.Now().Add(4 * time.Second)
	for refused == 0 && time.Now().Before(deadline) {
		for _, dir := range workerPidsCgroups(t, s) {
			refused = max(refused, pidsEventsMax(dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if refused == 0 {
		t.Errorf("no fork refused by the pids limit (pids.events max = 0) while the bomb ran")
	}
	task, err := c.Task(ctxT(t, time.Minute), ids[0], 30*time.Second)
	if err != nil || task.State != api.StateTimedOut {
		t.Errorf("fork bomb: %v, state %s error %q, want timed_out", err, task.State, task.Error)
	}
	assertNoProcs(t, tenants[0].user.Name)
	assertWorkerCgroupGone(t, s, task.Worker)
	if task := run(t, c, "echo", "ok"); task.State != api.StateSucceeded {
		t.Errorf("echo after the bomb: %s %q", task.State, task.Error)
	}
	bystander.check(t)
}

// Timeout and cancel kill the whole tree, daemonized children included,
// and remove its cgroup.
func TestTimeoutAndCancelKillTree(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := startSite(t, rules)
	c := s.client(tenants[0].id)
	register(t, c, api.FunctionSpec{Name: "sleepy", Command: []string{"/bin/sh", "-c", "setsid sleep 300 & sleep 300 & sleep 300"},
		Limits: api.Limits{Timeout: api.Duration(time.Second)}})
	task := run(t, c, "sleepy", "")
	if task.State != api.StateTimedOut {
		t.Errorf("sleepy: state %s, want timed_out", task.State)
	}
	assertNoProcs(t, tenants[0].user.Name)
	assertWorkerCgroupGone(t, s, task.Worker)

	ids, err := c.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "sleepy", Timeout: api.Duration(time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, c, ids[0], api.StateRunning)
	got, err := c.Cancel(ctxT(t, 30*time.Second), ids[0])
	if err != nil || got.State != api.StateCancelled {
		t.Fatalf("cancel: %v, state %s", err, got.State)
	}
	assertNoProcs(t, tenants[0].user.Name)
	assertWorkerCgroupGone(t, s, got.Worker)
	if _, err := c.Cancel(ctxT(t, 10*time.Second), ids[0]); !errors.Is(err, api.ErrConflict) {
		t.Errorf("second cancel: err = %v, want conflict", err)
	}
}

// bystander is another tenant's task running while a test abuses limits.
type bystander struct {
	id string
	c  *api.Client
}

// startBystander starts a task of c's tenant that reads for a second
// and echoes its input, and waits until it runs.
func startBystander(t *testing.T, c *api.Client) bystander {
	t.Helper()
	register(t, c, api.FunctionSpec{Name: "steady", Command: []string{"/bin/sh", "-c", "sleep 2; cat"}})
	ids, err := c.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "steady", InputBase64: []byte("unharmed")}})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, c, ids[0], api.StateRunning)
	return bystander{id: ids[0], c: c}
}

func (b bystander) check(t *testing.T) {
	t.Helper()
	task, err := b.c.Task(ctxT(t, time.Minute), b.id, 30*time.Second)
	if err != nil || task.State != api.StateSucceeded || string(task.Output) != "unharmed" {
		t.Errorf("other tenant's task = %s %q %q, %v; want succeeded, unharmed", task.State, task.Output, task.Error, err)
	}
}

// workerPidsCgroups lists the directories that hold the pids files of s's
// worker cgroups: in the pids hierarchy on cgroup v1, in the unified one
// on v2.
func workerPidsCgroups(t *testing.T, s *site) []string {
	t.Helper()
	base := filepath.Join("/sys/fs/cgroup", "pids", s.cgParent)
	if cgroup.Unified() {
		base = filepath.Join("/sys/fs/cgroup", s.cgParent)
	}
	var dirs []string
	for _, name := range workerCgroups(t, s.cgParent) {
		dirs = append(dirs, filepath.Join(base, name))
	}
	return dirs
}

// pidsEventsMax is the "max" count of a pids.events file: forks refused
// at pids.max.
func pidsEventsMax(dir string) int {
	b, _ := os.ReadFile(filepath.Join(dir, "pids.events"))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "max "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// assertWorkerCgroupGone fails if the cgroup of the worker that ran a
// killed task is still there, in any hierarchy, 5 s after the task ended.
func assertWorkerCgroupGone(t *testing.T, s *site, worker string) {
	t.Helper()
	if worker == "" {
		t.Error("task names no worker; cannot check its cgroup is gone")
		return
	}
	for range 50 {
		if !slices.Contains(workerCgroups(t, s.cgParent), worker) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("worker cgroup %s still under %s after its task was killed", worker, s.cgParent)
}

func waitState(t *testing.T, c *api.Client, id string, want api.State) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		task, err := c.Task(ctxT(t, 10*time.Second), id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if task.State == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("task %s never reached %s", id, want)
}

// assertNoProcs fails if the user still has processes (shims aside, which
// are not tasks) once the tree was killed.
func assertNoProcs(t *testing.T, user string) {
	t.Helper()
	var left string
	for i := 0; i < 50; i++ {
		out, _ := exec.Command("pgrep", "-a", "-u", user).Output()
		left = ""
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" && !strings.Contains(l, "fxd-shim") {
				left += l + "\n"
			}
		}
		if left == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("processes of %s left after kill:\n%s", user, left)
}

// Every acknowledged task reaches a final state with its output after a
// kill -9 of the daemon mid-way; none is lost or stored twice.
func TestCrashRecovery(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := startSite(t, rules+"\n[tenants.default]\nmax_workers = 2\nmax_running = 2\n")
	c := s.client(tenants[0].id)
	register(t, c, api.FunctionSpec{Name: "echo", Command: []string{"/bin/cat"}})
	const n, batch = 2000, 100
	var ids []string
	for i := 0; i < n; i += batch {
		specs := make([]api.TaskSpec, batch)
		for j := range specs {
			specs[j] = api.TaskSpec{Function: "echo", InputBase64: []byte(fmt.Sprintf("task-%d", i+j))}
		}
		got, err := c.Submit(ctxT(t, 30*time.Second), specs)
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		ids = append(ids, got...)
	}
	// Let some run, then crash.
	for {
		ts, err := c.Tasks(ctxT(t, 30*time.Second), api.TasksRequest{IDs: ids[:200]})
		if err != nil {
			t.Fatal(err)
		}
		if ts[len(ts)-1].State.Final() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill9()
	s.start()
	c = s.client(tenants[0].id)
	final := map[string]api.Task{}
	deadline := time.Now().Add(3 * time.Minute)
	for len(final) < n && time.Now().Before(deadline) {
		var pending []string
		for _, id := range ids {
			if _, ok := final[id]; !ok {
				pending = append(pending, id)
			}
		}
		if len(pending) > 1000 {
			pending = pending[:1000]
		}
		ts, err := c.Tasks(ctxT(t, time.Minute), api.TasksRequest{IDs: pending, Wait: api.Duration(10 * time.Second), Output: true})
		if err != nil {
			t.Fatalf("query after restart: %v", err)
		}
		for _, task := range ts {
			if task.State.Final() {
				final[task.ID] = task
			}
		}
	}
	if len(final) != n {
		t.Fatalf("%d of %d tasks final after restart", len(final), n)
	}
	reran := 0
	for i, id := range ids {
		task := final[id]
		want := fmt.Sprintf("task-%d", i)
		if task.State != api.StateSucceeded || string(task.Output) != want {
			t.Errorf("task %d: %s %q (err %q), want succeeded %q", i, task.State, task.Output, task.Error, want)
		}
		if task.Attempts > 1 {
			reran++
		}
	}
	t.Logf("%d tasks, %d ran again after the crash (at-least-once)", n, reran)
	s.stop()
	assertStoreCount(t, s, n)
}

// assertStoreCount opens the stopped site's store and counts its tasks.
func assertStoreCount(t *testing.T, s *site, want int) {
	t.Helper()
	st, err := store.Open(filepath.Join(s.state, "tasks.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	counts, err := st.Counts()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != want {
		t.Errorf("store holds %d tasks (%v), want %d: none lost, none duplicated", total, counts, want)
	}
}
