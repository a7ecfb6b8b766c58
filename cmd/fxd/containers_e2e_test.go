package main

import (
	"errors"
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

// An admin adds a SIF image with fxd runtime add; a user lists it with fx
// runtimes, registers a command and a servable in it, and runs them: cold,
// then warm, as the user's UID in the image. A user adds an image of
// their own from a file they can read, and not from one they cannot, and
// no more than containers.max_user_images.
func TestContainersEndToEnd(t *testing.T) {
	testenv.RequireCommand(t, "crun")
	tenants, rules := newTenants(t, 2)
	s := startSite(t, rules+"\n[containers]\nmax_user_images = 1\n")
	alice, bob := tenants[0], tenants[1]
	c := s.client(alice.id)

	upper, err := os.ReadFile(bin(t, "upper"))
	if err != nil {
		t.Fatal(err)
	}
	img := testenv.BuildSIF(t, testenv.SIFFile("usr/bin/upper", 0o755, upper))
	s.addRuntime("busybox", img)
	notSIF := testenv.WriteTemp(t, "not.sif", []byte("#!/bin/sh\necho hello\n"))
	if _, stderr, code := s.runtimeAdd("bad", notSIF); code == 0 || !strings.Contains(stderr, "not a SIF") {
		t.Errorf("fxd runtime add of a shell script: exit %d, stderr %q; want a refusal saying it is not a SIF", code, stderr)
	}

	fx := exec.Command(bin(t, "fx"), "runtimes")
	fx.Env = []string{"FX_ENDPOINT=unix://" + s.socket, "FX_TOKEN=" + s.token(alice.id)}
	if out, err := fx.CombinedOutput(); err != nil || !strings.Contains(string(out), "busybox") || !strings.Contains(string(out), "host") {
		t.Errorf("fx runtimes: %v: %s, want host and busybox", err, out)
	}

	register(t, c, api.FunctionSpec{Name: "who", Runtime: "busybox", Command: []string{"/bin/sh", "-c", "id -u; pwd; cat"}})
	first := run(t, c, "who", "in")
	want := strconv.Itoa(int(alice.user.UID)) + "\n/tmp/work\nin"
	if first.State != api.StateSucceeded || string(first.Output) != want || !first.Cold {
		t.Fatalf("first run: %s %q (error %q, cold %v), want %q, cold", first.State, first.Output, first.Error, first.Cold, want)
	}
	if second := run(t, c, "who", "in"); second.State != api.StateSucceeded || second.Cold || second.Worker != first.Worker {
		t.Errorf("second run: %s (cold %v, worker %s), want warm on %s", second.State, second.Cold, second.Worker, first.Worker)
	}
	register(t, c, api.FunctionSpec{Name: "upper", Runtime: "busybox", Kind: api.KindServable, Command: []string{"/usr/bin/upper"}})
	for _, in := range []string{"hello", "world"} {
		if task := run(t, c, "upper", in); task.State != api.StateSucceeded || string(task.Output) != strings.ToUpper(in) {
			t.Errorf("servable: %s %q (error %q)", task.State, task.Output, task.Error)
		}
	}
	_, err = c.RegisterFunction(ctxT(t, 10*time.Second), api.FunctionSpec{Name: "nope", Runtime: "nosuch", Command: []string{"/bin/true"}})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "fx runtimes") {
		t.Errorf("register with an unknown runtime: %v, want invalid, pointing at fx runtimes", err)
	}

	// A user's own image, read with the user's permissions.
	mine := filepath.Join(alice.user.Home, "mine.sif")
	copyAs(t, img, mine, alice.user)
	rt, err := c.AddRuntime(ctxT(t, time.Minute), "mine", mine)
	if err != nil || rt.Name != alice.user.Name+"/mine" {
		t.Fatalf("fx runtime add mine: %+v, %v", rt, err)
	}
	register(t, c, api.FunctionSpec{Name: "mine", Runtime: rt.Name, Command: []string{"/bin/echo", "ok"}})
	if task := run(t, c, "mine", ""); task.State != api.StateSucceeded || string(task.Output) != "ok\n" {
		t.Errorf("run in the user's own image: %s %q (error %q)", task.State, task.Output, task.Error)
	}
	if _, err := c.AddRuntime(ctxT(t, time.Minute), "second", mine); !errors.Is(err, api.ErrDenied) || !strings.Contains(err.Error(), "containers.max_user_images") {
		t.Errorf("alice's second image past max_user_images = 1: %v, want denied naming the setting", err)
	}
	if _, err := c.AddRuntime(ctxT(t, time.Minute), "mine", mine); err != nil {
		t.Errorf("alice adds mine again (a replacement, within the bound): %v", err)
	}
	// root's file, mode 0600: bob cannot read it, so fxd must not either.
	secret := filepath.Join(t.TempDir(), "secret.sif")
	copyAs(t, img, secret, testenv.User{Name: "root"})
	if _, err := s.client(bob.id).AddRuntime(ctxT(t, time.Minute), "stolen", secret); !errors.Is(err, api.ErrDenied) {
		t.Errorf("bob adds root's 0600 image: %v, want denied", err)
	}
	// bob neither sees nor uses alice's image.
	_, err = s.client(bob.id).RegisterFunction(ctxT(t, 10*time.Second), api.FunctionSpec{Name: "x", Runtime: rt.Name, Command: []string{"/bin/true"}})
	if !errors.Is(err, api.ErrInvalid) {
		t.Errorf("bob registers in alice's image: %v, want invalid (no such image for him)", err)
	}
}

