package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/batch/local"
	"fxd.dev/fxd/internal/testenv"
)

// linkedSite is a daemon on HTTPS with a short node lease, and the CA that
// signed its certificate.
type linkedSite struct {
	*site
	url, caFile string
}

func startLinkedSite(t *testing.T, rules string) *linkedSite {
	t.Helper()
	return startLinkedSiteWith(t, rules, "")
}

// startLinkedSiteWith is startLinkedSite with more [batch] settings.
func startLinkedSiteWith(t *testing.T, rules, batch string) *linkedSite {
	t.Helper()
	dir := t.TempDir()
	ca := testenv.NewCA(t, dir, "site")
	cert, key := ca.Issue(t, "localhost", testenv.ServerCert)
	port := freePort(t)
	s := startSiteWith(t, fmt.Sprintf("listen = \"127.0.0.1:%d\"\ntls_cert = %q\ntls_key = %q\n", port, cert, key),
		rules+"\n[batch]\nnode_lease = \"3s\"\n"+batch)
	return &linkedSite{site: s, url: fmt.Sprintf("https://127.0.0.1:%d", port), caFile: ca.CertFile}
}

// credential mints a node credential for block with fxd nodes credential.
func (s *linkedSite) credential(block string) string {
	s.t.Helper()
	stdout, stderr, code := fxdRun(s.t, "nodes", "credential", block, "--ttl", "1h", "--config", s.configPath())
	if code != 0 || !strings.Contains(stderr, "FXD_NODE_TOKEN") {
		s.t.Fatalf("fxd nodes credential: exit %d, %q, %q", code, stdout, stderr)
	}
	return strings.TrimSpace(stdout)
}

// nodeAgent is a running fxd node.
type nodeAgent struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

// startAgent runs fxd node named name for block with token.
func (s *linkedSite) startAgent(name, block, token string) *nodeAgent {
	t := s.t
	t.Helper()
	a := &nodeAgent{exited: make(chan struct{}), log: filepath.Join(s.dir, "node-"+name+".log")}
	logf, err := os.Create(a.log)
	if err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(bin(t, "fxd"), "node", "--config", s.configPath(), "--daemon", s.url, "--ca", s.caFile,
		"--name", name, "--block", block, "--slots", "2")
	a.cmd.Env = append(cleanEnv(), "FXD_NODE_TOKEN="+token)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); logf.Close(); close(a.exited) }()
	t.Cleanup(func() {
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(20 * time.Second):
			a.cmd.Process.Kill()
			<-a.exited
			t.Errorf("fxd node %s still ran 20 s after SIGTERM; killed it", name)
		}
		testenv.RemoveCgroupParent(t, s.cgParent+"-node-"+name)
	})
	return a
}

func (a *nodeAgent) logs() string { b, _ := os.ReadFile(a.log); return string(b) }

// waitLinked waits until fxd nodes lists node name, or fails.
func (s *linkedSite) waitLinked(name string, a *nodeAgent) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if stdout, _, code := fxdRun(s.t, "nodes", "--config", s.configPath()); code == 0 && strings.Contains(stdout, name) {
			return
		}
		select {
		case <-a.exited:
			s.t.Fatalf("fxd node %s exited before linking:\n%s", name, a.logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.t.Fatalf("node %s not linked after 20 s:\n%s\ndaemon:\n%s", name, a.logs(), s.logs())
}

// submitWait submits one task of fn and waits for it to be final.
func submitWait(t *testing.T, c *api.Client, fn, input string) api.Task {
	t.Helper()
	ids, err := c.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: fn, InputBase64: []byte(input)}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		task, err := c.Task(ctxT(t, 20*time.Second), ids[0], 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if task.State.Final() {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %s after 60 s", ids[0], task.State)
		}
	}
}

