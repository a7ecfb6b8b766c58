package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fxd.dev/fxd/api"
)

// fakeAPI is a stand-in for the daemon over a unix socket, written for
// these CLI tests: it records what fx sends and answers as docs/api.md
// says. The real daemon is tested with fx in cmd/fxd's end-to-end tests.
//
// Tasks whose id or function starts with "fail" fail, "run" keep running,
// anything else succeeds with output "out:" + id. An id may start with
// "fwd-", a task forwarded to peer site b, or "from-", one b forwarded
// here; the rest of it says how the task ends. GET /v1/sites lists the
// peers of fakePeers.
type fakeAPI struct {
	socket string

	mu         sync.Mutex
	registered []api.FunctionSpec
	submitted  []api.TaskSpec
	runs       []fakeRun
	nextID     int
}

// fakeRun is one synchronous run as received.
type fakeRun struct {
	name, contentType, timeout string
	body                       []byte
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{socket: filepath.Join(t.TempDir(), "fxd.sock")}
	l, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(f.routes())
	s.Listener.Close()
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return f
}

func answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func answerErr(w http.ResponseWriter, status int, code, msg string) {
	answer(w, status, api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg}})
}

// task returns the task id as the fake sees it.
func fakeTask(id string) api.Task {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	t := api.Task{ID: id, Function: "alice/echo", Owner: "alice", Attempts: 1,
		ReceivedAt: t0, DispatchedAt: t0.Add(2 * time.Millisecond), StartedAt: t0.Add(50 * time.Millisecond)}
	if rest, ok := strings.CutPrefix(id, "fwd-"); ok {
		t.Site, t.RemoteID, id = "b", "b-"+rest, rest
	} else if rest, ok := strings.CutPrefix(id, "from-"); ok {
		t.Origin, id = "b/"+rest, rest
	}
	switch {
	case strings.HasPrefix(id, "fail"):
		t.State, t.ExitCode, t.Error, t.Stderr = api.StateFailed, 3, "exit status 3", "boom\n"
		t.FinishedAt = t.StartedAt.Add(time.Second)
	case strings.HasPrefix(id, "run"):
		t.State, t.Attempts = api.StateRunning, 1
	default:
		t.State, t.Output, t.Cold = api.StateSucceeded, []byte("out:"+t.ID), true
		t.FinishedAt = t.StartedAt.Add(5 * time.Millisecond)
	}
	return t
}

