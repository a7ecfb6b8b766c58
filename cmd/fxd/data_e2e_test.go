package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

// sha256Digest is the digest fxd gives b.
func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// dataSite is a daemon whose cache stages from datasets (a directory of
// the test) and the URL prefixes given, with two tenants.
type dataSite struct {
	*site
	datasets     string
	alice, bob   tenant
	aliceC, bobC *api.Client
}

func startDataSite(t *testing.T, urls ...string) *dataSite {
	t.Helper()
	tenants, rules := newTenants(t, 2)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	datasets := filepath.Join(base, "datasets")
	if err := os.Mkdir(datasets, 0o755); err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(urls))
	for i, u := range urls {
		quoted[i] = strconv.Quote(u)
	}
	s := startSite(t, rules+"\n[cache]\npaths = [\""+datasets+"\"]\nurls = ["+strings.Join(quoted, ", ")+"]\nmax_entry_size = \"1MiB\"\n")
	return &dataSite{site: s, datasets: datasets, alice: tenants[0], bob: tenants[1],
		aliceC: s.client(tenants[0].id), bobC: s.client(tenants[1].id)}
}

// blobs counts the cache's blobs on disk.
func (s *dataSite) blobs() int {
	names, _ := os.ReadDir(filepath.Join(s.state, "cache", "blobs", "sha256"))
	return len(names)
}

// writeAs writes a file under datasets owned by u, with mode.
func (s *dataSite) writeAs(name string, data []byte, owner tenant, mode os.FileMode) string {
	s.t.Helper()
	p := filepath.Join(s.datasets, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Chown(p, int(owner.user.UID), int(owner.user.GID)); err != nil {
		s.t.Fatal(err)
	}
	os.Chmod(p, mode)
	return p
}

// Two tenants upload the same bytes: stored once, each sees it; one
// cannot read the other's entry by digest until it has the bytes itself.
func TestDataDedupAndVisibility(t *testing.T) {
	s := startDataSite(t)
	ctx := ctxT(t, 30*time.Second)
	data := []byte("frames of run 1\n")
	a, err := s.aliceC.PutData(ctx, bytes.NewReader(data), int64(len(data)), "")
	if err != nil || a.Digest != sha256Digest(data) || a.Size != int64(len(data)) {
		t.Fatalf("alice puts: %+v, %v", a, err)
	}
	if _, err := s.bobC.DataEntry(ctx, a.Digest); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("bob asks for alice's entry by digest: %v, want not found", err)
	}
	if _, err := s.bobC.DataContent(ctx, a.Digest); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("bob reads alice's entry by digest: %v, want not found", err)
	}
	if list, err := s.bobC.Data(ctx); err != nil || len(list) != 0 {
		t.Errorf("bob's list: %+v, %v; want empty", list, err)
	}
	if _, err := s.bobC.PutData(ctx, bytes.NewReader([]byte("other bytes")), 11, a.Digest); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("bob claims alice's digest for other bytes: %v, want invalid", err)
	}
	b, err := s.bobC.PutData(ctx, bytes.NewReader(data), int64(len(data)), a.Digest)
	if err != nil || b.Digest != a.Digest {
		t.Fatalf("bob puts the same bytes: %+v, %v", b, err)
	}
	if n := s.blobs(); n != 1 {
		t.Errorf("%d blobs on disk for one content, want 1", n)
	}
	body, err := s.bobC.DataContent(ctx, a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("bob reads %q, want %q", got, data)
	}
	if err := s.bobC.RemoveData(ctx, a.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.aliceC.DataEntry(ctx, a.Digest); err != nil {
		t.Errorf("alice's entry after bob removed his: %v", err)
	}
	stdout, stderr, code := fxdRun(t, "data", "--config", s.configPath())
	if code != 0 || !strings.Contains(stdout, "1 entries") || !strings.Contains(stdout, s.alice.user.Name) || strings.Contains(stdout, s.bob.user.Name) {
		t.Errorf("fxd data: exit %d, %q %q; want one entry, alice's", code, stdout, stderr)
	}
}

