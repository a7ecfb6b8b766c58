package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fxd.dev/fxd/internal/testenv"
)

// repoRoot is the checkout: this package is cmd/fxd.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// readmeBlock returns the lines of the first ```sh block of the README.md
// section whose heading starts with heading.
func readmeBlock(t *testing.T, heading string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	inSection, inBlock := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "## "):
			if inSection {
				t.Fatalf("README.md: section %q has no ```sh block", heading)
			}
			inSection = strings.HasPrefix(l, heading)
		case inSection && !inBlock && l == "```sh":
			inBlock = true
		case inBlock && l == "```":
			return lines
		case inBlock:
			lines = append(lines, l)
		}
	}
	t.Fatalf("README.md: no section %q with a closed ```sh block", heading)
	return nil
}

// devDaemon is a dev daemon (fxd serve --dev) of one test, with its state
// in a temp dir instead of /tmp/fxd-dev and a cgroup parent of its own.
type devDaemon struct {
	t        *testing.T
	dir      string // the state dir (DEV_DIR)
	socket   string
	cgParent string
	cmd      *exec.Cmd // make run or fxd serve, leading its own process group
	exited   chan struct{}
	logPath  string
	client   *http.Client // over the unix socket
}

// newDevDaemon makes the temp state dir, reachable by other users as
// /tmp/fxd-dev is, and picks a cgroup parent; start runs the daemon.
func newDevDaemon(t *testing.T) *devDaemon {
	t.Helper()
	testenv.RequireCgroup(t)
	if testing.Short() {
		t.Skip("skipped with -short: starts the fxd binary")
	}
	tmp := t.TempDir()
	// The temp dirs are 0700 root: let the test users reach the socket and
	// the binaries inside, as they reach /tmp/fxd-dev.
	for d := tmp; strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(tmp, "fxd-dev")
	d := &devDaemon{t: t, dir: dir, socket: filepath.Join(dir, "fxd.sock"), cgParent: randomName("fxdqs-"),
		logPath: filepath.Join(tmp, "fxd.log")}
	d.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.socket)
		},
	}}
	return d
}

