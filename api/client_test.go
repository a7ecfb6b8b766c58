package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/internal/testenv"
)

// fakeAPI answers a few routes the way docs/api.md says and records what
// it was sent.
type fakeAPI struct {
	t    *testing.T
	seen chan *http.Request
}

func newFakeAPI(t *testing.T) (*fakeAPI, http.Handler) {
	f := &fakeAPI{t: t, seen: make(chan *http.Request, 16)}
	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /v1/site", func(w http.ResponseWriter, r *http.Request) {
		who := "uid:1000"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			who = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			who = "token:" + tok
		}
		answer(w, 200, SiteInfo{Site: "test", Identity: who, Account: "alice", Runtimes: []string{RuntimeHost}})
	})
	mux.HandleFunc("GET /v1/functions/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.seen <- r
		if r.PathValue("name") != "bob/resize" {
			answer(w, 404, ErrorBody{Error: ErrorDetail{Code: CodeNotFound, Message: "function " + r.PathValue("name") + ": not found"}})
			return
		}
		answer(w, 200, Function{FunctionSpec: FunctionSpec{Name: "resize", Command: []string{"/bin/cat"}}, Owner: "bob", Version: 3})
	})
	mux.HandleFunc("DELETE /v1/functions/{name}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		var req SubmitRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			answer(w, 400, ErrorBody{Error: ErrorDetail{Code: CodeInvalid, Message: err.Error()}})
			return
		}
		ids := make([]string, len(req.Tasks))
		for i := range ids {
			ids[i] = "t" + string(rune('0'+i))
		}
		answer(w, 202, SubmitResponse{IDs: ids})
	})
	mux.HandleFunc("GET /v1/tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.seen <- r
		answer(w, 200, Task{ID: r.PathValue("id"), State: StateSucceeded, Output: []byte{0, 1, 2}, Timeout: Duration(time.Second)})
	})
	mux.HandleFunc("GET /v1/tasks/{id}/output", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write([]byte{0xff, 0, 'x'})
	})
	mux.HandleFunc("POST /v1/tasks/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 409, ErrorBody{Error: ErrorDetail{Code: CodeConflict, Message: "task " + r.PathValue("id") + " already succeeded"}})
	})
	mux.HandleFunc("POST /v1/tasks/query", func(w http.ResponseWriter, r *http.Request) {
		var req TasksRequest
		json.NewDecoder(r.Body).Decode(&req)
		ts := make([]Task, len(req.IDs))
		for i, id := range req.IDs {
			ts[i] = Task{ID: id, State: StateQueued}
		}
		answer(w, 200, TasksResponse{Tasks: ts})
	})
	mux.HandleFunc("POST /v1/functions/{name}/run", func(w http.ResponseWriter, r *http.Request) {
		f.seen <- r
		body, _ := io.ReadAll(r.Body)
		t := Task{ID: "run1", Function: r.PathValue("name"), State: StateSucceeded}
		if r.Header.Get("Content-Type") == "application/octet-stream" {
			t.Output = body // echo raw input
		} else {
			var spec TaskSpec
			if err := json.Unmarshal(body, &spec); err != nil {
				answer(w, 400, ErrorBody{Error: ErrorDetail{Code: CodeInvalid, Message: err.Error()}})
				return
			}
			t.Output = spec.Input
		}
		answer(w, 200, t)
	})
	mux.HandleFunc("GET /v1/proxy-error", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	})
	return f, mux
}

