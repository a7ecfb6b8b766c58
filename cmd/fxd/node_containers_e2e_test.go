package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

// With daemon_node_tasks off, tasks in a SIF image run on a node agent,
// in a container there: the agent fetches the image from the daemon by
// digest, once for tasks that need it at once, and keeps it in its own
// store. A synchronous run goes to the node too, and no worker starts on
// the daemon's node. A block's credential reads only the images of its
// own tasks.
func TestNodeAgentContainers(t *testing.T) {
	testenv.RequireCommand(t, "crun")
	tenants, rules := newTenants(t, 1)
	s := startLinkedSiteWith(t, rules, "daemon_node_tasks = false\n")
	alice := tenants[0]
	c := s.client(alice.id)
	img := testenv.BuildSIF(t, testenv.SIFFile("etc/fxd-image", 0o644, []byte("from the image\n")))
	s.addRuntime("tools", img)
	rt, err := c.Runtimes(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	digest := ""
	for _, r := range rt {
		if r.Name == "tools" {
			digest = r.Digest
		}
	}
	if digest == "" {
		t.Fatalf("fx runtimes = %+v, want tools", rt)
	}

	a := s.startAgent("n1", "blk1", s.credential("blk1"))
	s.waitLinked("n1", a)
	if out, _, _ := fxdRun(t, "nodes", "--config", s.configPath()); !strings.Contains(out, "host,sif") {
		t.Errorf("fxd nodes = %q, want node n1 with runtimes host,sif", out)
	}
	register(t, c, api.FunctionSpec{Name: "who", Runtime: "tools", Command: []string{"/bin/sh", "-c", "id -u; cat /etc/fxd-image; cat"}})
	specs := make([]api.TaskSpec, 4)
	for i := range specs {
		specs[i] = api.TaskSpec{Function: "who", InputBase64: []byte("in" + strconv.Itoa(i))}
	}
	ids, err := c.Submit(ctxT(t, 10*time.Second), specs)
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(int(alice.user.UID)) + "\nfrom the image\n"
	for i, id := range ids {
		task, err := c.Task(ctxT(t, 90*time.Second), id, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if task.State != api.StateSucceeded || string(task.Output) != want+"in"+strconv.Itoa(i) {
			t.Fatalf("task %d on the node: %s %q (error %q), want %q\nagent:\n%s", i, task.State, task.Output, task.Error, want, a.logs())
		}
	}
	if sync := run(t, c, "who", "sync"); sync.State != api.StateSucceeded || string(sync.Output) != want+"sync" {
		t.Errorf("synchronous run: %s %q (error %q), want it run on the node", sync.State, sync.Output, sync.Error)
	}
	if n := strings.Count(a.logs(), "image fetched from the daemon"); n != 1 {
		t.Errorf("the agent fetched the image %d times, want once:\n%s", n, a.logs())
	}
	blob := filepath.Join(s.state, "nodes", "n1", "images", "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
	if _, err := os.Stat(blob); err != nil {
		t.Errorf("the node's copy of the image: %v", err)
	}
	if left := workerCgroups(t, s.cgParent); len(left) > 0 {
		t.Errorf("workers on the daemon's node %v; with daemon_node_tasks off every task runs on a node", left)
	}
	if len(workerCgroups(t, s.cgParent+"-node-n1")) == 0 {
		t.Error("no worker on node n1")
	}

	// Another block's credential, and none, read no image.
	other := s.credential("blk2")
	for _, tc := range []struct {
		name, token string
		status      int
	}{{"another block", other, http.StatusNotFound}, {"no credential", "", http.StatusUnauthorized}} {
		if got := s.fetchImage(digest, tc.token); got != tc.status {
			t.Errorf("GET the image with %s = %d, want %d", tc.name, got, tc.status)
		}
	}
}

// fetchImage asks the daemon for the image digest as a node agent does,
// with token, and returns the status.
func (s *linkedSite) fetchImage(digest, token string) int {
	s.t.Helper()
	pem, err := os.ReadFile(s.caFile)
	if err != nil {
		s.t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, s.url+api.NodeImagePath+digest, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := cl.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