// Files are staged from the site's data paths with the caller's own
// permissions; paths outside them, "..", and symlinks out are refused.
func TestDataStagePaths(t *testing.T) {
	s := startDataSite(t)
	ctx := ctxT(t, 30*time.Second)
	secret := s.writeAs("alice-only.h5", []byte("alice's frames"), s.alice, 0o600)
	e, err := s.aliceC.StageData(ctx, api.StageRequest{Source: secret})
	if err != nil || e.Digest != sha256Digest([]byte("alice's frames")) || e.Source != secret {
		t.Fatalf("alice stages her file: %+v, %v", e, err)
	}
	if _, err := s.bobC.StageData(ctx, api.StageRequest{Source: secret}); !errors.Is(err, api.ErrDenied) {
		t.Errorf("bob stages alice's 0600 file: %v, want denied (read with his permissions)", err)
	}
	if _, err := s.bobC.DataEntry(ctx, e.Digest); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("bob sees alice's staged entry: %v, want not found", err)
	}
	shared := s.writeAs("shared.h5", []byte("shared frames"), s.alice, 0o644)
	for _, c := range []*api.Client{s.aliceC, s.bobC} {
		if _, err := c.StageData(ctx, api.StageRequest{Source: shared}); err != nil {
			t.Errorf("stage a file both may read: %v", err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(s.datasets, "escape")); err != nil {
		t.Fatal(err)
	}
	refused := []struct{ name, source string }{
		{"outside the paths", "/etc/passwd"},
		{"dot-dot", s.datasets + "/../../../etc/passwd"},
		{"symlink out", filepath.Join(s.datasets, "escape")},
		{"relative", "datasets/shared.h5"},
		{"a directory", s.datasets + "/"},
	}
	for _, r := range refused {
		if e, err := s.aliceC.StageData(ctx, api.StageRequest{Source: r.source}); err == nil ||
			!(errors.Is(err, api.ErrDenied) || errors.Is(err, api.ErrInvalid)) {
			t.Errorf("stage %s (%s): %+v, %v; want refused", r.name, r.source, e, err)
		}
	}
	if _, err := s.aliceC.StageData(ctx, api.StageRequest{Source: shared, Digest: sha256Digest([]byte("not these"))}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("stage with a wrong digest: %v, want invalid", err)
	}
}

// URLs under the site's data URLs are downloaded, checked against the
// digest given, and bounded in size; others, and redirects out of them,
// are refused.
func TestDataStageURL(t *testing.T) {
	data := []byte("a dataset served over http\n")
	big := bytes.Repeat([]byte("x"), 2<<20)
	var inside string
	outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("internal")) }))
	defer outside.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/data/data.bin":
			w.Write(data)
		case "/data/big.bin":
			w.Write(big)
		case "/data/away":
			http.Redirect(w, r, outside.URL+"/secret", http.StatusFound)
		case "/data/back":
			http.Redirect(w, r, inside+"data.bin", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	inside = srv.URL + "/data/"
	s := startDataSite(t, inside)
	ctx := ctxT(t, 30*time.Second)
	e, err := s.aliceC.StageData(ctx, api.StageRequest{Source: inside + "data.bin", Digest: sha256Digest(data)})
	if err != nil || e.Digest != sha256Digest(data) {
		t.Fatalf("stage a URL with its digest: %+v, %v", e, err)
	}
	if r, err := s.aliceC.StageData(ctx, api.StageRequest{Source: inside + "back"}); err != nil || r.Digest != e.Digest {
		t.Errorf("stage a URL redirected within the data URLs: %+v, %v", r, err)
	}
	before := s.blobs()
	if _, err := s.bobC.StageData(ctx, api.StageRequest{Source: inside + "data.bin", Digest: sha256Digest([]byte("else"))}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("stage a URL whose bytes do not match the digest: %v, want invalid", err)
	}
	if _, err := s.bobC.DataEntry(ctx, e.Digest); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("bob's refused stage left him an entry: %v", err)
	}
	if _, err := s.aliceC.StageData(ctx, api.StageRequest{Source: inside + "big.bin"}); !errors.Is(err, api.ErrTooLarge) {
		t.Errorf("stage 2 MiB past max_entry_size 1MiB: %v, want too large", err)
	}
	if _, err := s.aliceC.StageData(ctx, api.StageRequest{Source: inside + "missing"}); err == nil {
		t.Error("stage a URL that answers 404: no error")
	}
	for _, u := range []string{outside.URL + "/secret", srv.URL + "/elsewhere", inside + "away"} {
		if _, err := s.aliceC.StageData(ctx, api.StageRequest{Source: u}); !errors.Is(err, api.ErrDenied) {
			t.Errorf("stage %s, outside the data URLs or redirected out of them: %v, want denied", u, err)
		}
	}
	if n := s.blobs(); n != before {
		t.Errorf("refused stages left %d blobs, want %d", n, before)
	}
}

