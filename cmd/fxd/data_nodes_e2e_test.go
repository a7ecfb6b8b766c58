package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
)

// metric returns the value of the sample named name (with its labels, as
// /metrics writes them), or -1 when there is none.
func (s *site) metric(name string) float64 {
	s.t.Helper()
	resp, err := s.rawHTTP().Get("http://fxd/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				s.t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	return -1
}

// With two nodes and tasks kept off the daemon's node, 100 tasks over one
// dataset run where it is cached: the dataset goes to one node, once, and
// every later task finds it there (the hit rate in the metrics).
func TestDataGoesWhereCached(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := startLinkedSiteWith(t, rules, "daemon_node_tasks = false\nlocality_wait = \"10s\"\n")
	alice := s.client(tenants[0].id)
	for _, name := range []string{"n1", "n2"} {
		block := "blk-" + name
		a := s.startAgent(name, block, s.credential(block))
		s.waitLinked(name, a)
	}
	data := bytes.Repeat([]byte("frame "), 50000) // 300 kB
	e, err := alice.PutData(ctxT(t, 30*time.Second), bytes.NewReader(data), int64(len(data)), "")
	if err != nil {
		t.Fatal(err)
	}
	register(t, alice, api.FunctionSpec{Name: "size", Command: []string{"/bin/sh", "-c", `wc -c < "$FXD_DATA/frames"; grep -o -- "-node-n[12]" /proc/self/cgroup | head -1`}})
	const n = 100
	specs := make([]api.TaskSpec, n)
	for i := range specs {
		specs[i] = api.TaskSpec{Function: "size", Data: []api.DataRef{{Ref: e.Digest, Path: "frames"}}}
	}
	ids, err := alice.Submit(ctxT(t, 30*time.Second), specs)
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]int{}
	for _, id := range ids {
		task, err := alice.Task(ctxT(t, 90*time.Second), id, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Fields(string(task.Output))
		if task.State != api.StateSucceeded || len(lines) != 2 || lines[0] != strconv.Itoa(len(data)) {
			t.Fatalf("task %s: %s %q (error %q), want the dataset's size and its node", id, task.State, task.Output, task.Error)
		}
		nodes[lines[1]]++
	}
	if len(nodes) != 1 {
		t.Errorf("tasks ran on %v; want every one on the node that cached the dataset", nodes)
	}
	fetches, hits, misses := s.metric("fxd_data_node_fetches_total"), s.metric(`fxd_data_placements_total{locality="hit"}`), s.metric(`fxd_data_placements_total{locality="miss"}`)
	t.Logf("placements: %v hits, %v misses; the dataset sent to nodes %v times", hits, misses, fetches)
	if fetches != 1 || hits != n-1 || misses != 1 {
		t.Errorf("dataset fetched %v times, %v hits, %v misses; want 1 fetch, %d hits, 1 miss\n%s", fetches, hits, misses, n-1, s.logs())
	}
	if b := s.metric("fxd_data_node_fetch_bytes_total"); b != float64(len(data)) {
		t.Errorf("bytes sent to nodes = %v, want %d", b, len(data))
	}
}

// A user stages an entry on a chosen node ahead of the tasks (fx data
// stage REF --nodes n2): the node fetches it at once, and the tasks that
// read it then go there.
func TestDataPrestagedOnNode(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := startLinkedSiteWith(t, rules, "daemon_node_tasks = false\n")
	alice := s.client(tenants[0].id)
	agents := map[string]*nodeAgent{}
	for _, name := range []string{"n1", "n2"} {
		block := "blk-" + name
		agents[name] = s.startAgent(name, block, s.credential(block))
		s.waitLinked(name, agents[name])
	}
	data := []byte("calibration for the next run\n")
	e, err := alice.PutData(ctxT(t, 30*time.Second), bytes.NewReader(data), int64(len(data)), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.StageData(ctxT(t, 30*time.Second), api.StageRequest{Source: e.Digest, Nodes: []string{"nosuch"}}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("stage on a node that is not linked: %v, want not found", err)
	}
	fx := exec.Command(bin(t, "fx"), "data", "stage", e.Digest, "--nodes", "n2")
	fx.Env = []string{"FX_ENDPOINT=unix://" + s.socket, "FX_TOKEN=" + s.token(tenants[0].id)}
	if out, err := fx.CombinedOutput(); err != nil || !strings.Contains(string(out), "nodes fetching it now: n2") {
		t.Fatalf("fx data stage --nodes n2: %v: %s", err, out)
	}
	blob := filepath.Join(s.state, "nodes", "n2", "cache", "blobs", "sha256", strings.TrimPrefix(e.Digest, "sha256:"))
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(blob); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2 has not fetched the entry after 20 s:\n%s", agents["n2"].logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	register(t, alice, api.FunctionSpec{Name: "where", Command: []string{"/bin/sh", "-c", `cat "$FXD_DATA/cal"; grep -o -- "-node-n[12]" /proc/self/cgroup | head -1`}})
	for range 5 {
		task := submitWaitData(t, alice, "where", []api.DataRef{{Ref: e.Digest, Path: "cal"}})
		if task.State != api.StateSucceeded || !strings.HasSuffix(strings.TrimSpace(string(task.Output)), "-node-n2") {
			t.Fatalf("task over the prestaged entry: %s %q (error %q), want it on n2", task.State, task.Output, task.Error)
		}
	}
	if fetches, misses := s.metric("fxd_data_node_fetches_total"), s.metric(`fxd_data_placements_total{locality="miss"}`); fetches != 1 || misses != 0 {
		t.Errorf("%v fetches and %v misses, want the one prestage and none", fetches, misses)
	}

	// alice removes it: the node drops it too (she was its only reader).
	if err := alice.RemoveData(ctxT(t, 10*time.Second), e.Digest); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(blob); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2 still holds the entry 20 s after its only reader removed it:\n%s", agents["n2"].logs())
		}
	}
}

