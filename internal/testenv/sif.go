package testenv

import (
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// BusyboxPath is where Debian's busybox-static package installs a static
// busybox, the userland of the images BuildSIF makes.
const BusyboxPath = "/bin/busybox"

// SIFOption changes the image BuildSIF makes.
type SIFOption func(*sifSpec)

type sifFile struct {
	name string
	mode fs.FileMode
	data []byte
}

type sifDevice struct {
	name         string
	major, minor uint32
}

type sifSpec struct {
	bare    bool
	files   []sifFile
	devices []sifDevice
	rootfs  []byte // instead of a squashfs, when set
	arch    string
	fs      sif.FSType
	part    sif.PartType
	deffile bool
}

// SIFFile adds a file to the image's root filesystem at name (a path
// relative to /, parent directories are made 0755). A later SIFFile, or one
// naming a file of the busybox base such as etc/passwd, replaces it.
func SIFFile(name string, mode fs.FileMode, data []byte) SIFOption {
	return func(s *sifSpec) { s.files = append(s.files, sifFile{name, mode, data}) }
}

// SIFDevice adds a character device node, mode 0666, at name (a path
// relative to /, parent directories are made 0755): what a hostile image
// would carry to reach a host device.
func SIFDevice(name string, major, minor uint32) SIFOption {
	return func(s *sifSpec) { s.devices = append(s.devices, sifDevice{name, major, minor}) }
}

// SIFRootfsBytes makes the root file system partition hold b instead of
// a squashfs: an image whose headers are right but whose root file system
// does not mount.
func SIFRootfsBytes(b []byte) SIFOption { return func(s *sifSpec) { s.rootfs = b } }

// SIFBare leaves busybox out: the root filesystem holds only the SIFFile
// files. Such images are a few KiB (fuzz seeds) and need no busybox.
func SIFBare() SIFOption { return func(s *sifSpec) { s.bare = true } }

// SIFArch labels the root filesystem partition with a GOARCH-style
// architecture instead of runtime.GOARCH (the content stays the host's).
func SIFArch(goarch string) SIFOption { return func(s *sifSpec) { s.arch = goarch } }

// SIFFSType labels the root filesystem partition with another file system
// type (sif.FsExt3 makes an image fxd must refuse; the content stays squashfs).
func SIFFSType(t sif.FSType) SIFOption { return func(s *sifSpec) { s.fs = t } }

// SIFPartType gives the squashfs partition another partition type
// (sif.PartData or sif.PartSystem make an image with no root filesystem).
func SIFPartType(t sif.PartType) SIFOption { return func(s *sifSpec) { s.part = t } }

// SIFNoDeffile leaves out the definition-file object that images built by
// apptainer carry, so the root filesystem is the only object.
func SIFNoDeffile() SIFOption { return func(s *sifSpec) { s.deffile = false } }

// BuildSIF builds a small SIF image offline and returns its path in a
// temporary directory removed when the test ends. The image holds a
// definition file and a primary system squashfs partition whose root
// filesystem is a static busybox with its applets linked in /bin, a minimal
// /etc/passwd and /etc/group (root, nobody), /tmp (1777), /proc, /sys and
// /dev mount points, plus the SIFFile files. Images are deterministic: the
// same options give the same bytes. It needs mksquashfs (squashfs-tools) and,
// unless SIFBare, a static /bin/busybox (busybox-static); without them the
// test skips, or fails in CI.
func BuildSIF(tb testing.TB, opts ...SIFOption) string {
	tb.Helper()
	RequireCommand(tb, "mksquashfs")
	if !newSIFSpec(opts).bare {
		requireStaticBusybox(tb)
	}
	path := filepath.Join(tb.TempDir(), "image.sif")
	if err := WriteSIF(path, opts...); err != nil {
		tb.Fatal(err)
	}
	return path
}

func newSIFSpec(opts []SIFOption) sifSpec {
	s := sifSpec{arch: runtime.GOARCH, fs: sif.FsSquash, part: sif.PartPrimSys, deffile: true}
	for _, o := range opts {
		o(&s)
	}
	return s
}

// WriteSIF writes the image BuildSIF describes to path, building it in a
// temporary directory of its own: for tools outside tests (scripts/bench.sh
// runs it through internal/testenv/mksif). It needs mksquashfs and, unless
// SIFBare, the static busybox at BusyboxPath.
func WriteSIF(path string, opts ...SIFOption) error {
	s := newSIFSpec(opts)
	dir, err := os.MkdirTemp("", "fxd-sif-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	if !s.bare {
		if err := writeBusyboxRoot(root); err != nil {
			return fmt.Errorf("build SIF: %w", err)
		}
	}
	for _, f := range s.files {
		rel, err := imagePath(f.name)
		if err != nil {
			return err
		}
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("build SIF: %w", err)
		}
		os.Remove(p) // replace a symlink rather than write through it
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return fmt.Errorf("build SIF: %w", err)
		}
		if err := os.Chmod(p, f.mode); err != nil { // not masked by the umask
			return fmt.Errorf("build SIF: %w", err)
		}
	}
	sqfs := filepath.Join(dir, "rootfs.sqfs")
	// lz4: ten times faster to build than gzip here, and the kernel and
	// squashfuse both read it.
	args := []string{root, sqfs, "-noappend", "-all-root", "-comp", "lz4",
		"-mkfs-time", "0", "-all-time", "0", "-quiet", "-no-progress"}
	for _, d := range s.devices {
		rel, err := imagePath(d.name)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(rel)), 0o755); err != nil {
			return fmt.Errorf("build SIF: %w", err)
		}
		// a pseudo file: mksquashfs makes the node, no mknod needed
		args = append(args, "-p", fmt.Sprintf("%s c 0666 0 0 %d %d", filepath.ToSlash(rel), d.major, d.minor))
	}
	cmd := exec.Command("mksquashfs", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mksquashfs %s: %v: %s", root, err, out)
	}
	if s.rootfs != nil {
		if err := os.WriteFile(sqfs, s.rootfs, 0o644); err != nil {
			return fmt.Errorf("build SIF: %w", err)
		}
	}
	if err := writeSIF(path, sqfs, s); err != nil {
		return fmt.Errorf("build SIF %s: %w", path, err)
	}
	return nil
}

