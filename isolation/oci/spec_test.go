package oci

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/isolation"
)

func testAccount() isolation.Account {
	return isolation.Account{Name: "alice", UID: 1001, GID: 1001, Groups: []uint32{50, 60}, Home: "/home/alice"}
}

func testSpec() isolation.Spec {
	mem := int64(64 << 20)
	return isolation.Spec{
		ID:      "w-1",
		Account: testAccount(),
		Rootfs:  "/var/lib/fxd/images/abc/rootfs",
		Argv:    []string{"/bin/sh", "-c", "id -u"},
		Env:     []string{"PATH=/bin", "HOME=/home/alice"},
		Limits:  specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &mem}, Pids: &specs.LinuxPids{Limit: new(int64(32))}},
	}
}

// testWorkDir is the work dir of the tests' sites, conf's default.
const testWorkDir = "/tmp/work"

// taskData is a Spec bind as runtimes makes one for a task's data.
var taskData = isolation.Bind{Source: "/var/lib/fxd/task-data/w-1", Destination: testWorkDir + "/data", ReadOnly: true}

// buildSpec is the spec Start builds for crun, without staging the binds:
// the site and the spec checked, the binds expanded.
func buildSpec(s isolation.Spec, site Site) (*specs.Spec, error) {
	return buildSpecFor(s, site, "crun")
}

// buildSpecFor is buildSpec for the OCI runtime named runtime.
func buildSpecFor(s isolation.Spec, site Site, runtime string) (*specs.Spec, error) {
	if err := checkSite(site); err != nil {
		return nil, err
	}
	if err := checkSpec(s); err != nil {
		return nil, err
	}
	binds, err := expandBinds(site.Binds, s.Account, site.WorkDir)
	if err != nil {
		return nil, err
	}
	own, err := specBinds(s.Binds, binds, site.WorkDir)
	if err != nil {
		return nil, err
	}
	return newSpec(s, site, append(binds, own...), runtime), nil
}

// withDefaults fills in the site fields a test leaves out with conf's
// defaults.
func withDefaults(site Site) Site {
	if site.Network == "" {
		site.Network = NetworkHost
	}
	if site.WorkDir == "" {
		site.WorkDir = testWorkDir
	}
	if site.TmpSize == 0 {
		site.TmpSize = 256 << 20
	}
	return site
}

func testSite() Site {
	return Site{
		Network:      NetworkHost,
		WorkDir:      testWorkDir,
		TmpSize:      256 << 20,
		CgroupParent: "fxd",
		Shim:         "/usr/libexec/fxd/fxd-shim",
		Binds: []Bind{
			{Source: "/home/$USER", Destination: "/home/$USER"},
			{Source: "/scratch/${USER}", Destination: "/scratch", ReadOnly: true},
		},
	}
}