// submitWaitData submits one task of fn reading data and waits for it.
func submitWaitData(t *testing.T, c *api.Client, fn string, data []api.DataRef) api.Task {
	t.Helper()
	ids, err := c.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: fn, Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(ctxT(t, 70*time.Second), ids[0], time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// An entry the daemon's cache evicted is brought back from the cache of
// a node that holds it, for the account that reads it there and no other.
func TestDataBroughtBackFromNode(t *testing.T) {
	tenants, rules := newTenants(t, 2)
	s := startLinkedSiteWith(t, rules+"\n[cache]\nmax_size = \"1MiB\"\nmax_entry_size = \"1MiB\"\n", "daemon_node_tasks = false\n")
	alice, bob := s.client(tenants[0].id), s.client(tenants[1].id)
	a := s.startAgent("n1", "blk-n1", s.credential("blk-n1"))
	s.waitLinked("n1", a)
	ctx := ctxT(t, 60*time.Second)
	put := func(c *api.Client, fill byte) api.DataEntry {
		t.Helper()
		data := bytes.Repeat([]byte{fill}, 600<<10)
		e, err := c.PutData(ctx, bytes.NewReader(data), int64(len(data)), "")
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	d := put(alice, 'd')
	register(t, alice, api.FunctionSpec{Name: "size", Command: []string{"/bin/sh", "-c", `wc -c < "$FXD_DATA/d"`}})
	ref := []api.DataRef{{Ref: d.Digest, Path: "d"}}
	if task := submitWaitData(t, alice, "size", ref); task.State != api.StateSucceeded {
		t.Fatalf("first task: %s %q", task.State, task.Error)
	}
	put(alice, 'e') // 1.2 MB past the 1 MiB cap: d, used least recently, is evicted here
	if _, err := alice.DataEntry(ctx, d.Digest); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("d after e filled the cache: %v, want evicted", err)
	}
	register(t, bob, api.FunctionSpec{Name: "size", Command: []string{"/bin/true"}})
	if _, err := bob.Submit(ctx, []api.TaskSpec{{Function: "size", Data: ref}}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("bob names alice's digest, which only a node holds for her: %v, want not found", err)
	}
	task := submitWaitData(t, alice, "size", ref)
	if task.State != api.StateSucceeded || strings.TrimSpace(string(task.Output)) != strconv.Itoa(600<<10) {
		t.Fatalf("task over the evicted entry: %s %q (error %q), want it brought back from n1\n%s", task.State, task.Output, task.Error, a.logs())
	}
	if !strings.Contains(a.logs(), "data sent back to the daemon") {
		t.Errorf("n1 did not send the entry back:\n%s", a.logs())
	}
}