// runtimeAdd runs fxd runtime add name file on the site's config.
func (s *site) runtimeAdd(name, file string) (stdout, stderr string, code int) {
	s.t.Helper()
	return fxdRun(s.t, "runtime", "add", name, file, "--config", s.configPath())
}

// addRuntime adds the image file as the runtime name, failing the test
// unless fxd runtime add says it did.
func (s *site) addRuntime(name, file string) {
	s.t.Helper()
	if stdout, stderr, code := s.runtimeAdd(name, file); code != 0 || !strings.Contains(stdout, "added "+name+": sha256:") {
		s.t.Fatalf("fxd runtime add %s: exit %d, stdout %q, stderr %q; want exit 0, added %s", name, code, stdout, stderr, name)
	}
}

// copyAs copies src to dst owned by u, mode 0600.
func copyAs(t *testing.T, src, dst string, u testenv.User) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dst, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
}

// A daemon killed with -9 leaves its warm containers and image mounts
// behind; the next start removes them before it serves, and runs tasks in
// the image again.
func TestContainersCleanedAfterCrash(t *testing.T) {
	testenv.RequireCommand(t, "crun")
	tenants, rules := newTenants(t, 1)
	s := startSite(t, rules)
	alice := tenants[0]
	c := s.client(alice.id)
	upper, err := os.ReadFile(bin(t, "upper"))
	if err != nil {
		t.Fatal(err)
	}
	img := testenv.BuildSIF(t, testenv.SIFFile("usr/bin/upper", 0o755, upper))
	s.addRuntime("busybox", img)
	register(t, c, api.FunctionSpec{Name: "upper", Runtime: "busybox", Kind: api.KindServable, Command: []string{"/usr/bin/upper"}})
	if task := run(t, c, "upper", "a"); task.State != api.StateSucceeded || string(task.Output) != "A" {
		t.Fatalf("servable: %s %q (error %q)", task.State, task.Output, task.Error)
	}
	mounts := func() []string {
		b, _ := os.ReadFile("/proc/self/mountinfo")
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], s.state+"/") {
				out = append(out, f[4])
			}
		}
		return out
	}
	containers := func() []string {
		entries, _ := os.ReadDir(filepath.Join(s.state, "containers", "runtime"))
		var ids []string
		for _, e := range entries {
			ids = append(ids, e.Name())
		}
		return ids
	}

	s.kill9()
	if pids, _ := exec.Command("pgrep", "-u", alice.user.Name, "-x", "upper").Output(); len(pids) == 0 {
		t.Log("the servable died with the daemon (its monitor's death signal); the restart must still clean up")
	}
	if len(mounts()) == 0 || len(containers()) == 0 {
		t.Fatalf("after kill -9: mounts %v, containers %v; want both left behind for the restart to clean", mounts(), containers())
	}
	s.start()
	if ids := containers(); len(ids) > 0 {
		t.Errorf("containers %v still in the runtime's state after the restart", ids)
	}
	if m := mounts(); len(m) > 0 {
		t.Errorf("image mounts %v still there after the restart", m)
	}
	assertNoProcs(t, alice.user.Name)
	if task := run(t, c, "upper", "b"); task.State != api.StateSucceeded || string(task.Output) != "B" || !task.Cold {
		t.Errorf("servable after the restart: %s %q (error %q, cold %v), want a cold start that works", task.State, task.Output, task.Error, task.Cold)
	}
}

