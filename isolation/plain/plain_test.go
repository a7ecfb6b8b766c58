package plain

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/isolation/isolationtest"
)

func TestConformance(t *testing.T) {
	isolationtest.Run(t, "", func(t *testing.T, parent string) isolation.Executor {
		e, err := New(Config{CgroupParent: parent}, zerolog.New(zerolog.NewTestWriter(t)))
		if err != nil {
			t.Fatal(err)
		}
		return e
	})
}

// The daemon's threads stay in the daemon's own cgroups after starting a
// tree inside another (the v1 thread trick must move the thread back).
func TestDaemonThreadsStayHome(t *testing.T) {
	testenv.RequireCgroup(t)
	before, _ := os.ReadFile("/proc/self/cgroup")
	isolationtest.Run(t, "", func(t *testing.T, parent string) isolation.Executor {
		e, err := New(Config{CgroupParent: parent}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		return e
	})
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/cgroup")
		if err == nil && string(b) != string(before) {
			t.Errorf("thread %s cgroups changed:\n%s\nwant\n%s", task.Name(), b, before)
		}
	}
}

func TestNotRootRefused(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as root; checks the refusal for a non-root daemon")
	}
	if _, err := New(Config{CgroupParent: "fxd"}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("New as non-root = %v, want an error saying root is needed", err)
	}
}

// Binds need a container: the plain executor refuses them rather than
// start a tree that lacks what it was promised.
func TestBindsRefused(t *testing.T) {
	s := isolation.Spec{ID: "b", Account: isolation.Account{Name: "a", UID: 1000, GID: 1000}, Argv: []string{"/bin/true"},
		Binds: []isolation.Bind{{Source: "/srv/data", Destination: "/data", ReadOnly: true}}}
	if err := check(s); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "mounts nothing") {
		t.Errorf("check(spec with a bind) = %v, want invalid: the plain executor mounts nothing", err)
	}
	s.Binds = nil
	if err := check(s); err != nil {
		t.Errorf("check(spec without binds) = %v, want nil", err)
	}
}

// BenchmarkStart is a cold tree: cgroup made, /bin/true started as a
// user, waited for, cgroup removed.
func BenchmarkStart(b *testing.B) {
	testenv.RequireCgroup(b)
	u := testenv.NewUser(b)
	parent := fmt.Sprintf("fxdbench-%d", os.Getpid())
	e, err := New(Config{CgroupParent: parent}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { testenv.RemoveCgroupParent(b, parent) })
	a := isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := e.Start(b.Context(), isolation.Spec{ID: "bench", Account: a, Argv: []string{"/bin/true"}})
		if err != nil {
			b.Fatal(err)
		}
		p.Wait()
	}
}

// BenchmarkForkExecTrue is the machine's reference: /bin/true with no
// cgroup and no UID change.
func BenchmarkForkExecTrue(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}
