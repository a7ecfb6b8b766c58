package local

import (
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

	"github.com/rs/zerolog"

	"fxd.dev/fxd/batch"
	"fxd.dev/fxd/conf"
)

// daemonEnv makes the test binary play a daemon (TestPlayDaemon), which
// writes what it started into the directory the variable names.
const daemonEnv = "FXD_LOCAL_TEST_DAEMON_DIR"

// agentScript is the command of the played daemon's block: each node's
// agent leaves a child in its process group, the agent of node 0 (and its
// child) deaf to SIGTERM, and records its pid, its parent's (the
// provider's shell) and its child's.
const agentScript = `case $FXD_BLOCK_NODE in *-0) trap "" TERM ;; esac
sleep 600 &
echo "$$ $PPID $!" > "$DIR/pids.tmp.$FXD_BLOCK_NODE"
mv "$DIR/pids.tmp.$FXD_BLOCK_NODE" "$DIR/pids.$FXD_BLOCK_NODE"
wait`

// crashScaler is the strategy of pool "crash" on prov, its blocks of two
// nodes running command with DIR set to dir, recorded in stateFile, with
// a task waiting.
func crashScaler(t *testing.T, prov batch.Provider, stateFile, dir string, command ...string) *batch.Scaler {
	t.Helper()
	pool := conf.Pool{Name: "crash", Provider: "local", Nodes: 2, MinNodes: 1, MaxNodes: 2, MaxBlocks: 1,
		Walltime: conf.Duration(10 * time.Minute), MinWalltime: conf.Duration(time.Minute), IdleTimeout: conf.Duration(time.Hour),
		WorkerInit: []string{"export FXD_CRASH_INIT=1"}}
	s, err := batch.NewScaler(batch.ScalerConfig{Pool: pool, Interval: time.Second, Lease: time.Minute,
		Command: command, Env: map[string]string{"DIR": dir}, StateFile: stateFile},
		prov, demand{}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// demand is the daemon's side of crashScaler: a task waits, no node links.
type demand struct{}

func (demand) Waiting() int                                   { return 1 }
func (demand) Use(string) batch.Use                           { return batch.Use{} }
func (demand) Mint(b string, _ time.Duration) (string, error) { return "token-" + b, nil }
func (demand) Started(string, time.Time)                      {}
func (demand) Drain(string)                                   {}
func (demand) Ended(string)                                   {}

// TestPlayDaemon is not a test of its own: run by TestBlocksEndWithDaemon,
// it plays a daemon whose pool submits a local block for a waiting task,
// and waits to be killed.
func TestPlayDaemon(t *testing.T) {
	dir := os.Getenv(daemonEnv)
	if dir == "" {
		t.Skip("plays the daemon for TestBlocksEndWithDaemon")
	}
	p, err := New(zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	crashScaler(t, p, filepath.Join(dir, "pool-crash.json"), dir, "/bin/sh", "-c", agentScript).Step(context.Background(), true)
	time.Sleep(time.Hour) // until SIGKILL
}

// A local block's processes, all of them, end when the daemon that
// started them is killed (SIGKILL: no Close), even those deaf to SIGTERM
// or left by an agent that exited. The restarted daemon's pool records
// the block ended, saying why, and submits a new one for the demand; its
// provider reports the old job gone, finds none of its name, and
// cancels it without error.
func TestBlocksEndWithDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the test binary as a daemon")
	}
	dir := t.TempDir()
	daemon := exec.Command(os.Args[0], "-test.run=^TestPlayDaemon$", "-test.v")
	daemon.Env = append(os.Environ(), daemonEnv+"="+dir)
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		daemon.Process.Kill() // by its pid; an error says it has ended
		daemon.Wait()
	})
	pids := waitPIDs(t, dir, daemon.Process.Pid)
	for _, pid := range pids {
		t.Cleanup(func() { killIfAlive(t, pid, daemonEnv+"="+dir) })
	}
	if err := daemon.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	daemon.Wait()

	deadline := time.Now().Add(killGrace + 10*time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d of the block (of %v) still runs %v after its daemon was killed", pid, pids, killGrace+10*time.Second)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	p := newProvider(t)
	s := crashScaler(t, p, filepath.Join(dir, "pool-crash.json"), t.TempDir(), "/bin/sleep", "600")
	old := s.Blocks()
	if len(old) != 1 || old[0].Name != "fxd-crash-1" || old[0].Job == "" {
		t.Fatalf("the killed daemon recorded %+v, want block fxd-crash-1 with its job", old)
	}
	job := batch.JobID(old[0].Job)
	s.Step(t.Context(), true)
	if bs := s.Blocks(); len(bs) != 2 || bs[0].State != "done" || bs[0].Reason != goneReason || bs[1].Name != "fxd-crash-2" || bs[1].Job == string(job) {
		t.Errorf("after the restart, Blocks = %+v; want fxd-crash-1 done (%s) and fxd-crash-2 submitted as a job of its own", bs, goneReason)
	}
	if ids, err := p.Find(t.Context(), "fxd-crash-1"); err != nil || len(ids) != 0 {
		t.Errorf("a new provider's Find(fxd-crash-1) = %v, %v; want none", ids, err)
	}
	if err := p.Cancel(t.Context(), job); err != nil {
		t.Errorf("a new provider's Cancel(%s) = %v, want nil", job, err)
	}
}

// waitPIDs waits for the played daemon's block to record its processes,
// and returns them: each node's agent, its child, and the agent's parent
// when that is not the daemon.
func waitPIDs(t *testing.T, dir string, daemon int) []int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "pids.*-[0-9]"))
		if len(files) == 2 {
			var pids []int
			for _, f := range files {
				for _, s := range strings.Fields(readFile(t, f)) {
					if pid, err := strconv.Atoi(s); err == nil && pid != daemon {
						pids = append(pids, pid)
					}
				}
			}
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("the played daemon's block did not record its processes in 20 s: %v", files)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive says whether process pid runs: it exists, and is not a zombie
// left to a parent that does not reap.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

// killIfAlive kills process pid, if it still runs and is still one this
// test started: its environment holds marker. Ids are reused, fast on a
// busy machine (pid_max is often 32768), and a bare id may by now name
// another test's process.
func killIfAlive(t *testing.T, pid int, marker string) {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil || !bytes.Contains(append([]byte{0}, env...), []byte("\x00"+marker+"\x00")) {
		return
	}
	if alive(pid) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("kill %d: %v", pid, err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
