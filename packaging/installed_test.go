package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

// These tests run the fxd that the .deb installed, as systemd runs
// fxd.service: scripts/test-packages.sh (part of make test) installs the
// package and runs them with FXD_INSTALLED=/usr/bin/fxd. Without it they
// skip, also in CI, where that script runs them.

// unitDir is where the package installs its units.
const unitDir = "/usr/lib/systemd/system"

// installedFxd returns the installed fxd to test, or skips.
func installedFxd(t *testing.T) string {
	t.Helper()
	fxd := os.Getenv("FXD_INSTALLED")
	if fxd == "" {
		t.Skip("FXD_INSTALLED is unset: this test runs the fxd the .deb installs; scripts/test-packages.sh (run by make test) installs the package and runs it with FXD_INSTALLED=/usr/bin/fxd")
	}
	testenv.RequireCgroup(t) // and root: fxd serves only as root
	if st, err := os.Stat(fxd); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("FXD_INSTALLED=%s: not an executable (%v)", fxd, err)
	}
	return fxd
}

// daemon is one fxd serve of a test, with its own state dir, socket and
// cgroup parent in a temp dir, like a site's but out of the package's way.
type daemon struct {
	t        *testing.T
	fxd      string
	dir      string
	socket   string
	cgParent string
	cmd      *exec.Cmd
	exited   chan struct{}
	notify   *testenv.NotifySocket
}

func newDaemon(t *testing.T, fxd, extra string) *daemon {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // tenants reach their task data under it
	b := make([]byte, 4)
	rand.Read(b)
	d := &daemon{t: t, fxd: fxd, dir: dir, socket: filepath.Join(dir, "fxd.sock"), cgParent: "fxdpkg-" + hex.EncodeToString(b)}
	cfg := testenv.SiteConfig(testenv.Site{Name: "pkgtest", StateDir: d.state(), Socket: d.socket, CgroupParent: d.cgParent,
		DrainGrace: "2s", Extra: extra})
	if err := os.WriteFile(d.config(), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(fxd, "config", "check", d.config()).CombinedOutput(); err != nil {
		t.Fatalf("fxd config check: %v\n%s", err, out)
	}
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) config() string { return filepath.Join(d.dir, "fxd.toml") }

func (d *daemon) state() string { return filepath.Join(d.dir, "state") }

func (d *daemon) logs() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "fxd.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// start runs argv (which ends in fxd serve) as systemd would: a clean
// environment plus NOTIFY_SOCKET and WATCHDOG_USEC (400 ms, so that pings
// come every 200 ms), and waits for READY=1.
func (d *daemon) start(argv ...string) (ready string) {
	t := d.t
	t.Helper()
	d.notify = testenv.ListenNotify(t)
	log, err := os.OpenFile(filepath.Join(d.dir, "fxd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "NOTIFY_SOCKET=" + d.notify.Path, "WATCHDOG_USEC=400000"}
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", d.cmd, err)
	}
	d.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(d.cmd, d.exited)
	return d.await("READY=1", 30*time.Second)
}

// await returns the next notification with the line want.
func (d *daemon) await(want string, timeout time.Duration) string {
	d.t.Helper()
	msg, _, err := d.notify.Await(d.t, want, timeout, d.exited)
	if err != nil {
		d.t.Fatalf("fxd: %v:\n%s", err, d.logs())
	}
	return msg
}

// sigterm stops fxd as systemd does and checks that it said STOPPING=1
// and exited cleanly.
func (d *daemon) sigterm() {
	t := d.t
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM fxd: %v", err)
	}
	d.await("STOPPING=1", 15*time.Second)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("fxd still running 30s after SIGTERM:\n%s", d.logs())
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("fxd exit code after SIGTERM = %d, want 0:\n%s", code, d.logs())
	}
}

