package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation/cgroup"
)

// The binaries are built on first use, once for the package's tests, so
// that unit tests (TestImport*, TestTokenCommand, config tests) build none.
var (
	binsOnce sync.Once
	binsDir  string // fxd, fxd-shim and fx
	binsErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binsDir != "" {
		os.RemoveAll(binsDir)
	}
	os.Exit(code)
}

// bin returns the path of the built binary name (fxd, fxd-shim, fx or
// upper), building them all the first time; a build error fails t.
func bin(t testing.TB, name string) string {
	t.Helper()
	binsOnce.Do(func() { binsDir, binsErr = buildBins() })
	if binsErr != nil {
		t.Fatal(binsErr)
	}
	return filepath.Join(binsDir, name)
}

// buildBins builds fxd, fxd-shim (static), fx and upper into a new temp dir that
// other users can read, as the tenants run fx and fxd-shim from it.
func buildBins() (string, error) {
	dir, err := os.MkdirTemp("", "fxd-e2e-bin-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	for _, b := range []struct{ name, pkg, cgo string }{
		{"fxd", "fxd.dev/fxd/cmd/fxd", "1"},
		{"fxd-shim", "fxd.dev/fxd/cmd/fxd-shim", "0"},
		{"fx", "fxd.dev/fxd/cmd/fx", "1"},
		{"upper", "fxd.dev/fxd/internal/testenv/upper", "0"}, // a static servable for images
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.name), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+b.cgo)
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("build %s: %v\n%s", b.name, err, out)
		}
	}
	return dir, nil
}

// site is one fxd daemon of a test, spawned from the real binary.
type site struct {
	t          *testing.T
	dir        string // temp dir: config fxd.toml, log fxd.log
	state      string // state dir
	socket     string
	cgParent   string
	stopWithin time.Duration // from SIGTERM to exit, at most
	netns      string        // network namespace start runs fxd serve in; "" the host's
	cmd        *exec.Cmd     // what spawn started: fxd, sh exec'ing fxd, or make
	exited     chan struct{} // closed once cmd has exited
	log        *os.File
}

func randomName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// blankSite is what every spawned daemon has: a temp dir of its own
// (0755), a cgroup parent named prefix+random, and a stop when the test
// ends. It skips with -short or without cgroups; it starts nothing.
func blankSite(t *testing.T, cgPrefix string) *site {
	t.Helper()
	testenv.RequireCgroup(t)
	if testing.Short() {
		t.Skip("skipped with -short: starts the fxd binary")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	s := &site{t: t, dir: dir, cgParent: randomName(cgPrefix), stopWithin: 30 * time.Second}
	t.Cleanup(s.stop)
	return s
}

// newSite writes a site config, with endpoint added to the [endpoint]
// table and extra appended, and starts nothing: start or
// startUnderSystemd does. The daemon is stopped when the test ends.
func newSite(t *testing.T, endpoint, extra string) *site {
	t.Helper()
	return newNamedSite(t, "test", endpoint, extra)
}

// newNamedSite is newSite for a site named name (site.name).
func newNamedSite(t *testing.T, name, endpoint, extra string) *site {
	t.Helper()
	s := blankSite(t, "fxdtest-")
	s.state, s.socket = filepath.Join(s.dir, "state"), filepath.Join(s.dir, "fxd.sock")
	cfg := testenv.SiteConfig(testenv.Site{Name: name, StateDir: s.state, Socket: s.socket, CgroupParent: s.cgParent,
		DrainGrace: "5s", Endpoint: endpoint, Extra: extra})
	if err := os.WriteFile(s.configPath(), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// startSite writes a config and starts fxd serve on it; the daemon is
// stopped and its state removed when the test ends.
func startSite(t *testing.T, extra string) *site {
	t.Helper()
	return startSiteWith(t, "", extra)
}

// startSiteWith is startSite with extra lines for the [endpoint] table.
func startSiteWith(t *testing.T, endpoint, extra string) *site {
	t.Helper()
	s := newSite(t, endpoint, extra)
	s.start()
	return s
}

func (s *site) configPath() string { return filepath.Join(s.dir, "fxd.toml") }

// cleanEnv is the environment of a spawned fxd: PATH alone.
func cleanEnv() []string { return []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"} }

// start runs fxd serve on the site's config and waits until it serves.
func (s *site) start() {
	s.t.Helper()
	cmd := exec.Command(bin(s.t, "fxd"), "serve", "--config", s.configPath())
	if s.netns != "" {
		// nsenter execs fxd after setns (the PID stays fxd's), and unlike
		// ip netns exec it mounts no sysfs of the namespace over
		// /sys, which would hide /sys/fs/cgroup.
		cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + s.netns, "--"}, cmd.Args...)...)
	}
	cmd.Env = cleanEnv()
	s.spawn(cmd)
	s.waitHealthy(20 * time.Second)
}

// spawn starts cmd with its output appended to the site's log; s.exited
// is closed when it exits. It does not wait for the daemon to serve.
func (s *site) spawn(cmd *exec.Cmd) {
	t := s.t
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.dir, "fxd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", cmd, err)
	}
	s.cmd, s.log, s.exited = cmd, logf, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(cmd, s.exited)
}

// healthz is one GET /healthz, with no retries.
func (s *site) healthz() (int, error) {
	c := s.rawHTTP()
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://fxd/healthz")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitHealthy polls /healthz until it answers 200, for at most within; it
// fails the test if the spawned process exits first.
func (s *site) waitHealthy(within time.Duration) {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		select {
		case <-s.exited:
			t.Fatalf("%s exited before serving:\n%s", s.cmd, s.logs())
		default:
		}
		if code, err := s.healthz(); err == nil && code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not healthy after %v:\n%s", s.cmd, within, s.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *site) rawHTTP() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", s.socket)
		},
	}, Timeout: 30 * time.Second}
}

