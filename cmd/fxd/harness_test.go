package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

// binDir holds fxd, fxd-shim and fx built once for the package's tests.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fxd-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	for _, b := range []struct{ name, pkg, cgo string }{
		{"fxd", "fxd.dev/fxd/cmd/fxd", "1"},
		{"fxd-shim", "fxd.dev/fxd/cmd/fxd-shim", "0"},
		{"fx", "fxd.dev/fxd/cmd/fx", "1"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.name), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+b.cgo)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.name, err, out)
			return 1
		}
	}
	binDir = dir
	return m.Run()
}

// site is one fxd daemon started from the real binary for a test.
type site struct {
	t        *testing.T
	dir      string // state dir; config at dir/fxd.toml
	socket   string
	cgParent string
	cmd      *exec.Cmd
	exited   chan struct{}
	log      *os.File
}

// siteConfig is the base config; extra is appended (more [[auth.map]]
// rules, quotas).
func siteConfig(dir, socket, cgParent, endpoint, extra string) string {
	return fmt.Sprintf(`
[site]
name = "test"
state_dir = %q

[endpoint]
socket = %q
socket_mode = "0666"
drain_grace = "5s"
%s

[auth]
min_uid = 1000

[workers]
cgroup_parent = %q
idle_timeout = "1m"

[log]
level = "debug"
format = "json"
%s`, dir, socket, endpoint, cgParent, extra)
}

func randomName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
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
	testenv.RequireCgroup(t)
	if testing.Short() {
		t.Skip("skipped with -short: starts the fxd binary")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	s := &site{t: t, dir: dir, socket: filepath.Join(dir, "fxd.sock"), cgParent: randomName("fxdtest-")}
	cfg := siteConfig(filepath.Join(dir, "state"), s.socket, s.cgParent, endpoint, extra)
	if err := os.WriteFile(filepath.Join(dir, "fxd.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *site) configPath() string { return filepath.Join(s.dir, "fxd.toml") }

func (s *site) start() {
	t := s.t
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.dir, "fxd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	s.log = logf
	s.cmd = exec.Command(filepath.Join(binDir, "fxd"), "serve", "--config", s.configPath())
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start fxd: %v", err)
	}
	s.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(s.cmd, s.exited)
	s.waitHealthy()
}

// waitHealthy polls /healthz for up to 20 s.
func (s *site) waitHealthy() {
	t := s.t
	t.Helper()
	c := s.rawHTTP()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			t.Fatalf("fxd exited during start:\n%s", s.logs())
		default:
		}
		if resp, err := c.Get("http://fxd/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("fxd not healthy after 20s:\n%s", s.logs())
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

// stop sends SIGTERM and waits for the drain; the test fails if fxd does
// not exit within 30 s.
func (s *site) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
			s.t.Errorf("fxd did not exit within 30s of SIGTERM:\n%s", s.logs())
		}
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

// checkNoCgroups fails the test if worker cgroups outlive the daemon.
func (s *site) checkNoCgroups() {
	s.t.Helper()
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", s.cgParent, "*"))
	var left []string
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			left = append(left, d)
		}
	}
	if len(left) > 0 {
		s.t.Errorf("worker cgroups left after fxd stopped: %s", strings.Join(left, " "))
	}
	testenv.RemoveCgroupParent(s.t, s.cgParent)
}

// token issues a bearer token for identity with the real admin command.
func (s *site) token(identity string) string {
	s.t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "fxd"), "token", "issue", "--config", s.configPath(), "--identity", identity).Output()
	if err != nil {
		s.t.Fatalf("fxd token issue: %v", err)
	}
	return strings.TrimSpace(string(out))
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