// stop kills what still runs (a failed test), then checks that no worker
// cgroup outlived fxd and removes the cgroup parent.
func (d *daemon) stop() {
	if d.cmd != nil && d.cmd.Process != nil {
		select {
		case <-d.exited:
		default:
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(30 * time.Second):
				d.cmd.Process.Kill()
				<-d.exited
			}
		}
	}
	for _, p := range []string{"/sys/fs/cgroup/*/" + d.cgParent + "/*", "/sys/fs/cgroup/" + d.cgParent + "/*"} {
		matches, _ := filepath.Glob(p)
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.IsDir() {
				d.t.Errorf("worker cgroup %s left after fxd stopped", m)
			}
		}
	}
	testenv.RemoveCgroupParent(d.t, d.cgParent)
}

// The installed fxd under a notify socket, as Type=notify with WatchdogSec
// runs it: READY=1 with a STATUS line once it serves, WATCHDOG=1 pings at
// half of WATCHDOG_USEC, STOPPING=1 on SIGTERM, and a clean exit.
func TestInstalledNotify(t *testing.T) {
	fxd := installedFxd(t)
	d := newDaemon(t, fxd, "")
	ready := d.start(fxd, "serve", "--config", d.config())
	if want := "STATUS=serving on unix:" + d.socket; !testenv.NotifyHasLine(ready, want) {
		t.Errorf("READY datagram = %q, want the line %q", ready, want)
	}
	start := time.Now()
	d.await("WATCHDOG=1", 10*time.Second)
	d.await("WATCHDOG=1", 10*time.Second)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("two watchdog pings took %v; want one every 200ms (WATCHDOG_USEC=400000)", took)
	}
	d.sigterm()
	if _, err := os.Lstat(d.socket); err == nil {
		t.Errorf("fxd left its socket %s behind", d.socket)
	}
}

// The installed fxd in fxd.service's sandbox (see sandboxArgv) still does
// its job: it runs a task as its caller's account in a worker cgroup,
// kills one that outlives its timeout, and runs a task in a SIF image (a
// loop-mounted squashfs, an OCI container with a network of its own),
// with crun and with runc; and it still notifies and drains.
func TestInstalledHardened(t *testing.T) {
	fxd := installedFxd(t)
	var ran []string
	for _, rt := range []string{"crun", "runc"} {
		if _, err := exec.LookPath(rt); err != nil {
			continue
		}
		ran = append(ran, rt)
		t.Run(rt, func(t *testing.T) { testHardened(t, fxd, rt) })
	}
	if len(ran) == 0 {
		testenv.RequireCommand(t, "crun") // skips, or fails in CI
	}
}