// With containers.require_signed, fxd runtime add refuses an unsigned image
// and one signed by a key outside containers.keyring, and takes one signed
// by a key in it.
func TestSignedImagesRequired(t *testing.T) {
	testenv.RequireCommand(t, "crun")
	signer, stranger := testenv.NewKey(t, "site"), testenv.NewKey(t, "stranger")
	keyring := testenv.PublicKeyFile(t, signer)
	s := startSite(t, "\n[containers]\nrequire_signed = true\nkeyring = \""+keyring+"\"\n")
	img := testenv.BuildSIF(t)
	if _, stderr, code := s.runtimeAdd("unsigned", img); code == 0 || !strings.Contains(stderr, "unsigned SIF image") {
		t.Errorf("add an unsigned image: exit %d, stderr %q; want a refusal saying it is unsigned", code, stderr)
	}
	if _, stderr, code := s.runtimeAdd("stranger", testenv.SignedCopy(t, img, stranger)); code == 0 || !strings.Contains(stderr, testenv.Fingerprint(stranger)) {
		t.Errorf("add an image signed by a stranger: exit %d, stderr %q; want a refusal naming the key", code, stderr)
	}
	if stdout, stderr, code := s.runtimeAdd("good", testenv.SignedCopy(t, img, signer)); code != 0 || !strings.Contains(stdout, "signed by ["+testenv.Fingerprint(signer)+"]") {
		t.Errorf("add an image signed by the site's key: exit %d, stdout %q, stderr %q; want it added, signed by the key", code, stdout, stderr)
	}
}

// With containers off the daemon offers the host runtime only, and says
// why an image cannot be named.
func TestContainersOff(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := startSite(t, rules+"\n[containers]\nruntime = \"none\"\n")
	c := s.client(tenants[0].id)
	rts, err := c.Runtimes(ctxT(t, 10*time.Second))
	if err != nil || len(rts) != 1 || rts[0].Name != api.RuntimeHost {
		t.Errorf("runtimes with containers off: %+v, %v; want host alone", rts, err)
	}
	_, err = c.RegisterFunction(ctxT(t, 10*time.Second), api.FunctionSpec{Name: "x", Runtime: "busybox", Command: []string{"/bin/true"}})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "runs no containers") {
		t.Errorf("register in an image with containers off: %v, want invalid saying the site runs no containers", err)
	}
	if _, err := c.AddRuntime(ctxT(t, 10*time.Second), "mine", "/nonexistent.sif"); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("add an image with containers off: %v, want unavailable", err)
	}
	if !strings.Contains(s.logs(), "containers are off") {
		t.Errorf("the daemon's log does not say containers are off:\n%s", s.logs())
	}
}

// A host with no OCI runtime on PATH: the daemon says so when it starts
// and offers the host runtime alone.
func TestNoOCIRuntime(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := newSite(t, "", rules)
	cmd := exec.Command(bin(t, "fxd"), "serve", "--config", s.configPath())
	cmd.Env = []string{"PATH=" + t.TempDir()} // neither crun nor runc
	s.spawn(cmd)
	s.waitHealthy(20 * time.Second)
	rts, err := s.client(tenants[0].id).Runtimes(ctxT(t, 10*time.Second))
	if err != nil || len(rts) != 1 || rts[0].Name != api.RuntimeHost {
		t.Errorf("runtimes without an OCI runtime: %+v, %v; want host alone", rts, err)
	}
	if !strings.Contains(s.logs(), "no OCI runtime") || !strings.Contains(s.logs(), "install crun") {
		t.Errorf("the daemon's log does not say there is no OCI runtime and what to install:\n%s", s.logs())
	}
	c := s.client(tenants[0].id)
	register(t, c, api.FunctionSpec{Name: "hi", Command: []string{"/bin/echo", "hi"}})
	if task := run(t, c, "hi", ""); task.State != api.StateSucceeded || string(task.Output) != "hi\n" {
		t.Errorf("host task without an OCI runtime: %s %q (error %q)", task.State, task.Output, task.Error)
	}
}
