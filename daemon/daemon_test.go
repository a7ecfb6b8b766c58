package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation"
)

// shimPath is fxd-shim built once for the package's tests.
var shimPath string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fxd-daemon-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	if shimPath, err = testenv.BuildShim(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// testSite is a Daemon run in-process on a temp state dir, with one real
// user whose token is returned.
type testSite struct {
	d      *Daemon
	socket string
	user   testenv.User
	token  string
	stop   func() error // shuts the daemon down (drains) and returns Run's error
}

// runTestDaemon runs a Daemon in-process on a temp state dir, listening on
// its unix socket only, with conf.Dev changed by tweak (nil: not at all).
// stop drains it and returns Run's error, or an error if Run has not
// returned within drain_grace and 30 s; the end of the test stops it and
// removes its cgroup parent.
func runTestDaemon(tb testing.TB, tweak func(*conf.Config)) (d *Daemon, stop func() error) {
	tb.Helper()
	testenv.RequireCgroup(tb)
	dir := tb.TempDir()
	os.Chmod(dir, 0o755)
	cfg := conf.Dev(filepath.Join(dir, "state"))
	cfg.Workers.Shim = shimPath
	cfg.Workers.CgroupParent = fmt.Sprintf("fxdtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	cfg.Endpoint.Socket = filepath.Join(dir, "fxd.sock")
	if tweak != nil {
		tweak(cfg)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatalf("test config: %v", err)
	}
	d, err := New(cfg, zerolog.New(zerolog.NewTestWriter(tb)).Level(zerolog.WarnLevel), "test")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	within := cfg.Endpoint.DrainGrace.D() + 30*time.Second
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(within):
			return fmt.Errorf("Run did not return within %s of its context ending", within)
		}
	})
	tb.Cleanup(func() {
		if err := stop(); err != nil {
			tb.Errorf("daemon run: %v", err)
		}
		testenv.RemoveCgroupParent(tb, cfg.Workers.CgroupParent)
	})
	return d, stop
}

// startTestSite runs a daemon (runTestDaemon) whose [[auth.map]] maps the
// identity tenant@example.org to a new real user, before tweak, and issues
// a token for that identity.
func startTestSite(tb testing.TB, tweak func(*conf.Config)) *testSite {
	tb.Helper()
	testenv.RequireCgroup(tb)
	u := testenv.NewUser(tb)
	d, stop := runTestDaemon(tb, func(c *conf.Config) {
		c.Auth.Map = []conf.MapRule{{Match: "tenant@example.org", Account: u.Name}}
		if tweak != nil {
			tweak(c)
		}
	})
	// The daemon reads its token file again when it meets an unknown
	// token, so one issued now works at once.
	tok, err := IssueToken(d.cfg.TokenFile(), "tenant@example.org")
	if err != nil {
		tb.Fatal(err)
	}
	s := &testSite{d: d, socket: d.cfg.Endpoint.Socket, user: u, token: tok, stop: stop}
	c := s.client(tb)
	waitFor(tb, "the daemon to answer", func() bool { _, err := c.Site(context.Background()); return err == nil })
	return s
}

// A New that fails part way releases what it got, the cgroup parent and
// the image index among them: a New on the same config then succeeds.
func TestNewReleasesOnError(t *testing.T) {
	testenv.RequireCgroup(t)
	dir := t.TempDir()
	cfg := conf.Dev(filepath.Join(dir, "state"))
	cfg.Workers.Shim = shimPath
	cfg.Workers.CgroupParent = fmt.Sprintf("fxdtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	cfg.Endpoint.Socket = filepath.Join(dir, "fxd.sock")
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	t.Cleanup(func() { testenv.RemoveCgroupParent(t, cfg.Workers.CgroupParent) })
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	// The task store, opened last, cannot open: its file is a directory.
	db := filepath.Join(cfg.Site.StateDir, "tasks.db")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, log, "test"); err == nil {
		t.Fatal("New with a directory as tasks.db = nil error, want one")
	}
	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, log, "test")
	if err != nil {
		t.Fatalf("New after a failed New = %v; want what the first one got released", err)
	}
	d.close()
}