// A node agent links with the credential the daemon minted for its block,
// runs the tenant's tasks as the tenant, in its own cgroups; when it is
// killed mid-task, the task is requeued after the lease and completes on
// the daemon's own node. A wrong credential is refused.
func TestNodeAgent(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := startLinkedSite(t, rules)
	alice := tenants[0]
	c := s.client(alice.id)

	if bad := s.startAgent("intruder", "blk1", "fxdn_not-minted"); true {
		select {
		case <-bad.exited:
			if code := bad.cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(bad.logs(), "refuses this node's credential") {
				t.Errorf("agent with a made-up credential: exit %d, log %q; want a refusal", code, bad.logs())
			}
		case <-time.After(20 * time.Second):
			t.Errorf("agent with a made-up credential still runs after 20 s:\n%s", bad.logs())
		}
	}

	a := s.startAgent("n1", "blk1", s.credential("blk1"))
	s.waitLinked("n1", a)
	register(t, c, api.FunctionSpec{Name: "where", Command: []string{"/bin/sh", "-c", "id -u; cat /proc/self/cgroup; cat"}})
	task := submitWait(t, c, "where", "in")
	if task.State != api.StateSucceeded || !strings.HasPrefix(string(task.Output), strconv.Itoa(int(alice.user.UID))+"\n") ||
		!strings.Contains(string(task.Output), s.cgParent+"-node-n1/") || !strings.HasSuffix(string(task.Output), "in") {
		t.Fatalf("task on the node: %s %q (error %q), want alice's uid, a cgroup of node n1, the input", task.State, task.Output, task.Error)
	}

	// Killed mid-task: the task waits out the lease, then runs again here.
	register(t, c, api.FunctionSpec{Name: "slow", Command: []string{"/bin/sh", "-c", "cat /proc/self/cgroup; sleep 2; echo done"}})
	ids, err := c.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "slow"}})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, c, ids[0], api.StateRunning)
	a.cmd.Process.Kill()
	<-a.exited
	final, err := c.Task(ctxT(t, 70*time.Second), ids[0], time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != api.StateSucceeded || final.Attempts != 2 || !strings.HasSuffix(string(final.Output), "done\n") ||
		strings.Contains(string(final.Output), "-node-n1") {
		t.Errorf("task whose node was killed: %s, attempt %d, %q (error %q); want it run again, here, to the end",
			final.State, final.Attempts, final.Output, final.Error)
	}

	// The killed agent's warm worker outlived it; an agent started again
	// under the same name removes it before it serves.
	if left := workerCgroups(t, s.cgParent+"-node-n1"); len(left) == 0 {
		t.Errorf("no worker left by the killed agent: the test no longer proves the clean-up")
	}
	tok2 := s.credential("blk2")
	again := s.startAgent("n1", "blk2", tok2)
	s.waitLinked("n1", again)
	if left := workerCgroups(t, s.cgParent+"-node-n1"); len(left) > 0 {
		t.Errorf("worker cgroups of the killed agent after its successor started: %v", left)
	}

	// The admin revokes blk2: its node is unlinked and its agent leaves;
	// the credential admits no new link.
	if _, stderr, code := fxdRun(t, "nodes", "revoke", "blk2", "--config", s.configPath()); code != 0 || !strings.Contains(stderr, "revoked") {
		t.Fatalf("fxd nodes revoke blk2: exit %d, %q", code, stderr)
	}
	select {
	case <-again.exited:
		if !strings.Contains(again.logs(), "refuses this node's credential") {
			t.Errorf("agent of a revoked block left without saying why:\n%s", again.logs())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("agent of a revoked block still runs 30 s later:\n%s", again.logs())
	}
	if stdout, _, _ := fxdRun(t, "nodes", "--config", s.configPath()); strings.Contains(stdout, "blk2") {
		t.Errorf("fxd nodes lists the revoked block's node:\n%s", stdout)
	}
	late := s.startAgent("n2", "blk2", tok2)
	select {
	case <-late.exited:
	case <-time.After(20 * time.Second):
		t.Errorf("agent with a revoked credential still runs after 20 s:\n%s", late.logs())
	}
}

// A local block's agent signalled again and again as it leaves (drained,
// then cancelled) still removes its caches and images and exits cleanly:
// it keeps catching signals until its clean-up is done.
func TestNodeAgentSignalledWhileLeaving(t *testing.T) {
	s := startLinkedSite(t, "")
	cmd := exec.Command(bin(t, "fxd"), "node", "--config", s.configPath(), "--daemon", s.url, "--ca", s.caFile,
		"--name", "eph1", "--block", "blk", "--slots", "1")
	cmd.Env = append(cleanEnv(), "FXD_NODE_TOKEN="+s.credential("blk"), local.EphemeralEnv+"=1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		testenv.RemoveCgroupParent(t, s.cgParent+"-node-eph1")
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if stdout, _, code := fxdRun(t, "nodes", "--config", s.configPath()); code == 0 && strings.Contains(stdout, "eph1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not linked after 20 s:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	dir := filepath.Join(s.state, "nodes", "eph1")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the agent keeps nothing in %s: %v", dir, err)
	}
	err := signalUntilExit(cmd, exited, 20*time.Second)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("agent still runs after 20 s of SIGTERMs:\n%s", out.String())
	}
	if err != nil {
		t.Errorf("agent signalled while leaving: %v; want a clean exit\n%s", err, out.String())
	}
	if _, serr := os.Stat(dir); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("agent left %s behind (%v)", dir, serr)
	}
}

// signalUntilExit sends cmd SIGTERM every 2 ms until it exits (its Wait's
// error comes on exited) or within passes (os.ErrDeadlineExceeded).
func signalUntilExit(cmd *exec.Cmd, exited <-chan error, within time.Duration) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	end := time.After(within)
	for {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-end:
			return os.ErrDeadlineExceeded
		case <-tick.C:
		}
	}
}