// Tasks read the data they name at $FXD_DATA, read-only, on the host and
// in a container; a digest the caller may not read is refused when the
// task is submitted; a source is staged when the task runs.
func TestDataInTasks(t *testing.T) {
	s := startDataSite(t)
	ctx := ctxT(t, 30*time.Second)
	data := []byte("calibration table\n")
	e, err := s.aliceC.PutData(ctx, bytes.NewReader(data), int64(len(data)), "")
	if err != nil {
		t.Fatal(err)
	}
	register(t, s.aliceC, api.FunctionSpec{Name: "read", Command: []string{"/bin/sh", "-c",
		`cat "$FXD_DATA/in.txt" "$FXD_DATA/run1/s.h5"; echo x > "$FXD_DATA/in.txt" 2>/dev/null && echo WROTE; true`}})
	shared := s.writeAs("shared.h5", []byte("shared frames\n"), s.alice, 0o644)
	refs := []api.DataRef{{Ref: e.Digest, Path: "in.txt"}, {Ref: shared, Path: "run1/s.h5"}}
	task, err := s.aliceC.Run(ctx, "read", api.TaskSpec{Data: refs})
	if err != nil {
		t.Fatal(err)
	}
	if task.State != api.StateSucceeded || string(task.Output) != "calibration table\nshared frames\n" {
		t.Fatalf("task with data: %s %q (error %q), want both files read and none written", task.State, task.Output, task.Error)
	}
	if len(task.Data) != 2 {
		t.Errorf("the task's record names %d data files, want 2", len(task.Data))
	}

	// bob may not name alice's digest, nor a file name that leaves $FXD_DATA.
	register(t, s.bobC, api.FunctionSpec{Name: "read", Command: []string{"/bin/true"}})
	if _, err := s.bobC.Submit(ctx, []api.TaskSpec{{Function: "read", Data: []api.DataRef{{Ref: e.Digest, Path: "in.txt"}}}}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("bob names alice's digest: %v, want not found", err)
	}
	if _, err := s.aliceC.Submit(ctx, []api.TaskSpec{{Function: "read", Data: []api.DataRef{{Ref: e.Digest, Path: "../in.txt"}}}}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("a data name with ..: %v, want invalid", err)
	}

	// In a container: the same file at $FXD_DATA.
	if _, err := exec.LookPath("crun"); err != nil && os.Getenv("CI") != "true" {
		t.Skip("crun is not installed: the container half is skipped")
	}
	s.addRuntime("busybox", testenv.BuildSIF(t))
	register(t, s.aliceC, api.FunctionSpec{Name: "read-sif", Runtime: "busybox", Command: []string{"/bin/sh", "-c",
		`cat "$FXD_DATA/in.txt"; touch "$FXD_DATA/new" 2>/dev/null && echo WROTE; true`}})
	task, err = s.aliceC.Run(ctx, "read-sif", api.TaskSpec{Data: refs[:1]})
	if err != nil {
		t.Fatal(err)
	}
	if task.State != api.StateSucceeded || string(task.Output) != "calibration table\n" {
		t.Errorf("task with data in a container: %s %q (error %q)", task.State, task.Output, task.Error)
	}
}