// unixServer serves h on a socket in a temp dir and returns its path.
func unixServer(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "fxd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close()
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return sock
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientUnix(t *testing.T) {
	fake, h := newFakeAPI(t)
	sock := unixServer(t, h)
	for _, ep := range []string{"unix://" + sock, sock} {
		t.Run(ep, func(t *testing.T) {
			c, err := NewClient(ep, ClientOptions{Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			info, err := c.Site(ctxT(t))
			if err != nil || info.Identity != "uid:1000" || !reflect.DeepEqual(info.Runtimes, []string{"host"}) {
				t.Errorf("Site() = %+v, %v", info, err)
			}
		})
	}

	c, err := NewClient("unix://"+sock, ClientOptions{Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	t.Run("token", func(t *testing.T) {
		info, err := c.Site(ctx)
		if err != nil || info.Identity != "token:s3cret" {
			t.Errorf("Site() with token = %+v, %v; want identity token:s3cret", info, err)
		}
	})
	t.Run("escape", func(t *testing.T) {
		f, err := c.Function(ctx, "bob/resize")
		if err != nil || f.Ref() != "bob/resize" || f.Version != 3 {
			t.Fatalf("Function(bob/resize) = %+v, %v", f, err)
		}
		if r := <-fake.seen; r.URL.EscapedPath() != "/v1/functions/bob%2Fresize" {
			t.Errorf("path sent = %q, want /v1/functions/bob%%2Fresize", r.URL.EscapedPath())
		}
	})
	t.Run("not found", func(t *testing.T) {
		_, err := c.Function(ctx, "nope")
		<-fake.seen
		var re *RemoteError
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &re) || re.Status != 404 || re.Message != "function nope: not found" {
			t.Errorf("Function(nope) err = %#v, want a 404 RemoteError of kind ErrNotFound", err)
		}
	})
	t.Run("conflict", func(t *testing.T) {
		if _, err := c.Cancel(ctx, "t1"); !errors.Is(err, ErrConflict) || err.Error() != "task t1 already succeeded" {
			t.Errorf("Cancel() err = %v, want conflict", err)
		}
	})
	t.Run("not json", func(t *testing.T) {
		err := c.doJSON(ctx, "GET", "/no/route", nil, nil, 0)
		var re *RemoteError
		if !errors.As(err, &re) || re.Status != 502 || !errors.Is(err, ErrUnavailable) || !strings.Contains(re.Message, "bad gateway") {
			t.Errorf("non-JSON 502 err = %#v, want RemoteError 502 unavailable with the text", err)
		}
	})
	t.Run("empty 2xx", func(t *testing.T) {
		var info SiteInfo
		if err := c.doJSON(ctx, "GET", "/proxy-error", nil, &info, 0); err == nil || !strings.Contains(err.Error(), "decode answer") {
			t.Errorf("empty 200 body err = %v, want a decode error", err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := c.DeleteFunction(ctx, "x"); err != nil {
			t.Errorf("DeleteFunction() = %v", err)
		}
	})
	t.Run("submit and query", func(t *testing.T) {
		ids, err := c.Submit(ctx, []TaskSpec{{Function: "a"}, {Function: "a"}})
		if err != nil || !reflect.DeepEqual(ids, []string{"t0", "t1"}) {
			t.Fatalf("Submit() = %v, %v", ids, err)
		}
		ts, err := c.Tasks(ctx, TasksRequest{IDs: ids, Wait: Duration(time.Second)})
		if err != nil || len(ts) != 2 || ts[1].ID != "t1" || ts[1].State != StateQueued {
			t.Errorf("Tasks() = %+v, %v", ts, err)
		}
	})
	t.Run("task wait", func(t *testing.T) {
		task, err := c.Task(ctx, "a/b", 10*time.Second)
		r := <-fake.seen
		if err != nil || task.ID != "a/b" || !reflect.DeepEqual(task.Output, []byte{0, 1, 2}) || task.Timeout.D() != time.Second {
			t.Errorf("Task() = %+v, %v", task, err)
		}
		if r.URL.Query().Get("wait") != "10s" || r.URL.EscapedPath() != "/v1/tasks/a%2Fb" {
			t.Errorf("Task() sent %s, want wait=10s and an escaped id", r.URL)
		}
	})
	t.Run("output", func(t *testing.T) {
		b, err := c.Output(ctx, "t1")
		if err != nil || string(b) != "\xff\x00x" {
			t.Errorf("Output() = %q, %v", b, err)
		}
	})
	t.Run("run json", func(t *testing.T) {
		task, err := c.Run(ctx, "echo", TaskSpec{Input: json.RawMessage(`{"a":1}`)})
		r := <-fake.seen
		if err != nil || string(task.Output) != `{"a":1}` || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("Run() = %+v, %v (content type %q)", task, err, r.Header.Get("Content-Type"))
		}
	})
	t.Run("run raw", func(t *testing.T) {
		task, err := c.RunRaw(ctx, "echo", []byte{0, 'a', 0xfe}, 3*time.Second)
		r := <-fake.seen
		if err != nil || string(task.Output) != "\x00a\xfe" {
			t.Errorf("RunRaw() = %+v, %v", task, err)
		}
		if r.URL.Query().Get("timeout") != "3s" || r.Header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("RunRaw() sent %s with content type %q", r.URL, r.Header.Get("Content-Type"))
		}
	})
}

func TestClientConnectError(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	c, err := NewClient("unix://"+sock, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Site(ctxT(t))
	want := "connect to unix://" + sock + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "is fxd running? (systemctl status fxd)") {
		t.Errorf("Site() on a missing socket err = %v, want %q…is fxd running?", err, want)
	}
}

func TestNewClientBadEndpoint(t *testing.T) {
	for _, ep := range []string{"", "http://x:1", "unix://relative.sock", "https://h:1/path", "fxd.sock"} {
		t.Run(ep, func(t *testing.T) {
			if _, err := NewClient(ep, ClientOptions{}); !errors.Is(err, ErrInvalid) {
				t.Errorf("NewClient(%q) err = %v, want ErrInvalid", ep, err)
			}
		})
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestClientTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testenv.NewCA(t, dir, "test")
	certFile, keyFile := ca.Issue(t, "alice-cert", testenv.ClientCert)
	_, h := newFakeAPI(t)
	s := httptest.NewUnstartedServer(h)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	s.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	s.StartTLS()
	t.Cleanup(s.Close)
	serverCA := filepath.Join(dir, "server-ca.pem")
	writeFile(t, serverCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}))

	tests := []struct {
		name    string
		opts    ClientOptions
		want    string // identity, or "" for an error
		wantErr string
	}{
		{"client cert", ClientOptions{CAFile: serverCA, CertFile: certFile, KeyFile: keyFile}, "alice-cert", ""},
		{"token wins", ClientOptions{CAFile: serverCA, CertFile: certFile, KeyFile: keyFile, Token: "tok"}, "token:tok", ""},
		{"no cert", ClientOptions{CAFile: serverCA}, "uid:1000", ""},
		{"unknown server CA", ClientOptions{}, "", "--ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(s.URL, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			info, err := c.Site(ctxT(t))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Site() err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || info.Identity != tt.want {
				t.Errorf("Site() = %+v, %v; want identity %q", info, err, tt.want)
			}
		})
	}

	bad := []struct {
		name string
		opts ClientOptions
	}{
		{"cert without key", ClientOptions{CertFile: certFile}},
		{"missing CA", ClientOptions{CAFile: filepath.Join(dir, "nope.pem")}},
		{"CA not PEM", ClientOptions{CAFile: keyFile + ".txt"}},
	}
	writeFile(t, keyFile+".txt", []byte("not pem"))
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewClient(s.URL, tt.opts); err == nil {
				t.Errorf("NewClient(%+v) = nil error", tt.opts)
			}
		})
	}
}
