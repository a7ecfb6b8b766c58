package daemon

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
)

func TestDecodeErrors(t *testing.T) {
	d := &Daemon{cfg: conf.Default()}
	d.cfg.Limits.MaxRequestBytes = 64
	for _, tc := range []struct {
		name, body string
		want       error
		text       string
	}{
		{"malformed", `{"tasks": [}`, api.ErrInvalid, "malformed JSON"},
		{"unknown field", `{"taskz": []}`, api.ErrInvalid, "taskz"},
		{"wrong type", `{"tasks": "x"}`, api.ErrInvalid, "tasks"},
		{"empty", ``, api.ErrInvalid, "empty"},
		{"two values", `{} {}`, api.ErrInvalid, "more than one"},
		{"too large", `{"tasks": [` + strings.Repeat(`{},`, 40) + `{}]}`, api.ErrTooLarge, "max_request_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/tasks", strings.NewReader(tc.body))
			var req api.SubmitRequest
			err := d.decodeJSON(httptest.NewRecorder(), r, &req)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("decode(%q) = %v, want %v mentioning %q", tc.body, err, tc.want, tc.text)
			}
		})
	}
}

// FuzzRequest feeds arbitrary bodies to the request decoders and the
// function validator: no panic, and every error is of a client kind.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{`{"tasks":[{"function":"f","input":{"a":1}}]}`, `{"name":"f","command":["/bin/true"]}`,
		`{"ids":["t1"],"wait":"1s"}`, `{"function":"f","input_base64":"aGk="}`, `{"name":"F","kind":"x","limits":{"memory_bytes":-1}}`} {
		f.Add([]byte(s))
	}
	d := &Daemon{cfg: conf.Default()}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{&api.SubmitRequest{}, &api.TasksRequest{}, &api.TaskSpec{}, &api.FunctionSpec{}} {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			err := d.decodeJSON(httptest.NewRecorder(), r, v)
			if err != nil && !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrTooLarge) {
				t.Fatalf("decode %T: error of no client kind: %v", v, err)
			}
			if fs, ok := v.(*api.FunctionSpec); ok && err == nil {
				if err := checkFunction(fs); err != nil && !errors.Is(err, api.ErrInvalid) {
					t.Fatalf("checkFunction: error of no client kind: %v", err)
				}
			}
		}
	})
}

func TestTaskIDsSortByTime(t *testing.T) {
	var ids []string
	now := time.Now()
	for i := 0; i < 100; i++ {
		ids = append(ids, newTaskID(now.Add(time.Duration(i)*time.Millisecond)))
	}
	if !sort.StringsAreSorted(ids) {
		t.Errorf("task IDs made in time order do not sort in time order: %v", ids[:5])
	}
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := newTaskID(now)
		if seen[id] {
			t.Fatalf("duplicate task ID %s", id)
		}
		seen[id] = true
	}
}

func TestLimitsFor(t *testing.T) {
	q := conf.Quota{Memory: 1 << 30, CPUs: 2, Pids: 100}
	for _, tc := range []struct {
		name      string
		l         api.Limits
		mem, pids int64
		cpuQuota  int64
	}{
		{"quota by default", api.Limits{}, 1 << 30, 100, 200000},
		{"function asks less", api.Limits{MemoryBytes: 64 << 20, CPUs: 0.5, Pids: 10}, 64 << 20, 10, 50000},
		{"function asks more: capped", api.Limits{MemoryBytes: 8 << 30, CPUs: 8, Pids: 1000}, 1 << 30, 100, 200000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := limitsFor(tc.l, q)
			if *r.Memory.Limit != tc.mem || *r.Pids.Limit != tc.pids || *r.CPU.Quota != tc.cpuQuota {
				t.Errorf("limitsFor(%+v) = mem %d pids %d cpu %d, want %d %d %d", tc.l, *r.Memory.Limit, *r.Pids.Limit, *r.CPU.Quota, tc.mem, tc.pids, tc.cpuQuota)
			}
		})
	}
}

func TestCheckFunctionEnv(t *testing.T) {
	for _, tc := range []struct {
		env map[string]string
		why string // "" = accepted
	}{
		{map[string]string{"OMP_NUM_THREADS": "4", "PATH": "/opt/bin:/usr/bin"}, ""},
		{map[string]string{"1BAD": "x"}, "not a valid variable name"},
		{map[string]string{"A": "1\x00B=2"}, "NUL byte"},
	} {
		err := checkFunction(&api.FunctionSpec{Name: "f", Kind: api.KindCommand, Command: []string{"/bin/true"}, Env: tc.env})
		if tc.why == "" && err != nil || tc.why != "" && (!errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.why)) {
			t.Errorf("checkFunction(env %q) = %v, want %q", tc.env, err, tc.why)
		}
	}
}

// Every API answer is counted once in fxd_http_requests_total, by the
// status it went out with: JSON answers and errors, a 204 with no body,
// raw output, a body over its limit, an unknown route and an admin route
// refused to a token.
func TestRequestsCounted(t *testing.T) {
	s := startTestSite(t, func(c *conf.Config) { c.Limits.MaxInputBytes = 1 << 10 })
	c := s.client(t)
	ctx := context.Background()
	before := scrapeSeries(t, s.socket, "fxd_http_requests_total")

	if _, err := c.RegisterFunction(ctx, api.FunctionSpec{Name: "echo", Command: []string{"/bin/cat"}}); err != nil { // 201
		t.Fatal(err)
	}
	task, err := c.Run(ctx, "echo", api.TaskSpec{Input: []byte(`"hi"`)}) // 200
	if err != nil || task.State != api.StateSucceeded {
		t.Fatalf("run echo = %s %q, %v; want succeeded", task.State, task.Error, err)
	}
	if out, err := c.Output(ctx, task.ID); err != nil || string(out) != `"hi"` { // 200, raw
		t.Errorf("output of %s = %q, %v; want \"hi\"", task.ID, out, err)
	}
	if err := c.DeleteFunction(ctx, "echo"); err != nil { // 204
		t.Fatal(err)
	}
	if _, err := c.Task(ctx, "tnope", 0); !errors.Is(err, api.ErrNotFound) { // 404
		t.Errorf("GET an unknown task: %v, want not found", err)
	}
	if _, err := c.AdminRuntimes(ctx); !errors.Is(err, api.ErrDenied) { // 403
		t.Errorf("admin route with a token: %v, want denied", err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", s.socket)
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://fxd/v1/nowhere") // 404, no route
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/nowhere = %s, want 404", resp.Status)
	}
	// 413: and net/http, told by the body limit, closes the connection
	// rather than read the rest of the body.
	req, _ := http.NewRequest(http.MethodPost, "http://fxd/v1/functions/echo/run", bytes.NewReader(make([]byte, 64<<10)))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	if resp, err = hc.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Errorf("raw run over max_input_bytes = %s, Connection: close %v; want 413, closed", resp.Status, resp.Close)
	}

	want := maps.Clone(before)
	for code, n := range map[string]float64{"200": 2, "201": 1, "204": 1, "403": 1, "404": 2, "413": 1} {
		want[`code="`+code+`"`] += n
	}
	if got := scrapeSeries(t, s.socket, "fxd_http_requests_total"); !maps.Equal(got, want) {
		t.Errorf("fxd_http_requests_total = %v, want %v (before: %v)", got, want, before)
	}
}