// An output past limits.max_result_bytes is kept in the data cache, as
// the caller's entry, and read through the task's output and fx result;
// one past max_cached_result_bytes fails the task.
func TestLargeOutputCached(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := startSite(t, rules+"\n[limits]\nmax_result_bytes = \"1MiB\"\nmax_cached_result_bytes = \"8MiB\"\n")
	alice := tenants[0]
	c := s.client(alice.id)
	register(t, c, api.FunctionSpec{Name: "emit", Command: []string{"/bin/sh", "-c", `head -c "$(cat)" /dev/zero`}})
	task := run(t, c, "emit", "3000000")
	if task.State != api.StateSucceeded || len(task.Output) != 0 || task.OutputSize != 3000000 || !api.IsDigest(task.OutputRef) {
		t.Fatalf("3 MB output: %s, %d bytes inline, ref %q of %d (error %q); want a ref to the cache", task.State, len(task.Output), task.OutputRef, task.OutputSize, task.Error)
	}
	out, err := c.Output(ctxT(t, 30*time.Second), task.ID)
	if err != nil || len(out) != 3000000 || !bytes.Equal(out[:10], make([]byte, 10)) {
		t.Errorf("the task's output: %d bytes, %v; want 3000000", len(out), err)
	}
	if e, err := c.DataEntry(ctxT(t, 10*time.Second), task.OutputRef); err != nil || !strings.Contains(e.Source, task.ID) {
		t.Errorf("the output's cache entry: %+v, %v; want one that names the task", e, err)
	}
	fx := exec.Command(bin(t, "fx"), "result", task.ID)
	fx.Env = []string{"FX_ENDPOINT=unix://" + s.socket, "FX_TOKEN=" + s.token(alice.id)}
	if got, err := fx.Output(); err != nil || len(got) != 3000000 {
		t.Errorf("fx result: %d bytes, %v; want 3000000", len(got), err)
	}
	if big := run(t, c, "emit", "9000000"); big.State != api.StateFailed || !strings.Contains(big.Error, "result limit") {
		t.Errorf("9 MB output past max_cached_result_bytes: %s (error %q), want failed naming the limit", big.State, big.Error)
	}
}