// imagePath returns name, a path inside the image, relative to its root.
func imagePath(name string) (string, error) {
	rel := filepath.Clean(filepath.FromSlash(strings.TrimPrefix(name, "/")))
	if rel == "." || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("build SIF: file name %q is not a path inside the image", name)
	}
	return rel, nil
}

// SIFRootfs returns where the primary system partition of the SIF image at
// path lies in the file, as sif/v2 reads it: the squashfs bytes a test
// loop-mounts or extracts.
func SIFRootfs(tb testing.TB, path string) (off, size int64) {
	tb.Helper()
	f, err := sif.LoadContainerFromPath(path, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		tb.Fatalf("load SIF %s: %v", path, err)
	}
	defer f.UnloadContainer()
	d, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		tb.Fatalf("SIF %s: root file system partition: %v", path, err)
	}
	return d.Offset(), d.Size()
}

// writeSIF wraps the squashfs file sqfs into a new SIF at path.
func writeSIF(path, sqfs string, s sifSpec) error {
	f, err := os.Open(sqfs)
	if err != nil {
		return err
	}
	defer f.Close()
	var dis []sif.DescriptorInput
	if s.deffile {
		di, err := sif.NewDescriptorInput(sif.DataDeffile, strings.NewReader("Bootstrap: scratch\n"))
		if err != nil {
			return err
		}
		dis = append(dis, di)
	}
	part, err := sif.NewDescriptorInput(sif.DataPartition, f,
		sif.OptPartitionMetadata(s.fs, s.part, s.arch))
	if err != nil {
		return err
	}
	dis = append(dis, part)
	img, err := sif.CreateContainerAtPath(path, sif.OptCreateDeterministic(), sif.OptCreateWithDescriptors(dis...))
	if err != nil {
		return err
	}
	return img.UnloadContainer()
}

// writeBusyboxRoot lays out a busybox root filesystem in root.
func writeBusyboxRoot(root string) error {
	bb := BusyboxPath
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "root", "tmp", "usr/bin", "usr/sbin", "var/tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		if err := os.Chmod(filepath.Join(root, d), os.ModeSticky|0o777); err != nil {
			return err
		}
	}
	if err := copyFile(filepath.Join(root, "bin/busybox"), bb, 0o755); err != nil {
		return fmt.Errorf("copy %s: %w", bb, err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w", bb, err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			return err
		}
	}
	// Scripts and tests name /usr/bin/env, as in most images.
	if err := os.Symlink("../../bin/busybox", filepath.Join(root, "usr/bin/env")); err != nil {
		return err
	}
	etc := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
		"etc/hosts":  "127.0.0.1 localhost\n",
	}
	for name, data := range etc {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// requireStaticBusybox calls Unavailable unless BusyboxPath is a statically
// linked busybox: a dynamic one cannot run inside a bare image.
func requireStaticBusybox(tb testing.TB) {
	tb.Helper()
	const why = "needs a static busybox at " + BusyboxPath + " (apt-get install busybox-static, or run scripts/install-test-deps.sh)"
	f, err := elf.Open(BusyboxPath)
	if err != nil {
		Unavailable(tb, fmt.Sprintf("%s: %v", why, err))
		return
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			Unavailable(tb, why+"; the installed one is dynamically linked")
			return
		}
	}
}

func copyFile(dst, src string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TruncatedCopy writes the first n bytes of the file src to a new file in a
// temporary directory and returns its path: a download or copy cut short.
func TruncatedCopy(tb testing.TB, src string, n int64) string {
	tb.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		tb.Fatal(err)
	}
	if n > int64(len(b)) {
		tb.Fatalf("truncated copy of %s: %d bytes wanted, file has %d", src, n, len(b))
	}
	return WriteTemp(tb, filepath.Base(src), b[:n])
}

// WriteTemp writes data to a new file named name in a temporary directory
// removed when the test ends, and returns its path.
func WriteTemp(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}
