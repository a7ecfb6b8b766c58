package main

import (
	"errors"
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

// awaitNotify returns the next datagram on n with the line want and the
// datagrams before it. It fails the test after timeout, or once fxd has
// exited and all it sent is read.
func (s *site) awaitNotify(n *testenv.NotifySocket, want string, timeout time.Duration) (msg string, skipped []string) {
	s.t.Helper()
	msg, skipped, err := n.Await(s.t, want, timeout, s.exited)
	if err != nil {
		s.t.Fatalf("fxd: %v:\n%s", err, s.logs())
	}
	return msg, skipped
}

// startUnderSystemd starts fxd serve on s's config as systemd does: env
// added to a clean environment, files as fd 3, 4, …, and each of pidVars
// (LISTEN_PID, WATCHDOG_PID) set to fxd's own PID, which sh knows as $$
// and keeps through exec. It does not wait for fxd to serve.
func startUnderSystemd(s *site, env []string, files []*os.File, pidVars ...string) {
	s.t.Helper()
	script := "exec \"$0\" \"$@\""
	for _, v := range pidVars {
		script = v + "=$$ " + script
	}
	cmd := exec.Command("/bin/sh", "-c", script, bin(s.t, "fxd"), "serve", "--config", s.configPath())
	cmd.Env = append(cleanEnv(), env...)
	cmd.ExtraFiles = files
	s.spawn(cmd)
	for _, f := range files {
		f.Close() // fxd has its copies; the test keeps the sockets open, as systemd does
	}
}

// sigterm stops fxd as systemd does.
func sigterm(s *site) {
	s.t.Helper()
	if err := s.signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM fxd: %v", err)
	}
}

// Under Type=notify fxd says READY=1 with a STATUS line once it serves,
// pings the watchdog that WATCHDOG_USEC asks for, says STOPPING=1 on
// SIGTERM and exits cleanly.
func TestSystemdNotify(t *testing.T) {
	s := newSite(t, "", "")
	n := testenv.ListenNotify(t)
	// No WATCHDOG_PID: the watchdog is meant for whoever reads the variable.
	startUnderSystemd(s, []string{"NOTIFY_SOCKET=" + n.Path, "WATCHDOG_USEC=400000"}, nil)

	ready, _ := s.awaitNotify(n, "READY=1", 20*time.Second)
	if want := "STATUS=serving on unix:" + s.socket; !testenv.NotifyHasLine(ready, want) {
		t.Errorf("READY datagram = %q, want the line %q", ready, want)
	}
	if code, err := s.healthz(); err != nil || code != http.StatusOK {
		t.Errorf("GET /healthz right after READY=1 = %d, %v; want 200", code, err)
	}
	s.awaitNotify(n, "WATCHDOG=1", 10*time.Second)
	s.awaitNotify(n, "WATCHDOG=1", 10*time.Second)

	sigterm(s)
	s.awaitNotify(n, "STOPPING=1", 10*time.Second)
	if code := s.waitExit(); code != 0 {
		t.Errorf("fxd exit code after SIGTERM = %d, want 0:\n%s", code, s.logs())
	}
	if _, err := os.Lstat(s.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket fxd created is still there after it stopped: %v", err)
	}
}

// SIGTERM drains: fxd stops accepting at once, lets the running task run
// for drain_grace, then stops and requeues it; the next start runs it to
// the end.
func TestSystemdDrainRequeues(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := newSite(t, "", rules) // drain_grace = "5s"
	n := testenv.ListenNotify(t)
	startUnderSystemd(s, []string{"NOTIFY_SOCKET=" + n.Path}, nil)
	s.awaitNotify(n, "READY=1", 20*time.Second)
	c := s.client(tenants[0].id)
	register(t, c, api.FunctionSpec{Name: "long", Command: []string{"/bin/sh", "-c", "sleep 8; echo done"}})
	ids, err := c.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "long"}})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, c, ids[0], api.StateRunning)

	start := time.Now()
	sigterm(s)
	s.awaitNotify(n, "STOPPING=1", 10*time.Second)
	if code, err := s.healthz(); err == nil && code == http.StatusOK {
		t.Errorf("GET /healthz during the drain = 200; want it refused or 503")
	}
	code := s.waitExit()
	took := time.Since(start)
	if code != 0 {
		t.Errorf("fxd exit code after the drain = %d, want 0:\n%s", code, s.logs())
	}
	if took < 5*time.Second {
		t.Errorf("fxd exited %s after SIGTERM, before drain_grace (5s) let the running task go on", took)
	}

	s.stop() // fxd has exited: this closes its log and checks its cgroups
	s.start()
	c = s.client(tenants[0].id)
	task, err := c.Task(ctxT(t, 40*time.Second), ids[0], 30*time.Second)
	if err != nil || task.State != api.StateSucceeded || string(task.Output) != "done\n" || task.Attempts != 2 {
		t.Errorf("task stopped by the drain = %+v, %v; want requeued, then succeeded on attempt 2", task, err)
	}
}