func (f *fakeAPI) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/site", func(w http.ResponseWriter, r *http.Request) {
		who := "uid:" + strconv.Itoa(1000)
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			who = "token:" + tok
		}
		answer(w, 200, api.SiteInfo{Site: "fake", Version: "test", Identity: who, Account: "alice", Runtimes: []string{"host"},
			Limits: api.SiteLimits{MaxInputBytes: 1 << 20, MaxBatch: 1000, Retention: api.Duration(time.Hour)}})
	})
	mux.HandleFunc("POST /v1/functions", func(w http.ResponseWriter, r *http.Request) {
		var spec api.FunctionSpec
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			answerErr(w, 400, api.CodeInvalid, err.Error())
			return
		}
		f.mu.Lock()
		f.registered = append(f.registered, spec)
		f.mu.Unlock()
		answer(w, 201, api.Function{FunctionSpec: spec, Owner: "alice", Version: 2})
	})
	mux.HandleFunc("GET /v1/functions", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, api.FunctionsResponse{Functions: []api.Function{
			{FunctionSpec: api.FunctionSpec{Name: "echo", Kind: api.KindCommand, Runtime: "host", Command: []string{"cat"}}, Owner: "alice", Version: 1},
			{FunctionSpec: api.FunctionSpec{Name: "model", Kind: api.KindServable, Runtime: "torch", SharedWith: []string{"alice", "carol"}, Federated: true}, Owner: "bob", Version: 7},
		}})
	})
	mux.HandleFunc("POST /v1/functions/{name}/run", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		name := r.PathValue("name")
		f.mu.Lock()
		f.runs = append(f.runs, fakeRun{name: name, contentType: r.Header.Get("Content-Type"), timeout: r.URL.Query().Get("timeout"), body: body})
		f.mu.Unlock()
		if name == "nope" {
			answerErr(w, 404, api.CodeNotFound, "function nope: not found; fx functions lists yours")
			return
		}
		t := fakeTask(name + "-1")
		if t.State == api.StateSucceeded {
			t.Output = body // echo
			if r.Header.Get("Content-Type") == "application/json" {
				var spec api.TaskSpec
				json.Unmarshal(body, &spec)
				t.Output = spec.InputBytes()
			}
		} else {
			t.Output = []byte("partial")
		}
		answer(w, 200, t)
	})
	mux.HandleFunc("POST /v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		var req api.SubmitRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			answerErr(w, 400, api.CodeInvalid, err.Error())
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.submitted = append(f.submitted, req.Tasks...)
		ids := make([]string, len(req.Tasks))
		for i := range ids {
			ids[i] = "t" + strconv.Itoa(f.nextID)
			f.nextID++
		}
		answer(w, 202, api.SubmitResponse{IDs: ids})
	})
	mux.HandleFunc("POST /v1/tasks/query", func(w http.ResponseWriter, r *http.Request) {
		var req api.TasksRequest
		json.NewDecoder(r.Body).Decode(&req)
		ts := make([]api.Task, len(req.IDs))
		for i, id := range req.IDs {
			if strings.HasPrefix(id, "gone") {
				answerErr(w, 404, api.CodeNotFound, "task "+id+": not found")
				return
			}
			ts[i] = fakeTask(id)
			if !req.Output {
				ts[i].Output = nil
			}
		}
		answer(w, 200, api.TasksResponse{Tasks: ts})
	})
	mux.HandleFunc("GET /v1/tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if strings.HasPrefix(id, "gone") {
			answerErr(w, 404, api.CodeNotFound, "task "+id+": not found")
			return
		}
		answer(w, 200, fakeTask(id))
	})
	mux.HandleFunc("POST /v1/tasks/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		t := fakeTask(r.PathValue("id"))
		if t.State.Final() {
			answerErr(w, 409, api.CodeConflict, "task "+t.ID+" already "+string(t.State))
			return
		}
		t.State = api.StateCancelled
		answer(w, 200, t)
	})
	mux.HandleFunc("GET /v1/sites", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, api.SitesResponse{Site: "fake", Peers: fakePeers(time.Now())})
	})
	return mux
}

// fakePeers are the peers of the fake site at now: hpc-b is up and
// offers two functions, c is down, longer-name is up and lets the site
// discover nothing.
func fakePeers(now time.Time) []api.PeerStatus {
	return []api.PeerStatus{
		{Name: "hpc-b", URL: "https://b.example.org:9444", Healthy: true, Latency: api.Duration(1234 * time.Microsecond),
			LastSeen: now.Add(-3 * time.Second), Forwarded: 2, Offers: &api.Offers{
				Site: "hpc-b", Version: "test",
				Functions: []api.OfferedFunction{
					{Ref: "bob/resize", Runtime: "torch", Kind: api.KindServable, Description: "resize images"},
					{Ref: "carol/count", Runtime: "host", Kind: api.KindCommand},
				},
				Runtimes: []string{"sha256:aa"},
				Capacity: api.Capacity{Slots: 64, Running: 3, Queued: 1},
				Data:     []string{"sha256:d1", "sha256:d2"},
			}},
		{Name: "c", URL: "https://c.example.org:9444", Error: "dial tcp 10.0.0.3:9444: connect: connection refused",
			LastSeen: now.Add(-10 * time.Minute), Forwarded: 1},
		{Name: "longer-name", URL: "https://d.example.org:9444", Healthy: true, Latency: api.Duration(20 * time.Microsecond),
			LastSeen: now.Add(-time.Second)},
	}
}

// fx runs the CLI in-process with env as its whole environment and returns
// the exit code and what it printed.
func fx(t *testing.T, env map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = c.main(ctx, args)
	return code, out.String(), errOut.String()
}

// envFor is an environment that points fx at f, with no config file.
func (f *fakeAPI) env(t *testing.T) map[string]string {
	return map[string]string{"FX_ENDPOINT": "unix://" + f.socket, "HOME": t.TempDir()}
}
