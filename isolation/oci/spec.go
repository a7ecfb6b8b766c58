package oci

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/isolation/cgroup"
)

// ShimPath is where the static fxd shim appears in every container,
// bind-mounted read-only from the host. It lies under /dev because the
// runtime mounts a fresh tmpfs there in every container: image roots are
// read-only squashfs, so the runtime cannot create a mount point such as
// /.fxd in them.
const ShimPath = "/dev/.fxd/fxd-shim"

// specVersion is the runtime-spec version the configs claim: crun 1.8
// refuses any but 1.0.x ("unknown version specified"), and newSpec uses
// nothing newer.
const specVersion = "1.0.2"

// Network is how a container reaches the network.
type Network string

const (
	// NetworkHost shares the host's network namespace.
	NetworkHost Network = "host"
	// NetworkNone gives the container a new, empty network namespace
	// (only a loopback device, down).
	NetworkNone Network = "none"
)

// Bind is a site-configured bind mount. Source and Destination may use
// $USER and $HOME, which are replaced with the account's name and home
// directory (the only variables; any other "$" is refused). The source
// reaches the container only as the account reaches it: the Executor opens
// it with the account's credentials (a symlink or a directory the account
// may not search fails the start), and the container process, the account
// with no capabilities, has only the account's permissions inside.
type Bind struct {
	Source      string // host path, absolute
	Destination string // container path, absolute; must exist in the image (see newSpec)
	ReadOnly    bool
}

// Site is what the site configures once for every container
// ([containers] of the site config, whose defaults conf defines).
type Site struct {
	// CgroupParent is the group under which each container gets its own,
	// relative to each hierarchy's root ("fxd"), as in isolation/plain.
	CgroupParent string
	Network      Network
	Binds        []Bind
	// Shim is the host path of the static fxd-shim binary, bind-mounted
	// read-only at ShimPath; "" mounts none.
	Shim string
	// WorkDir is the container path of the private writable work dir, the
	// process's cwd when the Spec names none. It may be /tmp or lie under
	// it, but not in the other mounts fxd makes (/proc, /dev, /sys), and no
	// bind may be at or above it.
	WorkDir string
	// TmpSize caps /tmp and the work dir (each a tmpfs, charged to the
	// container's memory cgroup), in bytes.
	TmpSize int64
}

// readonlyRoot is the spec's root.readonly for the OCI runtime named
// runtime. runc 1.1 makes the container's root a bind of the staged one
// (read-only, nosuid, nodev), which keeps its flags, unless asked for a
// read-only root: then it remounts it with MS_RDONLY alone, dropping nodev
// and nosuid. crun 1.8 remounts the root either way (read-write when not
// read-only), so there a read-only root stays at least read-only; the
// image store keeps device nodes out of images, and no_new_privileges
// makes setuid files inert.
func readonlyRoot(runtime string) bool { return runtime != "runc" }

// newSpec returns the runtime-spec configuration of the tenant container
// that runs s under site's rules, with binds (site.Binds expanded for s's
// account, then s.Binds checked by specBinds, all staged), for the OCI
// runtime named runtime: the root file
// system s.Rootfs, staged read-only (see readonlyRoot);
// s.Argv, s.Env (the whole environment) and s.Dir (default site.WorkDir) as
// the process; s.Account's UID, GID and supplementary groups; no
// capabilities in any set and no_new_privileges; new mount, pid, ipc and uts
// namespaces (and network with NetworkNone); runc's default masked and
// read-only /proc and /sys paths; the container's cgroups read-only at
// /sys/fs/cgroup; a private /tmp (mode 1777) and work dir
// (mode 0700, owned by the account), both size-limited tmpfs; the shim;
// the binds (nosuid, nodev, and ro where asked); s.Limits (swap capped) in the cgroup /<CgroupParent>/<s.ID>,
// with all devices denied but the runtime's defaults; RLIMIT_CORE 0 and
// RLIMIT_NOFILE 1024/65536 (both capped at this process's hard limit: runc
// 1.1.5 cannot raise a limit above its own and fails the start with EPERM).
// site has passed checkSite and s checkSpec.
//
// The image root is read-only, so the runtime cannot create mount points
// in it: /proc, /dev, /sys, /tmp and every bind Destination must already
// exist in the image (unless it lies in the tmpfs at /tmp or the work
// dir), and so must s.Dir unless it lies under /tmp; checkMountpoints
// checks them.
func newSpec(s isolation.Spec, site Site, binds []Bind, runtime string) *specs.Spec {
	a := s.Account
	cwd := s.Dir
	if cwd == "" {
		cwd = site.WorkDir
	}
	res := isolation.SwapCapped(s.Limits) // a copy: the devices rule must not leak into the caller's
	if res.Devices == nil {
		res.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	}
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
	}
	if site.Network == NetworkNone {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	none := []string{}
	return &specs.Spec{
		Version: specVersion,
		Root:    &specs.Root{Path: s.Rootfs, Readonly: readonlyRoot(runtime)},
		Process: &specs.Process{
			User: specs.User{
				UID: a.UID, GID: a.GID, AdditionalGids: append([]uint32(nil), a.Groups...),
				Umask: new(uint32(0o022)),
			},
			Args: append([]string(nil), s.Argv...),
			Env:  append([]string{}, s.Env...),
			Cwd:  cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: none, Effective: none, Inheritable: none, Permitted: none, Ambient: none,
			},
			Rlimits:         rlimits(),
			NoNewPrivileges: true,
		},
		Hostname: "fxd",
		Mounts:   mounts(site, a, binds),
		Linux: &specs.Linux{
			Resources:   &res,
			CgroupsPath: "/" + site.CgroupParent + "/" + s.ID,
			Namespaces:  ns,
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
			RootfsPropagation: "private",
		},
	}
}