// start runs cmd in a process group of its own and waits (up to within)
// until the daemon answers /healthz; it is stopped when the test ends.
func (d *devDaemon) start(cmd *exec.Cmd, within time.Duration) {
	t := d.t
	t.Helper()
	logf, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd, err)
	}
	d.cmd, d.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.stop)
	c := d.client
	deadline := time.Now().Add(within)
	for {
		select {
		case <-d.exited:
			t.Fatalf("%s exited before serving:\n%s", cmd, d.logs())
		default:
		}
		if resp, err := c.Get("http://fxd/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not healthy after %v:\n%s", cmd, within, d.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *devDaemon) logs() string {
	b, _ := os.ReadFile(d.logPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// stop sends SIGTERM to the process it started (make passes it on to fxd
// and waits for it), waits up to 40 s for the whole process group to end
// (SIGKILL after that, and the test fails), then checks that no worker
// cgroup is left and removes the cgroup parent.
func (d *devDaemon) stop() {
	t := d.t
	d.client.CloseIdleConnections()
	pgid := d.cmd.Process.Pid
	d.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(40 * time.Second)
	select {
	case <-d.exited:
	case <-time.After(time.Until(deadline)):
	}
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(-pgid, syscall.SIGKILL)
			t.Errorf("dev daemon (process group %d) still running 40s after SIGTERM; killed it:\n%s", pgid, d.logs())
			<-d.exited
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", d.cgParent, "*"))
	for _, dir := range dirs {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			t.Errorf("worker cgroup left after the dev daemon stopped: %s", dir)
		}
	}
	testenv.RemoveCgroupParent(t, d.cgParent)
}

// asUser runs the shell script with /bin/sh -e as u, in u's home with a
// login-like environment, for at most 60 s.
func asUser(t *testing.T, u testenv.User, script string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-e", "-c", script)
	cmd.Dir = u.Home
	cmd.Env = []string{"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name, "SHELL=/bin/sh", "PATH=/usr/local/bin:/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		err = errors.New("no exit within 60s")
	}
	return out.String(), errb.String(), err
}

// README's quick start, literally: `make run` is run for real (as root, as
// the set-up says), with its state dir, build dir and cgroup parent moved
// to temp places through make variables; then the quick start's three
// lines, with /tmp/fxd-dev replaced by that state dir, run as a new
// ordinary user with /bin/sh and print "hello, world from <user>".
func TestQuickStart(t *testing.T) {
	if setup := readmeBlock(t, "## Set up"); len(setup) != 1 || setup[0] != "make run" {
		t.Fatalf("README set-up: first block = %q; want make run", setup)
	}
	lines := readmeBlock(t, "## Quick start")
	script := strings.Join(lines, "\n")
	if len(lines) != 3 || !strings.Contains(script, "unix://"+devStateDir+"/fxd.sock") || !strings.Contains(script, devStateDir+"/bin") {
		t.Fatalf("README quick start = %q; want three lines that use the socket %s/fxd.sock and the binaries in %s/bin of make run", lines, devStateDir, devStateDir)
	}
	mk := testenv.RequireCommand(t, "make")
	// The Makefile's defaults are the README's paths: then moving DEV_DIR
	// below is the only difference from what a reader runs.
	dry, err := exec.Command(mk, "-s", "-n", "-C", repoRoot(t), "run").Output()
	if err != nil || !strings.Contains(string(dry), devStateDir+"/bin/fxd serve --dev --state-dir "+devStateDir) {
		t.Fatalf("make -n run: %v\n%s\nwant it to run %s/bin/fxd serve --dev --state-dir %s", err, dry, devStateDir, devStateDir)
	}

	u := testenv.NewUser(t) // before the daemon, so that the daemon stops first
	d := newDevDaemon(t)
	run := exec.Command(mk, "-C", repoRoot(t), "run", "DEV_DIR="+d.dir, "BIN="+filepath.Join(filepath.Dir(d.dir), "build"),
		"SERVE_FLAGS=--cgroup-parent="+d.cgParent)
	run.Env = os.Environ()
	d.start(run, 3*time.Minute) // make run builds first
	for _, p := range []string{d.dir + "/bin", d.dir + "/bin/fxd", d.dir + "/bin/fxd-shim", d.dir + "/bin/fx"} {
		if st, err := os.Stat(p); err != nil {
			t.Errorf("make run did not install %s: %v", p, err)
		} else if st.Mode().Perm() != 0o755 {
			t.Errorf("make run installed %s with mode %04o; want 0755", p, st.Mode().Perm())
		}
	}

	script = strings.ReplaceAll(script, devStateDir, d.dir)
	stdout, stderr, err := asUser(t, u, script)
	out := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	want := "hello, world from " + u.Name
	if err != nil || out[len(out)-1] != want {
		t.Errorf("quick start as %s: %v\nstdout:\n%s\nstderr:\n%s\nwant the last line %q\ndaemon log:\n%s", u.Name, err, stdout, stderr, want, d.logs())
	}
}

// fxd serve started by an ordinary user stops at once with exit code 1,
// says that fxd must start as root and how, and creates nothing.
func TestServeRefusesNonRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: runs the fxd binary")
	}
	u := testenv.NewUser(t)
	state := filepath.Join(u.Home, "state")
	script := filepath.Join(binDir, "fxd") + " serve --dev --state-dir " + state
	start := time.Now()
	_, stderr, err := asUser(t, u, script)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("fxd serve as %s: %v, stderr %q; want exit code 1", u.Name, err, stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("fxd serve as %s took %v to refuse; want at once", u.Name, d)
	}
	for _, want := range []string{"uid " + strconv.Itoa(int(u.UID)), "must start as root", "own account", "sudo make run", "systemctl start fxd"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("fxd serve as %s: stderr %q; want it to mention %q", u.Name, stderr, want)
		}
	}
	if strings.Contains(stderr, "WRN") || strings.Contains(stderr, `"level"`) {
		t.Errorf("fxd serve as %s logged before refusing: %q; want only the refusal", u.Name, stderr)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fxd serve as %s left its state dir %s (err %v); want nothing created", u.Name, state, err)
	}
}

// `fxd token issue --dev` writes the token file that `fxd serve --dev`
// reads: the dev daemon knows the new token at once (403: known, but the
// dev config maps no token identity), while an unknown token gets 401.
func TestTokenDevMatchesServeDev(t *testing.T) {
	d := newDevDaemon(t)
	d.start(exec.Command(filepath.Join(binDir, "fxd"), "serve", "--dev", "--state-dir", d.dir, "--cgroup-parent", d.cgParent), 20*time.Second)
	tok, notice := issueToken(t, "probe@example.org", "token", "issue", "--dev", "--identity", "probe@example.org", "--state-dir", d.dir)
	if !strings.Contains(notice, "no [[auth.map]] rule matches") {
		t.Errorf("issue --dev notice = %q; want the warning that no rule maps the identity", notice)
	}
	for _, tc := range []struct {
		name, tok string
		status    int
	}{{"issued --dev token", tok, http.StatusForbidden}, {"unknown token", "fxd_unknown", http.StatusUnauthorized}} {
		code, _, eb, _ := siteAs(t, d.client, "http://fxd", tc.tok)
		if code != tc.status {
			t.Errorf("%s on the dev daemon: %d %+v; want %d", tc.name, code, eb.Error, tc.status)
		}
	}
}
