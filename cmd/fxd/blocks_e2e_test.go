package main

import (
	"bytes"
	"encoding/json"
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

// startPoolSite starts a daemon whose tasks run only on the nodes of one
// pool (pool is its [[batch.pool]] table), polled every second, given
// back after 5 s idle.
func startPoolSite(t *testing.T, rules, pool string) *linkedSite {
	t.Helper()
	dir := t.TempDir()
	ca := testenv.NewCA(t, dir, "site")
	cert, key := ca.Issue(t, "localhost", testenv.ServerCert)
	port := freePort(t)
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	s := startSiteWith(t, fmt.Sprintf("listen = \"127.0.0.1:%d\"\ntls_cert = %q\ntls_key = %q\n", port, cert, key),
		rules+fmt.Sprintf(`
[batch]
poll_interval = "1s"
node_lease = "3s"
daemon_node_tasks = false
daemon_url = %q
daemon_ca = %q
%s`, url, ca.CertFile, pool))
	// the blocks' agents make cgroups under the site's parent, named by
	// node; they are gone once the daemon has stopped its blocks
	t.Cleanup(func() {
		s.stop()
		testenv.RemoveCgroupParent(t, s.cgParent+"-node-*")
	})
	return &linkedSite{site: s, url: url, caFile: ca.CertFile}
}

// blocks is what fxd blocks says, as the API returns it.
func (s *linkedSite) blocks() []api.Block {
	s.t.Helper()
	stdout, stderr, code := fxdRun(s.t, "blocks", "--config", s.configPath())
	if code != 0 || !strings.HasPrefix(stdout, "POOL") {
		s.t.Fatalf("fxd blocks: exit %d, %q, %q", code, stdout, stderr)
	}
	bs, err := s.adminClient().AdminBlocks(ctxT(s.t, 10*time.Second))
	if err != nil {
		s.t.Fatal(err)
	}
	return bs
}

// adminClient is root's client on the unix socket (SO_PEERCRED).
func (s *linkedSite) adminClient() *api.Client {
	s.t.Helper()
	c, err := api.NewClient("unix://"+s.socket, api.ClientOptions{Timeout: time.Minute})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// recordedJobs are the scheduler jobs the site's pool "test" recorded.
func (s *linkedSite) recordedJobs() []string {
	data, err := os.ReadFile(filepath.Join(s.state, "pool-test.json"))
	if err != nil {
		return nil
	}
	var st struct {
		Blocks []struct {
			Job string `json:"job"`
		} `json:"blocks"`
	}
	json.Unmarshal(data, &st)
	var jobs []string
	for _, b := range st.Blocks {
		jobs = append(jobs, b.Job)
	}
	return jobs
}

// waitBlock waits until ok holds for the block named name, or fails.
func (s *linkedSite) waitBlock(name string, within time.Duration, what string, ok func(api.Block) bool) api.Block {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, b := range s.blocks() {
			if b.Name == name && ok(b) {
				return b
			}
		}
		if time.Now().After(deadline) {
			out, _, _ := fxdRun(s.t, "blocks", "--config", s.configPath())
			s.t.Fatalf("block %s not %s after %s:\n%s\ndaemon:\n%s", name, what, within, out, s.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// agentPIDs are the processes of the agents of block: descendants of the
// daemon this test started, known by the FXD_BLOCK their block set.
func agentPIDs(block string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		env, err := os.ReadFile(p + "/environ")
		if err != nil || !bytes.Contains(env, []byte("\x00FXD_BLOCK="+block+"\x00")) && !bytes.HasPrefix(env, []byte("FXD_BLOCK="+block+"\x00")) {
			continue
		}
		cmdline, _ := os.ReadFile(p + "/cmdline")
		args := strings.Split(string(cmdline), "\x00")
		if len(args) >= 2 && filepath.Base(args[0]) == "fxd" && args[1] == "node" {
			pid, _ := strconv.Atoi(filepath.Base(p))
			pids = append(pids, pid)
		}
	}
	return pids
}

// blockLifecycle proves a pool end to end with zero warm nodes: tasks
// bring up a block, run on its agent as the tenant and come back; the
// idle block is given back; an agent killed mid-task gets its task
// requeued and run on a new block. gone says whether the block's job has
// left the scheduler; cancel, when set, cancels the site's jobs when the test
// ends (blocks outlive their daemon).
func blockLifecycle(t *testing.T, pool string, gone func(s *linkedSite, b api.Block) bool, cancel func(job string)) {
	tenants, rules := newTenants(t, 1)
	s := startPoolSite(t, rules, pool)
	if cancel != nil {
		t.Cleanup(func() {
			for _, j := range s.recordedJobs() {
				cancel(j)
			}
		})
	}
	alice := tenants[0]
	c := s.client(alice.id)
	if bs := s.blocks(); len(bs) != 0 {
		t.Fatalf("blocks before any task: %+v", bs)
	}

	register(t, c, api.FunctionSpec{Name: "where", Command: []string{"/bin/sh", "-c", "id -u; cat /proc/self/cgroup; cat"}})
	// a task that says it may need longer than any block lasts is refused
	if _, err := c.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "where", Timeout: api.Duration(time.Hour)}}); err == nil ||
		!strings.Contains(err.Error(), "longer than any block") {
		t.Errorf("task with a 1h timeout for 10m blocks: %v, want it refused", err)
	}
	specs := make([]api.TaskSpec, 4)
	for i := range specs {
		specs[i] = api.TaskSpec{Function: "where", InputBase64: []byte("in" + strconv.Itoa(i))}
	}
	submitted := time.Now()
	ids, err := c.Submit(ctxT(t, 10*time.Second), specs)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		task, err := c.Task(ctxT(t, 130*time.Second), id, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		out := string(task.Output)
		if task.State != api.StateSucceeded || !strings.HasPrefix(out, strconv.Itoa(int(alice.user.UID))+"\n") ||
			!strings.Contains(out, s.cgParent+"-node-") || !strings.HasSuffix(out, "in"+strconv.Itoa(i)) {
			t.Fatalf("task %d: %s %q (error %q); want it run on a block's node as alice\nblocks: %+v\ndaemon:\n%s",
				i, task.State, out, task.Error, s.blocks(), s.logs())
		}
		if i == 0 {
			t.Logf("first result %s after the submit, from zero nodes (a block submitted, its agent linked)", time.Since(submitted).Round(time.Millisecond))
		}
	}
	bs := s.blocks()
	if len(bs) != 1 || bs[0].Job == "" || bs[0].Pool != "test" {
		t.Fatalf("want one block of pool test, got %+v", bs)
	}
	first := bs[0]
	first = s.waitBlock(first.Name, 20*time.Second, "running with its tasks counted", func(b api.Block) bool {
		return b.State == "running" && len(b.Hosts) == 1 && b.Ran >= len(ids) && b.Linked == 1
	})

	// idle for idle_timeout: cancelled, and gone from the scheduler
	ended := s.waitBlock(first.Name, 60*time.Second, "given back", func(b api.Block) bool { return b.State == "done" })
	if !strings.Contains(ended.Reason, "idle") {
		t.Errorf("idle block ended for %q, want idle", ended.Reason)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !gone(s, first) {
		if time.Now().After(deadline) {
			left, _ := filepath.Glob(filepath.Join(s.state, "nodes", "*"))
			t.Fatalf("job %s of the idle block still known to the scheduler 30 s after it was given back (agents %v, node dirs %v)\ndaemon:\n%s",
				first.Job, agentPIDs(first.Name), left, s.logs())
		}
		time.Sleep(500 * time.Millisecond)
	}

	// a task whose agent is killed: requeued after the lease, run on a
	// new block
	register(t, c, api.FunctionSpec{Name: "slow", Command: []string{"/bin/sh", "-c", "cat /proc/self/cgroup; sleep 3; echo done"}})
	ids, err = c.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "slow"}})
	if err != nil {
		t.Fatal(err)
	}
	waitStateWithin(t, c, ids[0], api.StateRunning, 2*time.Minute)
	var second api.Block
	for _, b := range s.blocks() {
		if b.State != "done" {
			second = b
		}
	}
	if second.Name == "" || second.Name == first.Name {
		t.Fatalf("no new block for the task: %+v", s.blocks())
	}
	pids := agentPIDs(second.Name)
	if len(pids) != 1 {
		t.Fatalf("block %s has agent processes %v, want one", second.Name, pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatalf("kill agent %d: %v", pids[0], err)
	}
	final, err := c.Task(ctxT(t, 130*time.Second), ids[0], 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != api.StateSucceeded || final.Attempts != 2 || !strings.HasSuffix(string(final.Output), "done\n") {
		t.Fatalf("task whose agent was killed: %s, attempt %d, %q (error %q); want it run again to the end\nblocks: %+v",
			final.State, final.Attempts, final.Output, final.Error, s.blocks())
	}
	s.waitBlock(second.Name, 60*time.Second, "ended", func(b api.Block) bool { return b.State == "done" })
	var third api.Block
	for _, b := range s.blocks() {
		if b.Name != first.Name && b.Name != second.Name {
			third = b
		}
	}
	if third.Name == "" || third.Ran < 1 {
		t.Errorf("the killed block was not replaced by one that ran the task: %+v", s.blocks())
	}
}

// waitStateWithin waits until task id is in state want, or fails.
func waitStateWithin(t *testing.T, c *api.Client, id string, want api.State, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		task, err := c.Task(ctxT(t, 10*time.Second), id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if task.State == want {
			return
		}
		if task.State.Final() || time.Now().After(deadline) {
			t.Fatalf("task %s is %s, want %s", id, task.State, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The local provider's blocks are the daemon's own child processes.
func TestBlocksLocal(t *testing.T) {
	blockLifecycle(t, `
[[batch.pool]]
name = "test"
provider = "local"
nodes = 1
walltime = "10m"
max_blocks = 1
idle_timeout = "10s"
`, func(s *linkedSite, b api.Block) bool {
		// A local block is its agents' processes; its node's name is not
		// used again, so its caches go with it.
		left, _ := filepath.Glob(filepath.Join(s.state, "nodes", "*-"+strings.TrimPrefix(b.Job, "local-")+"-*"))
		return len(agentPIDs(b.Name)) == 0 && len(left) == 0
	}, nil)
}

// The slurm provider's blocks are sbatch jobs on the CI's one-node Slurm.
// Each block's output, its agents' log, goes to the pool's log_dir.
func TestBlocksSlurm(t *testing.T) {
	part := testenv.RequireSlurm(t)
	logDir := t.TempDir()
	defer func() {
		logs, _ := filepath.Glob(filepath.Join(logDir, "*.log"))
		linked := 0
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			if strings.Contains(string(b), `0: {"level":"info"`) && strings.Contains(string(b), `"message":"linked"`) {
				linked++
			}
		}
		if linked < 2 {
			t.Errorf("%d block logs in log_dir (%v) show a labelled agent that linked; want one per block", linked, logs)
		}
	}()
	blockLifecycle(t, fmt.Sprintf(`
[[batch.pool]]
name = "test"
provider = "slurm"
nodes = 1
walltime = "10m"
max_blocks = 1
idle_timeout = "10s"
log_dir = %q
[batch.pool.slurm]
partition = %q
`, logDir, part), func(_ *linkedSite, b api.Block) bool {
		// squeue lists a job for a while after it ends (as COMPLETED or
		// CANCELLED with --states=all); by default only the live ones, and a
		// purged id is an error of its own
		out, err := exec.Command("squeue", "--noheader", "--jobs="+b.Job, "--format=%T").CombinedOutput()
		if err != nil && !strings.Contains(string(out), "Invalid job id") {
			t.Fatalf("squeue --jobs=%s: %v: %s", b.Job, err, out)
		}
		return err != nil || strings.TrimSpace(string(out)) == ""
	}, func(job string) { exec.Command("scancel", job).Run() })
}
