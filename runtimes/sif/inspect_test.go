package sif

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/sylabs/sif/v2/pkg/sif"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

const servable = "#!/bin/sh\nwhile read -r line; do echo \"$line\"; done\n"

func TestInspect(t *testing.T) {
	path := testenv.BuildSIF(t, testenv.SIFFile("opt/fn/serve.sh", 0o755, []byte(servable)))
	img, err := Inspect(t.Context(), path)
	if err != nil {
		t.Fatalf("Inspect = %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if img.Size != st.Size() {
		t.Errorf("Size = %d, want %d", img.Size, st.Size())
	}
	if img.Arch != runtime.GOARCH {
		t.Errorf("Arch = %q, want %q", img.Arch, runtime.GOARCH)
	}
	if img.Compression != "lz4" {
		t.Errorf("Compression = %q, want lz4", img.Compression)
	}
	r := img.Rootfs
	if r.Type != "FS" || r.FS != "Squashfs" || r.Part != "*System" || r.Arch != runtime.GOARCH {
		t.Errorf("Rootfs = %+v, want a Squashfs *System partition for %s", r, runtime.GOARCH)
	}
	if r.Offset%4096 != 0 || r.Offset <= 0 || r.Size <= 0 || r.Offset+r.Size > img.Size {
		t.Errorf("Rootfs at %d, %d bytes: want 4 KiB aligned inside the %d-byte file", r.Offset, r.Size, img.Size)
	}
	if magic := readAt(t, path, r.Offset, 4); string(magic) != "hsqs" {
		t.Errorf("bytes at Rootfs.Offset = %q, want the squashfs magic hsqs", magic)
	}
	if len(img.Objects) != 2 || img.Objects[0].Type != "Def.FILE" || img.Objects[1] != r {
		t.Errorf("Objects = %+v, want the definition file and the root file system", img.Objects)
	}

	// The offset is what unsquashfs, squashfuse and mount -o offset= need.
	dest := filepath.Join(t.TempDir(), "root")
	cmd := exec.Command(testenv.RequireCommand(t, "unsquashfs"), "-q", "-n", "-o", strconv.FormatInt(r.Offset, 10), "-d", dest, path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs -o %d: %v: %s", r.Offset, err, out)
	}
	if got, err := os.ReadFile(filepath.Join(dest, "opt/fn/serve.sh")); err != nil || string(got) != servable {
		t.Errorf("extracted opt/fn/serve.sh = %q, %v; want the servable", got, err)
	}
	if fi, err := os.Stat(filepath.Join(dest, "opt/fn/serve.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("extracted opt/fn/serve.sh: %v, %v; want mode 0755", fi, err)
	}
	for _, name := range []string{"sh", "cat", "id", "sleep", "echo", "true"} {
		if l, err := os.Readlink(filepath.Join(dest, "bin", name)); err != nil || l != "busybox" {
			t.Errorf("extracted /bin/%s = %q, %v; want a link to busybox", name, l, err)
		}
	}
}

// TestLayout checks the header fields that checkHeader reads, and the
// descriptor fields the tests below patch, against what sif/v2 reads from a
// real image; and that its last object ends at the end of the file (so
// that a copy one byte short is refused).
func TestLayout(t *testing.T) {
	path := testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFFile("hello", 0o644, []byte("hi\n")))
	fi := loadSIF(t, path)
	h := readAt(t, path, 0, headerSize)
	// sif/v2 reads a header of headerSize bytes: one byte short, it fails
	// there; with all of them, it goes on to the descriptors.
	for n, want := range map[int]string{headerSize - 1: "reading global header", headerSize: "reading descriptors"} {
		r := &reader{done: func() error { return nil }, r: bytes.NewReader(h[:n])}
		if _, err := sif.LoadContainer(r, sif.OptLoadWithCloseOnUnload(false)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("sif.LoadContainer(first %d bytes) = %v, want an error %q", n, err, want)
		}
	}
	if m := string(h[magicOffset : magicOffset+len(sifMagic)]); m != sifMagic {
		t.Errorf("header bytes at %d = %q, want %q", magicOffset, m, sifMagic)
	}
	for i, want := range []int64{fi.DescriptorsTotal(), fi.DescriptorsOffset(), fi.DescriptorsSize()} {
		if got := int64(binary.LittleEndian.Uint64(h[tableOffset+8*i:])); got != want {
			t.Errorf("header field at %d = %d, sif/v2 says %d", tableOffset+8*i, got, want)
		}
	}
	if fi.DescriptorsTotal() <= 0 || fi.DescriptorsSize() != fi.DescriptorsTotal()*descriptorSize {
		t.Errorf("descriptors: %d in %d bytes, want %d bytes each", fi.DescriptorsTotal(), fi.DescriptorsSize(), descriptorSize)
	}
	fi.WithDescriptors(func(d sif.Descriptor) bool {
		raw := readAt(t, path, fi.DescriptorsOffset()+int64(d.ID()-1)*descriptorSize, descriptorSize)
		if off := int64(binary.LittleEndian.Uint64(raw[descOffset:])); off != d.Offset() {
			t.Errorf("object %d: descriptor offset field = %d, sif/v2 says %d", d.ID(), off, d.Offset())
		}
		if n := int64(binary.LittleEndian.Uint64(raw[descSize:])); n != d.Size() {
			t.Errorf("object %d: descriptor size field = %d, sif/v2 says %d", d.ID(), n, d.Size())
		}
		return false
	})
	off, size := testenv.SIFRootfs(t, path)
	if st, err := os.Stat(path); err != nil || off+size != st.Size() {
		t.Errorf("root file system ends at %d, file is %v (%v); want it last", off+size, st.Size(), err)
	}
}

func TestBuildSIFDeterministic(t *testing.T) {
	opts := []testenv.SIFOption{testenv.SIFBare(), testenv.SIFFile("hello", 0o644, []byte("hi\n"))}
	a, err := os.ReadFile(testenv.BuildSIF(t, opts...))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(testenv.BuildSIF(t, opts...))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("two builds of the same image differ (%d and %d bytes), want the same bytes", len(a), len(b))
	}
}