func TestNewSpec(t *testing.T) {
	s := testSpec()
	s.Binds = []isolation.Bind{taskData, {Source: "/srv/out", Destination: "/out"}}
	g, err := buildSpec(s, testSite())
	if err != nil {
		t.Fatalf("buildSpec() = %v", err)
	}
	if g.Version != specVersion {
		t.Errorf("Version = %q, want %q", g.Version, specVersion)
	}
	if g.Root.Path != s.Rootfs || !g.Root.Readonly {
		t.Errorf("Root = %+v, want %s read-only", g.Root, s.Rootfs)
	}
	// runc would remount a read-only root without nosuid and nodev; the
	// staged root is read-only already.
	if g, err := buildSpecFor(s, testSite(), "runc"); err != nil {
		t.Errorf("buildSpecFor(runc) = %v", err)
	} else if g.Root.Readonly {
		t.Errorf("for runc: Root = %+v, want root.readonly false", g.Root)
	}
	p := g.Process
	if p.User.UID != 1001 || p.User.GID != 1001 || !slices.Equal(p.User.AdditionalGids, []uint32{50, 60}) {
		t.Errorf("User = %+v, want 1001:1001 +50,60", p.User)
	}
	if !p.NoNewPrivileges {
		t.Error("NoNewPrivileges = false")
	}
	c := p.Capabilities
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "inheritable": c.Inheritable, "permitted": c.Permitted, "ambient": c.Ambient} {
		if set == nil || len(set) != 0 {
			t.Errorf("capabilities.%s = %v, want empty (not absent)", name, set)
		}
	}
	if !slices.Equal(p.Args, s.Argv) || !slices.Equal(p.Env, s.Env) || p.Cwd != testWorkDir {
		t.Errorf("Process = args %q env %q cwd %q", p.Args, p.Env, p.Cwd)
	}
	var types []specs.LinuxNamespaceType
	for _, n := range g.Linux.Namespaces {
		if n.Path != "" {
			t.Errorf("namespace %s joins %s, want a new one", n.Type, n.Path)
		}
		types = append(types, n.Type)
	}
	slices.Sort(types)
	if want := []specs.LinuxNamespaceType{"ipc", "mount", "pid", "uts"}; !slices.Equal(types, want) {
		t.Errorf("namespaces = %v, want %v (host network)", types, want)
	}
	if g.Linux.CgroupsPath != "/fxd/w-1" {
		t.Errorf("CgroupsPath = %q, want /fxd/w-1", g.Linux.CgroupsPath)
	}
	r := g.Linux.Resources
	if *r.Memory.Limit != 64<<20 || *r.Pids.Limit != 32 {
		t.Errorf("Resources = %+v, want memory 64 MiB, pids 32", r)
	}
	if len(r.Devices) != 1 || r.Devices[0].Allow || r.Devices[0].Access != "rwm" {
		t.Errorf("Devices = %+v, want deny all", r.Devices)
	}
	if s.Limits.Devices != nil {
		t.Error("NewSpec changed the caller's Limits.Devices")
	}
	for _, want := range []string{"/proc/kcore", "/proc/keys", "/sys/firmware"} {
		if !slices.Contains(g.Linux.MaskedPaths, want) {
			t.Errorf("MaskedPaths lacks %s", want)
		}
	}
	if !slices.Contains(g.Linux.ReadonlyPaths, "/proc/sys") {
		t.Error("ReadonlyPaths lacks /proc/sys")
	}
	m := map[string]specs.Mount{}
	var order []string
	for _, x := range g.Mounts {
		m[x.Destination] = x
		order = append(order, x.Destination)
	}
	want := map[string][]string{
		"/tmp":               {"mode=1777", "size=268435456"},
		testWorkDir:          {"mode=0700", "uid=1001", "gid=1001"},
		ShimPath:             {"rbind", "ro"},
		"/home/alice":        {"rbind"},
		"/scratch":           {"rbind", "ro"},
		taskData.Destination: {"rbind", "rprivate", "ro", "nosuid", "nodev"},
		"/out":               {"rbind", "nosuid", "nodev"},
	}
	for dst, opts := range want {
		for _, o := range opts {
			if !slices.Contains(m[dst].Options, o) {
				t.Errorf("mount %s options %q lack %q", dst, m[dst].Options, o)
			}
		}
	}
	if slices.Contains(m["/home/alice"].Options, "ro") {
		t.Errorf("mount /home/alice is read-only, want writable")
	}
	if slices.Contains(m["/out"].Options, "ro") {
		t.Errorf("mount /out is read-only, want writable")
	}
	if m["/scratch"].Source != "/scratch/alice" || m[ShimPath].Source != "/usr/libexec/fxd/fxd-shim" || m[taskData.Destination].Source != taskData.Source {
		t.Errorf("bind sources = %q, %q, %q", m["/scratch"].Source, m[ShimPath].Source, m[taskData.Destination].Source)
	}
	// the Spec's binds come after the work dir (the data lies in it) and the site's
	if i, j, k := slices.Index(order, testWorkDir), slices.Index(order, "/scratch"), slices.Index(order, taskData.Destination); !(i < k && j < k) {
		t.Errorf("mount order %q: want %s after %s and /scratch", order, taskData.Destination, testWorkDir)
	}
	// a mount point inside another mount comes after it
	for i, d := range order {
		for _, e := range order[i+1:] {
			if strings.HasPrefix(d, e+"/") {
				t.Errorf("mount %s comes before its parent mount %s", d, e)
			}
		}
	}
}