// fixedMounts are the mounts every container gets, /tmp of tmpSize bytes,
// in the order the runtime makes them: a mount point inside another mount
// comes after it. Nothing else may be mounted at or under them (reserved).
func fixedMounts(tmpSize int64) []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		// not noexec: the shim is mounted below
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		// the container's own cgroups, read-only: runtimes (JVM, Go, Python) size themselves from them
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(tmpSize, 10)}},
	}
}

// mounts lists the container's mounts in the order the runtime makes them:
// the fixed ones, the work dir, the shim, the binds (the site's, then the
// Spec's, which may lie in the work dir's tmpfs).
func mounts(site Site, a isolation.Account, binds []Bind) []specs.Mount {
	m := fixedMounts(site.TmpSize)
	if site.WorkDir != "/tmp" {
		m = append(m, specs.Mount{Destination: site.WorkDir, Type: "tmpfs", Source: "tmpfs", Options: []string{
			"nosuid", "nodev", "mode=0700", "size=" + strconv.FormatInt(site.TmpSize, 10),
			"uid=" + strconv.FormatUint(uint64(a.UID), 10), "gid=" + strconv.FormatUint(uint64(a.GID), 10),
		}})
	}
	if site.Shim != "" {
		m = append(m, specs.Mount{Destination: ShimPath, Type: "bind", Source: site.Shim, Options: []string{"rbind", "rprivate", "ro", "nosuid", "nodev"}})
	}
	for _, b := range binds {
		opts := []string{"rbind", "rprivate", "nosuid", "nodev"}
		if b.ReadOnly {
			opts = append(opts, "ro")
		}
		m = append(m, specs.Mount{Destination: b.Destination, Type: "bind", Source: b.Source, Options: opts})
	}
	return m
}

// checkSite validates site.
func checkSite(site Site) error {
	if err := cgroup.CheckParent(site.CgroupParent); err != nil {
		return fmt.Errorf("%w: %w", err, api.ErrInvalid)
	}
	switch site.Network {
	case NetworkHost, NetworkNone:
	default:
		return fmt.Errorf("network %q: want %q or %q: %w", site.Network, NetworkHost, NetworkNone, api.ErrInvalid)
	}
	if err := checkPath("work dir", site.WorkDir); err != nil {
		return err
	}
	if site.WorkDir == "/" {
		return fmt.Errorf("work dir %q: the image root is read-only; pick a directory such as /tmp/work: %w", site.WorkDir, api.ErrInvalid)
	}
	if m, ok := reserved(site.WorkDir); ok && m != "/tmp" {
		return fmt.Errorf("work dir %q: fxd mounts %s itself; pick a directory such as /tmp/work: %w", site.WorkDir, m, api.ErrInvalid)
	}
	if site.Shim != "" {
		if err := checkPath("shim", site.Shim); err != nil {
			return err
		}
	}
	if site.TmpSize <= 0 {
		return fmt.Errorf("tmp size %d: want a positive number of bytes: %w", site.TmpSize, api.ErrInvalid)
	}
	if _, err := expandBinds(site.Binds, isolation.Account{Name: "user", UID: 1000, Home: "/home/user"}, site.WorkDir); err != nil {
		return fmt.Errorf("site binds: %w", err)
	}
	return nil
}

// checkSpec validates the parts of s that go into the container.
func checkSpec(s isolation.Spec) error {
	if err := s.Check(); err != nil {
		return err
	}
	if s.Rootfs == "" {
		return fmt.Errorf("container %s: no root file system; a container needs the image's mounted root: %w", s.ID, api.ErrInvalid)
	}
	if err := checkPath("root file system", s.Rootfs); err != nil {
		return err
	}
	for _, e := range s.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("container %s: environment entry %q: want NAME=value: %w", s.ID, e, api.ErrInvalid)
		}
	}
	if s.Dir != "" {
		if err := checkPath("working directory", s.Dir); err != nil {
			return err
		}
	}
	return nil
}

// checkPath refuses a path that is not absolute or not clean (".." in it,
// doubled or trailing slashes) or holds a NUL byte.
func checkPath(what, p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsRune(p, 0) {
		return fmt.Errorf("%s %q: want an absolute path without \"..\", \".\" or doubled slashes: %w", what, p, api.ErrInvalid)
	}
	return nil
}

