package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

// servablePy is the servable of docs/servable.md: it uppercases its input
// and fails on "boom"; it counts requests to prove it stays warm.
const servablePy = `import struct, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
served = 0
while True:
    head = inp.read(5)
    if len(head) < 5:
        break
    kind, n = struct.unpack(">BI", head)
    data = inp.read(n)
    served += 1
    status, reply = 0, data.upper() + b" #%d" % served
    if data == b"boom":
        status, reply = 1, b"boom is not allowed"
    out.write(struct.pack(">BI", status, len(reply)) + reply)
    out.flush()
`

// A servable stays warm across tasks, reports its errors per task, and is
// reached on the synchronous path with raw bytes in and out.
func TestServable(t *testing.T) {
	py := testenv.RequireCommand(t, "/usr/bin/python3")
	tenants, rules := newTenants(t, 1)
	s := startSite(t, rules)
	u := tenants[0].user
	script := filepath.Join(u.Home, "upper.py")
	if err := os.WriteFile(script, []byte(servablePy), 0o644); err != nil {
		t.Fatal(err)
	}
	c := s.client(tenants[0].id)
	register(t, c, api.FunctionSpec{Name: "upper", Kind: api.KindServable, Command: []string{py, script}})
	for i := 1; i <= 3; i++ {
		task := run(t, c, "upper", "hello")
		want := "HELLO #" + string(rune('0'+i))
		if task.State != api.StateSucceeded || string(task.Output) != want {
			t.Errorf("call %d: %s %q (err %q), want %q from one warm process", i, task.State, task.Output, task.Error, want)
		}
		if wantCold := i == 1; task.Cold != wantCold {
			t.Errorf("call %d: cold = %v, want %v", i, task.Cold, wantCold)
		}
	}
	if task := run(t, c, "upper", "boom"); task.State != api.StateFailed || !strings.Contains(task.Error, "boom is not allowed") {
		t.Errorf("failing call: %s %q, want failed with the servable's message", task.State, task.Error)
	}

	// Raw bytes in and out on the synchronous path.
	req, _ := http.NewRequest("POST", "http://fxd/v1/functions/upper/run", bytes.NewReader([]byte("raw")))
	req.Header.Set("Authorization", "Bearer "+s.token(tenants[0].id))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Accept", "application/octet-stream")
	resp, err := s.rawHTTP().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "RAW #") || resp.Header.Get("Fxd-State") != "succeeded" {
		t.Errorf("raw run = %d %q state %q, want 200 \"RAW #…\" succeeded", resp.StatusCode, body, resp.Header.Get("Fxd-State"))
	}
}

// /metrics shows tasks by state, the latency histogram and workers.
func TestMetrics(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := startSite(t, rules)
	c := s.client(tenants[0].id)
	register(t, c, api.FunctionSpec{Name: "echo", Command: []string{"/bin/cat"}})
	run(t, c, "echo", "x")
	resp, err := s.rawHTTP().Get("http://fxd/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`fxd_tasks_finished_total{state="succeeded"} 1`, "fxd_task_latency_seconds_bucket", `fxd_workers{state="idle"} 1`, "fxd_cold_starts_total 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// SIGTERM drains: a running task finishes within the grace period and
// the daemon exits cleanly; SIGHUP reloads identity rules and quotas and
// logs the changes that need a restart.
func TestSignals(t *testing.T) {
	tenants, rules := newTenants(t, 2)
	s := startSite(t, rules)
	a := s.client(tenants[0].id)
	register(t, a, api.FunctionSpec{Name: "slow", Command: []string{"/bin/sh", "-c", "sleep 1; echo done"}})

	// Reload: drop tenant B's rule; B is refused without a restart.
	b := s.client(tenants[1].id)
	if _, err := b.Site(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("B before reload: %v", err)
	}
	// The same reload lowers the tenants' queue quota (applied) and
	// changes [limits] and [containers] (need a restart: logged, not
	// applied).
	cfg, _ := os.ReadFile(s.configPath())
	cut := strings.Replace(string(cfg), "match = \""+tenants[1].id+"\"", "match = \"nobody@example.org\"", 1)
	cut += "\n[tenants.default]\nmax_queued = 2\n\n[limits]\nmax_input_bytes = \"1MiB\"\n\n[containers]\ntmp_size = \"64MiB\"\n"
	os.WriteFile(s.configPath(), []byte(cut), 0o600)
	if err := s.signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP fxd: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := b.Site(ctxT(t, 10*time.Second))
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B still accepted 10s after SIGHUP dropped its rule")
		}
		time.Sleep(100 * time.Millisecond)
	}

	three := []api.TaskSpec{{Function: "slow"}, {Function: "slow"}, {Function: "slow"}}
	if _, err := a.Submit(ctxT(t, 10*time.Second), three); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "max_queued") {
		t.Errorf("3 tasks after SIGHUP set max_queued = 2: err %v, want unavailable naming max_queued", err)
	}
	if logs := s.logs(); !strings.Contains(logs, `"sections":["limits","containers"]`) || !strings.Contains(logs, "until fxd restarts") {
		t.Errorf("reload log does not say [limits] and [containers] need a restart:\n%s", logs)
	}

	ids, err := a.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "slow"}})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, a, ids[0], api.StateRunning)
	s.stop()
	s.start()
	a = s.client(tenants[0].id)
	task, err := a.Task(ctxT(t, 10*time.Second), ids[0], 0)
	if err != nil || task.State != api.StateSucceeded || string(task.Output) != "done\n" || task.Attempts != 1 {
		t.Errorf("task running at SIGTERM = %+v, %v; want succeeded in the drain, once", task, err)
	}
}

// Results are deleted after limits.result_retention.
func TestResultRetention(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := startSite(t, rules+"\n[limits]\nresult_retention = \"2s\"\n")
	c := s.client(tenants[0].id)
	register(t, c, api.FunctionSpec{Name: "echo", Command: []string{"/bin/cat"}})
	ids, err := c.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "echo", InputBase64: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(ctxT(t, 30*time.Second), ids[0], 20*time.Second)
	if err != nil || task.State != api.StateSucceeded || task.ExpiresAt.IsZero() {
		t.Fatalf("task = %+v, %v; want succeeded with an expiry", task, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := c.Task(ctxT(t, 10*time.Second), ids[0], 0)
		if errors.Is(err, api.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task still there 15s after a 2s retention (err %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