// A directory is staged as a tree, read as the user: each file an entry,
// shown to a task at $FXD_DATA/<path>/...; a symlink out of the data
// paths inside it refuses the whole stage.
func TestDataStageDirectory(t *testing.T) {
	s := startDataSite(t)
	ctx := ctxT(t, 30*time.Second)
	run1 := filepath.Join(s.datasets, "run1")
	for _, d := range []string{run1, filepath.Join(run1, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.writeAs("run1/a.txt", []byte("frame a\n"), s.alice, 0o600)
	s.writeAs("run1/sub/b.txt", []byte("frame b\n"), s.alice, 0o600)
	tree, err := s.aliceC.StageData(ctx, api.StageRequest{Source: run1})
	if err != nil || tree.Source != run1 {
		t.Fatalf("alice stages a directory: %+v, %v", tree, err)
	}
	if _, err := s.bobC.StageData(ctx, api.StageRequest{Source: run1}); !errors.Is(err, api.ErrDenied) {
		t.Errorf("bob stages alice's directory of 0600 files: %v, want denied", err)
	}
	register(t, s.aliceC, api.FunctionSpec{Name: "tree", Command: []string{"/bin/sh", "-c", `cat "$FXD_DATA/run/a.txt" "$FXD_DATA/run/sub/b.txt"`}})
	task, err := s.aliceC.Run(ctx, "tree", api.TaskSpec{Data: []api.DataRef{{Ref: tree.Digest, Path: "run"}}})
	if err != nil {
		t.Fatal(err)
	}
	if task.State != api.StateSucceeded || string(task.Output) != "frame a\nframe b\n" {
		t.Errorf("task over a staged directory: %s %q (error %q)", task.State, task.Output, task.Error)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(run1, "sub", "escape")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.aliceC.StageData(ctx, api.StageRequest{Source: run1}); !errors.Is(err, api.ErrDenied) {
		t.Errorf("stage a directory holding a symlink out of the data paths: %v, want denied", err)
	}
}

// A daemon killed (kill -9) while it stages an upload leaves no entry,
// and no partial copy, after it starts again.
func TestDataKilledWhileStaging(t *testing.T) {
	s := startDataSite(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	const size = 900 << 10 // under the site's max_entry_size
	done := make(chan error, 1)
	go func() {
		_, err := s.aliceC.PutData(context.Background(), pr, size, "")
		done <- err
	}()
	if _, err := pw.Write(bytes.Repeat([]byte("x"), 300<<10)); err != nil { // a third, then it stalls
		t.Fatal(err)
	}
	tmp := filepath.Join(s.state, "cache", "tmp")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if names, _ := os.ReadDir(tmp); len(names) > 0 {
			break // the partial copy is on disk
		}
		if time.Now().After(deadline) {
			t.Fatal("no partial copy in the cache's tmp after 10 s")
		}
	}
	s.kill9()
	pw.CloseWithError(errors.New("the daemon was killed")) // the upload's body ends too
	<-done
	s.start()
	if list, err := s.aliceC.Data(ctxT(t, 10*time.Second)); err != nil || len(list) != 0 {
		t.Errorf("entries after a kill -9 mid-stage: %+v, %v; want none", list, err)
	}
	if names, _ := os.ReadDir(tmp); len(names) != 0 {
		t.Errorf("the cache's tmp after the restart holds %d files, want none", len(names))
	}
	if n := s.blobs(); n != 0 {
		t.Errorf("%d blobs after a kill -9 mid-stage, want none", n)
	}
}

// fx data put prints the ref tasks name, fx data ls lists it, fx data
// get writes it back, fx data rm removes it: as a user runs them.
func TestDataCLI(t *testing.T) {
	s := startDataSite(t)
	file := filepath.Join(t.TempDir(), "frames.h5")
	data := []byte("frames for the CLI\n")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fx := func(args ...string) (string, error) {
		cmd := exec.Command(bin(t, "fx"), args...)
		cmd.Env = []string{"FX_ENDPOINT=unix://" + s.socket, "FX_TOKEN=" + s.token(s.alice.id)}
		var out bytes.Buffer
		cmd.Stdout = &out
		err := cmd.Run()
		return out.String(), err
	}
	ref, err := fx("data", "put", file)
	if ref = strings.TrimSpace(ref); err != nil || ref != sha256Digest(data) {
		t.Fatalf("fx data put: %q, %v; want %s", ref, err, sha256Digest(data))
	}
	if out, err := fx("data", "ls"); err != nil || !strings.Contains(out, ref) || !strings.Contains(out, "upload") {
		t.Errorf("fx data ls: %q, %v; want the entry", out, err)
	}
	back := filepath.Join(t.TempDir(), "back.h5")
	if _, err := fx("data", "get", ref, "-o", back); err != nil {
		t.Fatalf("fx data get: %v", err)
	}
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, data) {
		t.Errorf("fx data get wrote %q, %v; want %q", got, err, data)
	}
	if _, err := fx("data", "rm", ref); err != nil {
		t.Fatalf("fx data rm: %v", err)
	}
	if out, err := fx("data", "ls"); err != nil || strings.Contains(out, ref) {
		t.Errorf("fx data ls after rm: %q, %v; want the entry gone", out, err)
	}
}