// expandBinds replaces $USER and $HOME in the binds and validates them:
// none may replace or hide a fixed mount or the work dir.
func expandBinds(binds []Bind, a isolation.Account, workDir string) ([]Bind, error) {
	out := make([]Bind, 0, len(binds))
	seen := map[string]bool{}
	for _, b := range binds {
		src, err := expand(b.Source, a)
		if err != nil {
			return nil, fmt.Errorf("bind source %q: %w", b.Source, err)
		}
		dst, err := expand(b.Destination, a)
		if err != nil {
			return nil, fmt.Errorf("bind destination %q: %w", b.Destination, err)
		}
		if err := checkPath("bind source", src); err != nil {
			return nil, err
		}
		if err := checkPath("bind destination", dst); err != nil {
			return nil, err
		}
		if m, ok := reserved(dst); ok {
			return nil, fmt.Errorf("bind destination %q: fxd mounts %s itself; bind below another directory: %w", dst, m, api.ErrInvalid)
		}
		if dst == workDir || strings.HasPrefix(workDir, dst+"/") {
			return nil, fmt.Errorf("bind destination %q: it would hide the work dir %s; bind elsewhere or move the work dir: %w", dst, workDir, api.ErrInvalid)
		}
		if seen[dst] {
			return nil, fmt.Errorf("bind destination %q: bound twice: %w", dst, api.ErrInvalid)
		}
		seen[dst] = true
		out = append(out, Bind{Source: src, Destination: dst, ReadOnly: b.ReadOnly})
	}
	return out, nil
}

// specBinds validates the Spec's own binds (isolation.Spec.Binds, whose
// paths Spec.Check found absolute and clean) against the site's binds,
// already expanded, and the work dir, and returns them as Binds. A
// destination may lie below /tmp or the work dir, tmpfs where the runtime
// can make the mount point, or in the image; but not in another mount
// fxd makes (/proc, /dev, /sys), not at or above the work dir, and not
// at, above or below another bind: the runtime would then make its mount
// point inside a host directory, or hide a mount.
func specBinds(binds []isolation.Bind, site []Bind, workDir string) ([]Bind, error) {
	out := make([]Bind, 0, len(binds))
	for _, b := range binds {
		dst := b.Destination
		if m, ok := reserved(dst); ok && (m != "/tmp" || dst == m) {
			return nil, fmt.Errorf("bind destination %q: fxd mounts %s itself; bind below the work dir %s instead: %w", dst, m, workDir, api.ErrInvalid)
		}
		if dst == workDir || strings.HasPrefix(workDir, dst+"/") {
			return nil, fmt.Errorf("bind destination %q: it would hide the work dir %s; bind below it instead: %w", dst, workDir, api.ErrInvalid)
		}
		for _, o := range slices.Concat(site, out) {
			if nested(dst, o.Destination) {
				return nil, fmt.Errorf("bind destination %q: it overlaps the bind at %s; give each bind a directory of its own: %w", dst, o.Destination, api.ErrInvalid)
			}
		}
		out = append(out, Bind{Source: b.Source, Destination: dst, ReadOnly: b.ReadOnly})
	}
	return out, nil
}

// nested reports whether a and b are the same path or one lies below the
// other.
func nested(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

// reserved returns the mount newSpec makes that a mount at dst would
// replace or hide: the image root, or a fixed mount at or above dst.
func reserved(dst string) (string, bool) {
	if dst == "/" {
		return "/", true
	}
	for _, m := range fixedMounts(0) {
		if dst == m.Destination || strings.HasPrefix(dst, m.Destination+"/") {
			return m.Destination, true
		}
	}
	return "", false
}

// expand replaces $USER and $HOME (also written ${USER}, ${HOME}).
func expand(p string, a isolation.Account) (string, error) {
	var err error
	out := os.Expand(p, func(name string) string {
		v := ""
		switch name {
		case "USER":
			v = a.Name
		case "HOME":
			v = a.Home
		default:
			if err == nil {
				err = fmt.Errorf("variable $%s: only $USER and $HOME are expanded: %w", name, api.ErrInvalid)
			}
			return ""
		}
		if v == "" && err == nil {
			err = fmt.Errorf("variable $%s: account %d has none to expand: %w", name, a.UID, api.ErrInvalid)
		}
		return v
	})
	return out, err
}

// rlimits are the container's resource limits: no core dumps (tenant code
// would fill node disks) and 1024 open files, raisable to 65536, but never
// above this process's hard limit, which the runtime inherits.
func rlimits() []specs.POSIXRlimit {
	hard, soft := uint64(65536), uint64(1024)
	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &own); err == nil {
		hard = min(hard, own.Max)
		soft = min(soft, hard)
	}
	return []specs.POSIXRlimit{
		{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
		{Type: "RLIMIT_NOFILE", Hard: hard, Soft: soft},
	}
}