func TestInspectArch(t *testing.T) {
	other := "arm64"
	if runtime.GOARCH == other {
		other = "amd64"
	}
	path := testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFFile("hello", 0o644, nil), testenv.SIFArch(other))
	_, err := Inspect(t.Context(), path)
	if !errors.Is(err, ErrWrongArch) || !strings.Contains(err.Error(), "built for "+other) {
		t.Errorf("Inspect(%s image) = %v, want ErrWrongArch naming %s", other, err, other)
	}
}

func TestInspectRefuses(t *testing.T) {
	good := testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFFile("hello", 0o644, []byte("hi\n")))
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	descTable := loadSIF(t, good).DescriptorsOffset()
	img, err := Inspect(t.Context(), good)
	if err != nil {
		t.Fatal(err)
	}
	root := img.Rootfs
	rootDesc := descTable + int64(root.ID-1)*descriptorSize // IDs count from 1, in table order
	defDesc := descTable                                    // object 1 is the definition file

	patch := func(name string, edits ...func(b []byte)) string {
		b := bytes.Clone(data)
		for _, e := range edits {
			e(b)
		}
		return testenv.WriteTemp(t, name, b)
	}
	put64 := func(at int64, v int64) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint64(b[at:], uint64(v)) }
	}
	other := "arm64"
	if runtime.GOARCH == other {
		other = "amd64"
	}
	fifo := filepath.Join(t.TempDir(), "fifo.sif")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		path string
		want error
		says string // part of the message
	}{
		{"empty file", testenv.WriteTemp(t, "empty.sif", nil), ErrNotSIF, "empty"},
		{"text file", testenv.WriteTemp(t, "x.sif", []byte(strings.Repeat("Bootstrap: docker\n", 10))), ErrNotSIF, "no SIF_MAGIC"},
		{"bare squashfs", testenv.WriteTemp(t, "x.sqfs", data[root.Offset:root.Offset+root.Size]), ErrNotSIF, "bare squashfs"},
		{"directory", t.TempDir(), ErrNotSIF, "it is a directory"},
		{"fifo", fifo, ErrNotSIF, "it is a named pipe"},
		{"truncated in magic", testenv.TruncatedCopy(t, good, 36), ErrNotSIF, "too short"},
		{"truncated in header", testenv.TruncatedCopy(t, good, 100), ErrTruncated, "SIF header"},
		{"truncated in descriptors", testenv.TruncatedCopy(t, good, descTable+100), ErrTruncated, "descriptor table"},
		{"truncated in root fs", testenv.TruncatedCopy(t, good, root.Offset+root.Size/2), ErrTruncated, "copy the image again"},
		{"truncated by one byte", testenv.TruncatedCopy(t, good, int64(len(data)-1)), ErrTruncated, "copy the image again"},
		{"unknown version", patch("v.sif", func(b []byte) { copy(b[42:], "02\x00") }), ErrMalformed, "incompatible SIF version"},
		{"negative descriptor count", patch("n.sif", put64(88, -1)), ErrMalformed, "-1 descriptors"},
		{"huge descriptor count", patch("n.sif", put64(88, 1<<40)), ErrMalformed, "descriptors"},
		{"descriptor table too small", patch("n.sif", put64(104, 585)), ErrMalformed, "reading descriptors"},
		{"descriptor table past the end", patch("n.sif", put64(96, int64(len(data)))), ErrTruncated, "descriptor table"},
		{"negative descriptor table offset", patch("n.sif", put64(96, -4096)), ErrMalformed, "descriptor table at -4096"},
		{"overflowing descriptor table size", patch("n.sif", put64(104, 1<<63-1)), ErrTruncated, "descriptor table"},
		{"negative object offset", patch("o.sif", put64(rootDesc+descOffset, -1)), ErrMalformed, "corrupt"},
		{"object in the header", patch("o.sif", put64(rootDesc+descOffset, 8)), ErrMalformed, "overlaps"},
		{"huge object", patch("o.sif", put64(rootDesc+descSize, 1<<62)), ErrTruncated, "past the end"},
		{"two root file systems", patch("2.sif", func(b []byte) {
			copy(b[defDesc:defDesc+4], b[rootDesc:rootDesc+4])                                               // data type: partition
			copy(b[defDesc+descExtra:defDesc+descriptorSize], b[rootDesc+descExtra:rootDesc+descriptorSize]) // primary system squashfs
		}), ErrMalformed, "2 primary system partitions"},
		{"no root file system", testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFPartType(sif.PartData)), ErrNoRootfs, "Squashfs/Data"},
		{"system partition not primary", testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFPartType(sif.PartSystem)), ErrNoRootfs, "no primary system partition"},
		{"no objects", emptySIF(t), ErrNoRootfs, "(none)"},
		{"ext3 root fs", testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFFSType(sif.FsExt3)), ErrNotSquashfs, "is Ext3"},
		{"encrypted root fs", testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFFSType(sif.FsEncryptedSquashfs)), ErrNotSquashfs, "Encrypted squashfs"},
		{"not squashfs inside", patch("m.sif", func(b []byte) { copy(b[root.Offset:], "junk") }), ErrNotSquashfs, "squashfs magic"},
		{"squashfs v3", patch("m.sif", func(b []byte) { b[root.Offset+28] = 3 }), ErrNotSquashfs, "version 3"},
		{"unknown compressor", patch("m.sif", func(b []byte) { b[root.Offset+20] = 42 }), ErrNotSquashfs, "compressor 42"},
		{"squashfs larger than partition", patch("m.sif", put64(root.Offset+40, root.Size+1)), ErrTruncated, "partition holds"},
		{"wrong arch", testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFArch(other)), ErrWrongArch, "linux/" + runtime.GOARCH},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Inspect(t.Context(), tt.path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Inspect = %+v, %v; want %v", img, err, tt.want)
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("Inspect error %v is not api.ErrInvalid", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "inspect image: ") || !strings.Contains(msg, tt.says) || strings.Contains(msg, tt.path) {
				t.Errorf("Inspect error %q: want it to start with %q and say %q, and leave naming the path to the caller", msg, "inspect image: ", tt.says)
			}
			for _, other := range []error{ErrNotSIF, ErrTruncated, ErrMalformed, ErrNoRootfs, ErrNotSquashfs, ErrWrongArch} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("Inspect error %v is also %v", err, other)
				}
			}
		})
	}
}