func TestNewSpecNetworkNone(t *testing.T) {
	site := testSite()
	site.Network = NetworkNone
	g, err := buildSpec(testSpec(), site)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(g.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace && n.Path == "" }) {
		t.Errorf("namespaces = %v, want a new network namespace", g.Linux.Namespaces)
	}
}

func TestNewSpecRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  func(*isolation.Spec)
		site  func(*Site)
		kind  error
		words string
	}{
		{name: "uid 0", spec: func(s *isolation.Spec) { s.Account.UID = 0 }, kind: api.ErrDenied, words: "uid 0 is refused"},
		{name: "no rootfs", spec: func(s *isolation.Spec) { s.Rootfs = "" }, kind: api.ErrInvalid, words: "no root file system"},
		{name: "relative rootfs", spec: func(s *isolation.Spec) { s.Rootfs = "images/x" }, kind: api.ErrInvalid, words: "root file system"},
		{name: "dotdot rootfs", spec: func(s *isolation.Spec) { s.Rootfs = "/var/lib/../x" }, kind: api.ErrInvalid, words: "without \"..\""},
		{name: "bad id", spec: func(s *isolation.Spec) { s.ID = "a/b" }, kind: api.ErrInvalid, words: `id "a/b"`},
		{name: "dotdot id", spec: func(s *isolation.Spec) { s.ID = ".." }, kind: api.ErrInvalid, words: `id ".."`},
		{name: "empty argv", spec: func(s *isolation.Spec) { s.Argv = nil }, kind: api.ErrInvalid, words: "empty argv"},
		{name: "bad env", spec: func(s *isolation.Spec) { s.Env = []string{"NOEQUALS"} }, kind: api.ErrInvalid, words: "NAME=value"},
		{name: "relative dir", spec: func(s *isolation.Spec) { s.Dir = "work" }, kind: api.ErrInvalid, words: "working directory"},
		{name: "absolute cgroup parent", site: func(s *Site) { s.CgroupParent = "/fxd" }, kind: api.ErrInvalid, words: "cgroup parent"},
		{name: "dotdot cgroup parent", site: func(s *Site) { s.CgroupParent = "../fxd" }, kind: api.ErrInvalid, words: "cgroup parent"},
		{name: "bad network", site: func(s *Site) { s.Network = "bridge" }, kind: api.ErrInvalid, words: "network"},
		{name: "relative shim", site: func(s *Site) { s.Shim = "fxd-shim" }, kind: api.ErrInvalid, words: "shim"},
		{name: "root work dir", site: func(s *Site) { s.WorkDir = "/" }, kind: api.ErrInvalid, words: "read-only"},
		{name: "work dir in proc", site: func(s *Site) { s.WorkDir = "/proc/work" }, kind: api.ErrInvalid, words: "fxd mounts /proc"},
		{name: "work dir on dev", site: func(s *Site) { s.WorkDir = "/dev" }, kind: api.ErrInvalid, words: "fxd mounts /dev"},
		{name: "bind at work dir", site: func(s *Site) { s.WorkDir, s.Binds = "/work", []Bind{{Source: "/x", Destination: "/work"}} }, kind: api.ErrInvalid, words: "hide the work dir"},
		{name: "bind above work dir", site: func(s *Site) { s.WorkDir, s.Binds = "/work/me", []Bind{{Source: "/x", Destination: "/work"}} }, kind: api.ErrInvalid, words: "hide the work dir"},
		{name: "negative tmp", site: func(s *Site) { s.TmpSize = -1 }, kind: api.ErrInvalid, words: "tmp size"},
		{name: "relative bind", site: func(s *Site) { s.Binds = []Bind{{Source: "data", Destination: "/data"}} }, kind: api.ErrInvalid, words: "bind source"},
		{name: "dotdot bind", site: func(s *Site) { s.Binds = []Bind{{Source: "/data", Destination: "/home/$USER/../x"}} }, kind: api.ErrInvalid, words: "bind destination"},
		{name: "user escapes", spec: func(s *isolation.Spec) { s.Account.Name = ".." }, site: func(s *Site) { s.Binds = []Bind{{Source: "/home/$USER", Destination: "/data"}} }, kind: api.ErrInvalid, words: "bind source \"/home/..\""},
		{name: "other variable", site: func(s *Site) { s.Binds = []Bind{{Source: "/data/$SLURM_JOB_ID", Destination: "/data"}} }, kind: api.ErrInvalid, words: "only $USER and $HOME"},
		{name: "empty home", spec: func(s *isolation.Spec) { s.Account.Home = "" }, site: func(s *Site) { s.Binds = []Bind{{Source: "$HOME", Destination: "/data"}} }, kind: api.ErrInvalid, words: "$HOME"},
		{name: "bind over tmp", site: func(s *Site) { s.Binds = []Bind{{Source: "/tmp", Destination: "/tmp"}} }, kind: api.ErrInvalid, words: "fxd mounts"},
		{name: "bind over proc", site: func(s *Site) { s.Binds = []Bind{{Source: "/x", Destination: "/proc/sys"}} }, kind: api.ErrInvalid, words: "fxd mounts"},
		{name: "bind over root", site: func(s *Site) { s.Binds = []Bind{{Source: "/x", Destination: "/"}} }, kind: api.ErrInvalid, words: "fxd mounts"},
		{name: "bind over cgroups", site: func(s *Site) { s.Binds = []Bind{{Source: "/x", Destination: "/sys/fs/cgroup"}} }, kind: api.ErrInvalid, words: "fxd mounts /sys"},
		{name: "bind twice", site: func(s *Site) { s.Binds = []Bind{{Source: "/a", Destination: "/d"}, {Source: "/b", Destination: "/d"}} }, kind: api.ErrInvalid, words: "bound twice"},
		{name: "spec bind relative", spec: withBind("/d", "data"), kind: api.ErrInvalid, words: "want absolute paths"},
		{name: "spec bind dotdot", spec: withBind("/d", "/tmp/work/../../etc"), kind: api.ErrInvalid, words: "want absolute paths"},
		{name: "spec bind relative source", spec: withBind("d", "/tmp/work/data"), kind: api.ErrInvalid, words: "want absolute paths"},
		{name: "spec bind at root", spec: withBind("/d", "/"), kind: api.ErrInvalid, words: "want absolute paths"},
		{name: "spec bind over tmp", spec: withBind("/d", "/tmp"), kind: api.ErrInvalid, words: "fxd mounts /tmp"},
		{name: "spec bind in proc", spec: withBind("/d", "/proc/x"), kind: api.ErrInvalid, words: "fxd mounts /proc"},
		{name: "spec bind over shim", spec: withBind("/d", "/dev/.fxd"), kind: api.ErrInvalid, words: "fxd mounts /dev"},
		{name: "spec bind at work dir", spec: withBind("/d", testWorkDir), kind: api.ErrInvalid, words: "hide the work dir"},
		{name: "spec bind on site bind", spec: withBind("/d", "/scratch"), kind: api.ErrInvalid, words: "overlaps the bind at /scratch"},
		{name: "spec bind in site bind", spec: withBind("/d", "/home/alice/data"), kind: api.ErrInvalid, words: "overlaps the bind at /home/alice"},
		{name: "spec bind above site bind", spec: withBind("/d", "/home"), kind: api.ErrInvalid, words: "overlaps the bind at /home/alice"},
		{name: "spec binds nested", spec: func(s *isolation.Spec) {
			s.Binds = []isolation.Bind{{Source: "/a", Destination: "/tmp/work/data"}, {Source: "/b", Destination: "/tmp/work/data/x"}}
		}, kind: api.ErrInvalid, words: "overlaps the bind at /tmp/work/data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, site := testSpec(), testSite()
			if tc.spec != nil {
				tc.spec(&s)
			}
			if tc.site != nil {
				tc.site(&site)
			}
			_, err := buildSpec(s, site)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.words) {
				t.Errorf("buildSpec() = %v, want %v saying %q", err, tc.kind, tc.words)
			}
		})
	}
}

// withBind gives the Spec one bind of its own, read-only.
func withBind(src, dst string) func(*isolation.Spec) {
	return func(s *isolation.Spec) { s.Binds = []isolation.Bind{{Source: src, Destination: dst, ReadOnly: true}} }
}