// fxd serves on the sockets systemd passes (matched to [endpoint] by
// address), leaves them in place, and still talks Type=notify.
func TestSocketActivation(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	certDir := t.TempDir()
	ca := testenv.NewCA(t, certDir, "site")
	serverCert, serverKey := ca.Issue(t, "fxd-server", testenv.ServerCert)
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcpLn.Close() })
	addr := tcpLn.Addr().String()
	s := newSite(t, fmt.Sprintf("listen = %q\ntls_cert = %q\ntls_key = %q\n", addr, serverCert, serverKey), rules)

	// The unix socket, as systemd makes it for ListenStream=<endpoint.socket>.
	unixLn, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	unixLn.SetUnlinkOnClose(false)
	t.Cleanup(func() { unixLn.Close(); os.Remove(s.socket) })
	if err := os.Chmod(s.socket, 0o666); err != nil {
		t.Fatal(err)
	}
	ino := testenv.SocketInode(t, s.socket)
	var files []*os.File
	for _, l := range []interface{ File() (*os.File, error) }{unixLn, tcpLn.(*net.TCPListener)} {
		f, err := l.File()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}

	n := testenv.ListenNotify(t)
	startUnderSystemd(s, []string{"NOTIFY_SOCKET=" + n.Path, "LISTEN_FDS=2", "LISTEN_FDNAMES=api:https"}, files, "LISTEN_PID")
	ready, _ := s.awaitNotify(n, "READY=1", 20*time.Second)
	if want := fmt.Sprintf("STATUS=serving on unix:%s (systemd), tcp:%s (systemd)", s.socket, addr); !testenv.NotifyHasLine(ready, want) {
		t.Errorf("READY datagram = %q, want the line %q", ready, want)
	}

	// The API answers on both inherited sockets: over the unix socket
	// (the test's own listener is never accepted on, so fxd answers) …
	if info, err := s.client(tenants[0].id).Site(ctxT(t, 10*time.Second)); err != nil || info.Identity != tenants[0].id {
		t.Errorf("site over the inherited unix socket = %+v, %v; want identity %s", info, err, tenants[0].id)
	}
	// … and over HTTPS on the inherited TCP socket, which fxd could not have
	// bound itself while the test holds it.
	https, err := api.NewClient("https://"+addr, api.ClientOptions{CAFile: ca.CertFile, Token: s.token(tenants[0].id)})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := https.Site(ctxT(t, 10*time.Second)); err != nil || info.Identity != tenants[0].id {
		t.Errorf("site over HTTPS on the inherited TCP socket = %+v, %v; want identity %s", info, err, tenants[0].id)
	}
	if got := testenv.SocketInode(t, s.socket); got != ino {
		t.Errorf("fxd replaced the inherited socket file (inode %d, was %d)", got, ino)
	}

	sigterm(s)
	s.awaitNotify(n, "STOPPING=1", 10*time.Second)
	if code := s.waitExit(); code != 0 {
		t.Errorf("fxd exit code after SIGTERM = %d, want 0:\n%s", code, s.logs())
	}
	// The sockets are systemd's: still there, and still the test's.
	if got := testenv.SocketInode(t, s.socket); got != ino {
		t.Errorf("the inherited socket file changed when fxd stopped (inode %d, was %d)", got, ino)
	}
	for _, ln := range []net.Listener{unixLn, tcpLn} {
		assertStillListening(t, ln)
	}
}

// assertStillListening dials ln's address and accepts the connection on ln.
func assertStillListening(t *testing.T, ln net.Listener) {
	t.Helper()
	a := ln.Addr()
	c, err := net.DialTimeout(a.Network(), a.String(), 5*time.Second)
	if err != nil {
		t.Errorf("dial %s after fxd stopped: %v", a, err)
		return
	}
	defer c.Close()
	type deadliner interface{ SetDeadline(time.Time) error }
	ln.(deadliner).SetDeadline(time.Now().Add(5 * time.Second))
	got, err := ln.Accept()
	if err != nil {
		t.Errorf("accept on systemd's %s after fxd stopped: %v", a, err)
		return
	}
	got.Close()
}

// A passed socket that [endpoint] does not name stops fxd at start, with
// a message naming the socket; fxd never says READY=1.
func TestSocketActivationUnknownSocket(t *testing.T) {
	s := newSite(t, "", "")
	other := filepath.Join(s.dir, "other.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: other, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	n := testenv.ListenNotify(t)
	startUnderSystemd(s, []string{"NOTIFY_SOCKET=" + n.Path, "LISTEN_FDS=1", "LISTEN_FDNAMES=stray"}, []*os.File{f}, "LISTEN_PID")
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("fxd still running 20s after start with a socket its config does not name:\n%s", s.logs())
	}
	if code := s.cmd.ProcessState.ExitCode(); code == 0 {
		t.Errorf("fxd exit code = 0, want a failure")
	}
	logs := s.logs()
	for _, want := range []string{"fd 3 (stray) unix:" + other, "matches neither endpoint.socket"} {
		if !strings.Contains(logs, want) {
			t.Errorf("fxd output does not say %q:\n%s", want, logs)
		}
	}
	for _, m := range n.Drain(t) {
		if testenv.NotifyHasLine(m, "READY=1") {
			t.Errorf("fxd sent READY=1 although it refused to start: %q", m)
		}
	}
}