func TestInspectNotFound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.sif")
	if _, err := Inspect(t.Context(), path); !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "inspect image: ") {
		t.Errorf("Inspect(missing) = %v, want fs.ErrNotExist prefixed with the path", err)
	}
}

func TestInspectCanceled(t *testing.T) {
	path := testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFFile("hello", 0o644, nil))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Inspect(ctx, path); !errors.Is(err, context.Canceled) {
		t.Errorf("Inspect(canceled ctx) = %v, want context.Canceled", err)
	}
}

func BenchmarkInspect(b *testing.B) {
	blob := make([]byte, 50<<20)
	rand.NewChaCha8([32]byte{}).Read(blob) // incompressible: the image stays ~50 MB
	path := testenv.BuildSIF(b, testenv.SIFBare(), testenv.SIFFile("blob", 0o644, blob))
	for b.Loop() { // headers only: the time does not grow with the image
		if _, err := Inspect(b.Context(), path); err != nil {
			b.Fatal(err)
		}
	}
}

// Layout of a raw descriptor (sif/v2's rawDescriptor, packed).
const (
	descriptorSize = 585
	descOffset     = 17  // int64 Offset, after DataType, Used, ID, GroupID, LinkedID
	descSize       = 25  // int64 Size
	descExtra      = 201 // [384]byte Extra: partition metadata
)

// loadSIF loads the image at path read-only with sif/v2, until the test ends.
func loadSIF(t testing.TB, path string) *sif.FileImage {
	t.Helper()
	fi, err := sif.LoadContainerFromPath(path, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fi.UnloadContainer() })
	return fi
}

func readAt(t testing.TB, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("read %d bytes of %s at %d: %v", n, path, off, err)
	}
	return b
}

// emptySIF is a valid SIF with no data objects.
func emptySIF(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "empty.sif")
	fi, err := sif.CreateContainerAtPath(path, sif.OptCreateDeterministic())
	if err != nil {
		t.Fatal(err)
	}
	if err := fi.UnloadContainer(); err != nil {
		t.Fatal(err)
	}
	return path
}