func testHardened(t *testing.T, fxd, ociRuntime string) {
	user := testenv.NewUser(t)
	identity := user.Name + "@example.org"
	d := newDaemon(t, fxd, fmt.Sprintf(`
[containers]
runtime = %q
network = "none"

[[auth.map]]
match = %q
account = %q
`, ociRuntime, identity, user.Name))
	tok, err := exec.Command(fxd, "token", "issue", "--config", d.config(), "--identity", identity).Output()
	if err != nil {
		t.Fatalf("fxd token issue: %v", err)
	}
	argv, capMask, stateMode := sandboxArgv(t, filepath.Join(unitDir, "fxd.service"))
	// systemd makes the StateDirectory= with StateDirectoryMode=, and sets
	// that mode again at every start.
	if err := os.MkdirAll(d.state(), stateMode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d.state(), stateMode); err != nil {
		t.Fatal(err)
	}
	d.start(append(argv, fxd, "serve", "--config", d.config())...)

	c, err := api.NewClient("unix://"+d.socket, api.ClientOptions{Token: strings.TrimSpace(string(tok)), Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	register := func(spec api.FunctionSpec) {
		t.Helper()
		if _, err := c.RegisterFunction(ctx, spec); err != nil {
			t.Fatalf("register %s: %v\n%s", spec.Name, err, d.logs())
		}
	}
	run := func(name string, want api.State) string {
		t.Helper()
		task, err := c.Run(ctx, name, api.TaskSpec{})
		if err != nil || task.State != want {
			t.Fatalf("run %s: %+v, %v; want %s\n%s", name, task, err, want, d.logs())
		}
		return string(task.Output)
	}

	// On the host: as the caller, in a worker cgroup, under the unit's
	// capability bounding set (which the task inherits from fxd).
	register(api.FunctionSpec{Name: "who", Command: []string{"/bin/sh", "-c", "id -un; grep CapBnd /proc/self/status; cat /proc/self/cgroup"}})
	out := run("who", api.StateSucceeded)
	if first, _, _ := strings.Cut(out, "\n"); first != user.Name {
		t.Errorf("host task ran as %q, want %s:\n%s", first, user.Name, out)
	}
	if want := fmt.Sprintf("CapBnd:\t%016x", capMask); !strings.Contains(out, want) {
		t.Errorf("host task's bounding set: want %q (the unit's CapabilityBoundingSet) in\n%s", want, out)
	}
	if !strings.Contains(out, "/"+d.cgParent+"/") {
		t.Errorf("host task is in no cgroup under %s:\n%s", d.cgParent, out)
	}
	// A task past its timeout is killed: its processes run as the caller.
	register(api.FunctionSpec{Name: "hang", Command: []string{"/bin/sleep", "300"}, Limits: api.Limits{Timeout: api.Duration(time.Second)}})
	run("hang", api.StateTimedOut)
	if left := liveProcs(user.UID); len(left) > 0 {
		t.Errorf("the timed-out task still runs: %s", strings.Join(left, "; "))
	}

	// Data from the cache: a hard link in the account's task data dir,
	// which it reaches through the state dir (StateDirectoryMode).
	entry, err := c.PutData(ctx, strings.NewReader("cached\n"), 7, "")
	if err != nil {
		t.Fatalf("put data: %v\n%s", err, d.logs())
	}
	register(api.FunctionSpec{Name: "read", Command: []string{"/bin/sh", "-c", "cat \"$FXD_DATA/in\""}})
	task, err := c.Run(ctx, "read", api.TaskSpec{Data: []api.DataRef{{Ref: entry.Digest, Path: "in"}}})
	if err != nil || task.State != api.StateSucceeded || string(task.Output) != "cached\n" {
		t.Errorf("run a task that reads cached data: %+v, %v; want it to print the data\n%s", task, err, d.logs())
	}

	// In a SIF image: fxd loop-mounts its squashfs and the OCI runtime
	// starts a container, with loopback only (network = "none").
	img := testenv.BuildSIF(t)
	if out, err := exec.Command(fxd, "runtime", "add", "busybox", img, "--config", d.config()).CombinedOutput(); err != nil {
		t.Fatalf("fxd runtime add: %v\n%s\n%s", err, out, d.logs())
	}
	register(api.FunctionSpec{Name: "in-image", Runtime: "busybox", Command: []string{"/bin/sh", "-c", "id -u; cat /sys/class/net/lo/operstate; ls /sys/class/net"}})
	if out, want := run("in-image", api.StateSucceeded), fmt.Sprintf("%d\nunknown\nlo\n", user.UID); out != want {
		t.Errorf("task in the image printed %q, want %q (its UID, a loopback that is up, no other interface)", out, want)
	}
	d.sigterm()
}

// liveProcs lists the processes of uid that run: not zombies, which this
// machine's init may reap late.
func liveProcs(uid uint32) []string {
	var out []string
	files, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		var state, uids, name string
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "State":
				state = strings.TrimSpace(v)
			case "Uid":
				uids = strings.TrimSpace(v)
			case "Name":
				name = strings.TrimSpace(v)
			}
		}
		if f := strings.Fields(uids); len(f) > 0 && f[0] == fmt.Sprint(uid) && !strings.HasPrefix(state, "Z") {
			out = append(out, filepath.Base(filepath.Dir(file))+" "+name+" "+state)
		}
	}
	return out
}