func (s *testSite) client(tb testing.TB) *api.Client {
	c, err := api.NewClient("unix://"+s.socket, api.ClientOptions{Token: s.token})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// registerUpper registers "upper", the Python servable of docs/servable.md,
// and "true", a /bin/true command.
func (s *testSite) registerUpper(tb testing.TB, c *api.Client) {
	tb.Helper()
	py := testenv.RequireCommand(tb, "/usr/bin/python3")
	src, err := testenv.ServableExample()
	if err != nil {
		tb.Fatal(err)
	}
	script := filepath.Join(s.user.Home, "upper.py")
	if err := os.WriteFile(script, src, 0o644); err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.RegisterFunction(ctx, api.FunctionSpec{Name: "upper", Kind: api.KindServable, Command: []string{py, script}}); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.RegisterFunction(ctx, api.FunctionSpec{Name: "true", Command: []string{"/bin/true"}}); err != nil {
		tb.Fatal(err)
	}
}

func TestSyncAndAsync(t *testing.T) {
	s := startTestSite(t, nil)
	c := s.client(t)
	s.registerUpper(t, c)
	ctx := context.Background()
	task, err := c.Run(ctx, "upper", api.TaskSpec{Input: []byte(`{"a":1}`)})
	if err != nil || task.State != api.StateSucceeded || string(task.Output) != `{"A":1}` {
		t.Fatalf("sync run = %+v, %v", task, err)
	}
	specs := make([]api.TaskSpec, 50)
	for i := range specs {
		specs[i] = api.TaskSpec{Function: "upper", InputBase64: []byte(fmt.Sprintf("t%d", i))}
	}
	ids, err := c.Submit(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.Tasks(ctx, api.TasksRequest{IDs: ids, Wait: api.Duration(30 * time.Second), Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, task := range ts {
		if task.State != api.StateSucceeded || string(task.Output) != fmt.Sprintf("T%d", i) {
			t.Errorf("task %d = %s %q %q", i, task.State, task.Output, task.Error)
		}
	}
	// The synchronous task is stored once it ended.
	waitFor(t, "the sync task in the store", func() bool {
		got, err := s.d.store.GetTask(task.ID)
		return err == nil && got.State == api.StateSucceeded
	})
}

// TestDrainEndsSyncRuns: at shutdown a synchronous run that is running
// past the grace, or still queued, is answered (failed, with a reason)
// instead of holding its caller until the connection is cut.
func TestDrainEndsSyncRuns(t *testing.T) {
	s := startTestSite(t, func(c *conf.Config) {
		c.Endpoint.DrainGrace = conf.Duration(300 * time.Millisecond)
		c.Tenants.Default.MaxRunning = 1
	})
	c := s.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.RegisterFunction(ctx, api.FunctionSpec{Name: "sleep", Command: []string{"/bin/sleep", "60"}}); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		task api.Task
		err  error
	}
	running, queued := make(chan answer, 1), make(chan answer, 1)
	go func() { task, err := c.Run(ctx, "sleep", api.TaskSpec{}); running <- answer{task, err} }()
	waitFor(t, "the first run to start", func() bool { r, _ := s.d.disp.load(); return r == 1 })
	go func() { task, err := c.Run(ctx, "sleep", api.TaskSpec{}); queued <- answer{task, err} }()
	waitFor(t, "the second run to queue", func() bool { _, q := s.d.disp.load(); return q == 1 })

	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	for name, want := range map[string]struct {
		ch  chan answer
		why string
	}{"running": {running, "stopped: the daemon shut down while the task ran"}, "queued": {queued, "not started: the daemon is shutting down"}} {
		select {
		case a := <-want.ch:
			if a.err != nil || a.task.State != api.StateFailed || !strings.HasPrefix(a.task.Error, want.why) {
				t.Errorf("%s sync run at shutdown = %s %q, %v; want failed, %q", name, a.task.State, a.task.Error, a.err, want.why)
			}
		case <-ctx.Done():
			t.Fatalf("%s sync run not answered at shutdown", name)
		}
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("daemon run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("daemon did not stop")
	}
}

// A synchronous run that reaches the queue after the drain began (it
// passed admit just before) ends at once instead of waiting for nothing.
func TestSyncRunEnqueuedWhileDraining(t *testing.T) {
	s := startTestSite(t, nil)
	s.d.disp.mu.Lock()
	s.d.disp.draining = true
	s.d.disp.mu.Unlock()
	j := &job{task: api.Task{ID: newTaskID(time.Now()), Owner: s.user.Name, State: api.StateReceived, ReceivedAt: time.Now()},
		acct: isolation.Account{Name: s.user.Name, UID: s.user.UID}, sync: true, done: make(chan struct{})}
	s.d.disp.enqueue(j)
	select {
	case <-j.done:
	case <-time.After(10 * time.Second):
		t.Fatal("sync run enqueued while draining never ended")
	}
	if got := s.d.disp.snapshot(j); got.State != api.StateFailed || !strings.HasPrefix(got.Error, "not started") {
		t.Errorf("sync run enqueued while draining = %s %q, want failed, not started", got.State, got.Error)
	}
	if r, q := s.d.disp.load(); r != 0 || q != 0 {
		t.Errorf("after it: %d running, %d queued; want none", r, q)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkRunServable is the low-latency path: a synchronous run call
// over the unix socket to a warm servable.
func BenchmarkRunServable(b *testing.B) {
	s := startTestSite(b, nil)
	c := s.client(b)
	s.registerUpper(b, c)
	ctx := context.Background()
	in := api.TaskSpec{InputBase64: []byte("x")}
	if _, err := c.Run(ctx, "upper", in); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if task, err := c.Run(ctx, "upper", in); err != nil || task.State != api.StateSucceeded {
			b.Fatalf("run: %v %s", err, task.Error)
		}
	}
}

// BenchmarkSubmitBatch is the throughput path: batches of 1000 no-op tasks
// durably acknowledged and run on warm servables; ns/op is per task.
func BenchmarkSubmitBatch(b *testing.B) {
	s := startTestSite(b, nil)
	c := s.client(b)
	s.registerUpper(b, c)
	ctx := context.Background()
	const batch = 1000
	specs := make([]api.TaskSpec, batch)
	for i := range specs {
		specs[i] = api.TaskSpec{Function: "upper"}
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		ids, err := c.Submit(ctx, specs)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Tasks(ctx, api.TasksRequest{IDs: ids, Wait: api.Duration(time.Minute)}); err != nil {
			b.Fatal(err)
		}
	}
}

// A token whose identity looks like a local caller's ("uid:N", written
// into the token file by hand or before fxd refused to issue one) does
// not act as that local user, even though the default rule maps uid:N.
func TestTokenCannotClaimLocalIdentity(t *testing.T) {
	s := startTestSite(t, func(c *conf.Config) {
		c.Auth.Map = append(c.Auth.Map, conf.MapRule{Regex: `uid:([0-9]+)`, Account: "$1"})
	})
	tok := tokenPrefix + "handwritten-local-identity"
	line := fmt.Sprintf("%s uid:%d %s\n", TokenHash(tok), s.user.UID, time.Now().UTC().Format(time.RFC3339))
	f, err := os.OpenFile(s.d.tokens.cur.Load().path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c, err := api.NewClient("unix://"+s.socket, api.ClientOptions{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Site(context.Background()); !errors.Is(err, api.ErrDenied) || !strings.Contains(err.Error(), "reserved for local callers") {
		t.Errorf("site info with a uid:N token: err = %v, want denied, reserved for local callers", err)
	}
}
