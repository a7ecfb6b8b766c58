package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
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

// newDevSite is a site for a dev daemon (fxd serve --dev, as make run
// starts it) with no config: its state dir is <temp>/fxd-dev instead of
// /tmp/fxd-dev, reachable by other users as /tmp/fxd-dev is, with a cgroup
// parent of its own. The caller spawns the daemon.
func newDevSite(t *testing.T) *site {
	t.Helper()
	s := blankSite(t, "fxdqs-")
	// The temp dirs are 0700 root: let the test users reach the socket and
	// the binaries inside, as they reach /tmp/fxd-dev.
	for d := s.dir; strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.state = filepath.Join(s.dir, "fxd-dev")
	s.socket = filepath.Join(s.state, "fxd.sock")
	s.stopWithin = 40 * time.Second // the dev config's drain_grace is 30s
	return s
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
	s := newDevSite(t)
	run := exec.Command(mk, "-C", repoRoot(t), "run", "DEV_DIR="+s.state, "BIN="+filepath.Join(s.dir, "build"),
		"SERVE_FLAGS=--cgroup-parent="+s.cgParent)
	run.Env = os.Environ()
	// make run leads a process group, as in a terminal: stop signals the
	// group and waits until all of it, fxd included, is gone.
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.spawn(run)
	s.waitHealthy(3 * time.Minute) // make run builds first
	for _, p := range []string{s.state + "/bin", s.state + "/bin/fxd", s.state + "/bin/fxd-shim", s.state + "/bin/fx"} {
		if st, err := os.Stat(p); err != nil {
			t.Errorf("make run did not install %s: %v", p, err)
		} else if st.Mode().Perm() != 0o755 {
			t.Errorf("make run installed %s with mode %04o; want 0755", p, st.Mode().Perm())
		}
	}

	script = strings.ReplaceAll(script, devStateDir, s.state)
	stdout, stderr, err := asUser(t, u, script)
	out := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	want := "hello, world from " + u.Name
	if err != nil || out[len(out)-1] != want {
		t.Errorf("quick start as %s: %v\nstdout:\n%s\nstderr:\n%s\nwant the last line %q\ndaemon log:\n%s", u.Name, err, stdout, stderr, want, s.logs())
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
	script := bin(t, "fxd") + " serve --dev --state-dir " + state
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