// sandboxArgv reads the sandbox of a unit and returns the command that
// starts a program in it without systemd, with the capability bounding
// set it gives: a mount namespace of its own (slave of the host's, as
// systemd makes one) in which
//
//	ProtectSystem=full           remounts /usr, /boot, /efi and /etc read-only
//	ProtectKernelTunables=yes    remounts /proc/sys and /sys read-only (the
//	                             cgroup file systems mounted below /sys stay
//	                             writable, as systemd leaves them)
//	CapabilityBoundingSet=       is set with setpriv
//
// It returns StateDirectoryMode= too, for the caller to give its state dir.
// The unit's other sandboxing directives are not emulated, since fxd uses
// nothing they take away: ProtectKernelModules (fxd loads no module; the
// kernel loads loop and squashfs itself), ProtectKernelLogs (fxd reads no
// kernel log) and RestrictRealtime (nothing fxd starts asks for realtime
// scheduling). A directive the test knows neither way fails it: emulate
// it here, or say why it needs no emulation.
func sandboxArgv(t *testing.T, unit string) (argv []string, capMask uint64, stateMode os.FileMode) {
	t.Helper()
	testenv.RequireCommand(t, "unshare")
	testenv.RequireCommand(t, "setpriv")
	f, err := os.Open(unit)
	if err != nil {
		t.Fatalf("read the installed unit: %v", err)
	}
	defer f.Close()
	var script strings.Builder
	script.WriteString("set -e\nro() { [ -d \"$1\" ] || return 0; mount --rbind \"$1\" \"$1\"; mount -o remount,bind,ro \"$1\"; }\n")
	bounding := ""
	notEmulated := map[string]bool{"ProtectKernelModules": true, "ProtectKernelLogs": true, "RestrictRealtime": true}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(key, "#") {
			continue
		}
		switch {
		case key == "ProtectSystem" && value == "full":
			script.WriteString("ro /usr; ro /boot; ro /efi; ro /etc\n")
		case key == "ProtectKernelTunables" && value == "yes":
			script.WriteString("ro /proc/sys; ro /sys\n")
		case key == "CapabilityBoundingSet":
			var names []string
			for _, c := range strings.Fields(value) {
				n, ok := capNumbers[c]
				if !ok {
					t.Fatalf("%s: CapabilityBoundingSet names %s, which this test does not know", unit, c)
				}
				capMask |= 1 << n
				names = append(names, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
			}
			bounding = "-all," + strings.Join(names, ",")
		case key == "StateDirectoryMode":
			m, err := strconv.ParseUint(value, 8, 32)
			if err != nil {
				t.Fatalf("%s: StateDirectoryMode=%s: %v", unit, value, err)
			}
			stateMode = os.FileMode(m)
		case notEmulated[key]:
		case sandboxing(key):
			t.Fatalf("%s sets %s=%s, which the test neither emulates nor knows to need no emulation; add it to sandboxArgv", unit, key, value)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if bounding == "" || stateMode == 0 {
		t.Fatalf("%s sets no CapabilityBoundingSet or no StateDirectoryMode", unit)
	}
	script.WriteString(`exec setpriv --bounding-set ` + bounding + ` -- "$@"` + "\n")
	return []string{"unshare", "--mount", "--propagation", "slave", "--", "/bin/sh", "-c", script.String(), "sh"}, capMask, stateMode
}

// sandboxing says whether a unit key restricts the service (systemd.exec's
// sandboxing and security options).
func sandboxing(key string) bool {
	for _, p := range []string{"Protect", "Private", "Restrict", "ReadOnly", "ReadWrite", "Inaccessible", "NoNewPrivileges", "SystemCall", "Capability", "AmbientCapabilities", "Device", "MemoryDenyWriteExecute", "LockPersonality", "SecureBits", "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "IPAddress", "User", "Group", "DynamicUser", "UMask"} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// capNumbers are the capabilities' numbers (linux/capability.h).
var capNumbers = func() map[string]int {
	names := []string{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
		"LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE",
		"SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
		"SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
		"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"}
	m := map[string]int{}
	for i, n := range names {
		m["CAP_"+n] = i
	}
	return m
}()