func (s *site) logs() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "fxd.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// leadsGroup says whether the spawned process leads a process group of
// its own (make run and the fxd it starts).
func (s *site) leadsGroup() bool {
	return s.cmd.SysProcAttr != nil && s.cmd.SysProcAttr.Setpgid
}

// signal sends sig to the spawned process, or to its whole process group
// if it leads one.
func (s *site) signal(sig syscall.Signal) error {
	if s.leadsGroup() {
		return syscall.Kill(-s.cmd.Process.Pid, sig)
	}
	return s.cmd.Process.Signal(sig)
}

// waitGone waits for at most within until the spawned process has exited,
// and every process of its group if it leads one; it reports whether they
// have.
func (s *site) waitGone(within time.Duration) bool {
	deadline := time.Now().Add(within)
	select {
	case <-s.exited:
	case <-time.After(within):
		return false
	}
	for s.leadsGroup() && syscall.Kill(-s.cmd.Process.Pid, 0) == nil {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// waitExit waits up to 30 s for the spawned process to exit and returns
// its exit code.
func (s *site) waitExit() int {
	s.t.Helper()
	if !s.waitGone(30 * time.Second) {
		s.t.Fatalf("%s did not exit within 30s:\n%s", s.cmd, s.logs())
	}
	return s.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM (to the process group, if the spawned process leads
// one) and waits for the drain: the test fails, and what is left is
// killed, if anything still runs stopWithin later. Then it checks that no
// worker cgroup outlived the daemon and removes the cgroup parent.
func (s *site) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.signal(syscall.SIGTERM)
	if !s.waitGone(s.stopWithin) {
		s.signal(syscall.SIGKILL)
		<-s.exited
		s.t.Errorf("%s (pid %d) still running %v after SIGTERM; killed it:\n%s", s.cmd, s.cmd.Process.Pid, s.stopWithin, s.logs())
	}
	s.cmd = nil
	s.log.Close()
	s.checkNoCgroups()
}

// kill9 kills the daemon with SIGKILL, as a crash would.
func (s *site) kill9() {
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
	s.log.Close()
}

// workerCgroups lists the names of the worker cgroups under parent, in any
// hierarchy (cgroup v1 or v2).
func workerCgroups(t testing.TB, parent string) []string {
	t.Helper()
	names, err := cgroup.Children(parent)
	if err != nil {
		t.Errorf("list the cgroups under %s: %v", parent, err)
	}
	return names
}

// checkNoCgroups fails the test if worker cgroups outlive the daemon, then
// removes the cgroup parent.
func (s *site) checkNoCgroups() {
	s.t.Helper()
	if left := workerCgroups(s.t, s.cgParent); len(left) > 0 {
		s.t.Errorf("worker cgroups left under %s after fxd stopped: %s", s.cgParent, strings.Join(left, " "))
	}
	testenv.RemoveCgroupParent(s.t, s.cgParent)
}

// fxdRun runs the fxd binary with args (30 s at most) and returns its
// stdout, stderr and exit code.
func fxdRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin(t, "fxd"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("fxd %s: no exit within 30s; stderr %q", strings.Join(args, " "), errb.String())
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("fxd %s: %v; stderr %q", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), errb.String(), code
}

// tokenLine is what `fxd token issue` prints on stdout: the token alone.
var tokenLine = regexp.MustCompile(`^fxd_[A-Za-z0-9_-]{43}\n$`)

// issueToken runs `fxd token` with args (an issue command in some order)
// and returns the token and the notice, checking that stdout holds only
// the token and stderr a notice without it.
func issueToken(t *testing.T, identity string, args ...string) (tok, notice string) {
	t.Helper()
	stdout, stderr, code := fxdRun(t, args...)
	if code != 0 || !tokenLine.MatchString(stdout) {
		t.Fatalf("fxd %s: exit %d, stdout %q, stderr %q; want exit 0 and only the token on stdout", strings.Join(args, " "), code, stdout, stderr)
	}
	tok = strings.TrimSpace(stdout)
	if !strings.Contains(stderr, identity) || strings.Contains(stderr, tok) {
		t.Errorf("fxd %s: stderr %q; want a notice naming %s, without the token", strings.Join(args, " "), stderr, identity)
	}
	return tok, stderr
}

// token issues a bearer token for identity with the real admin command.
func (s *site) token(identity string) string {
	s.t.Helper()
	tok, _ := issueToken(s.t, identity, "token", "issue", "--config", s.configPath(), "--identity", identity)
	return tok
}

// client is an API client over the unix socket with identity's token.
func (s *site) client(identity string) *api.Client {
	s.t.Helper()
	c, err := api.NewClient("unix://"+s.socket, api.ClientOptions{Token: s.token(identity), Timeout: 2 * time.Minute})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// tenant is a real local user with a token mapped to it.
type tenant struct {
	user testenv.User
	id   string
}

// newTenants makes n real users and the [[auth.map]] rules for them.
func newTenants(t *testing.T, n int) ([]tenant, string) {
	var ts []tenant
	var rules strings.Builder
	for i := 0; i < n; i++ {
		u := testenv.NewUser(t)
		id := u.Name + "@example.org"
		ts = append(ts, tenant{user: u, id: id})
		fmt.Fprintf(&rules, "\n[[auth.map]]\nmatch = %q\naccount = %q\n", id, u.Name)
	}
	return ts, rules.String()
}
