package sif

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/sylabs/sif/v2/pkg/sif"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

// FuzzInspect feeds arbitrary files to Inspect and Verify: they must never
// panic, must refuse with an error of an api kind, and what Inspect accepts
// must be consistent. Seeds are a small real image, the same image signed,
// truncations of it, and headers with bad counts and offsets.
func FuzzInspect(f *testing.F) {
	key := testenv.NewKey(f, "fuzz")
	img := smallSIF(f)
	signed, err := os.ReadFile(testenv.SignedCopy(f, testenv.WriteTemp(f, "small.sif", img), key))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(img)
	f.Add(signed)
	for _, n := range []int{0, 10, 42, 127, 128, 200, len(img) / 2, len(img) - 1} {
		f.Add(img[:n])
	}
	for _, field := range []int{88, 96, 104, 112, 120} {
		b := bytes.Clone(img)
		binary.LittleEndian.PutUint64(b[field:], 1<<63)
		f.Add(b)
	}
	dir := f.TempDir()
	kr := openpgp.EntityList{key}
	f.Fuzz(func(t *testing.T, data []byte) {
		tmp, err := os.CreateTemp(dir, "fuzz-*.sif")
		if err != nil {
			t.Fatal(err)
		}
		path := tmp.Name()
		defer os.Remove(path)
		if _, err := tmp.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := tmp.Close(); err != nil {
			t.Fatal(err)
		}

		got, err := Inspect(t.Context(), path)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("Inspect error %v is of no api kind", err)
			}
		} else {
			r := got.Rootfs
			if got.Size != int64(len(data)) || r.Offset < headerSize || r.Size < sqSuperSize || r.Offset+r.Size > got.Size ||
				string(data[r.Offset:r.Offset+4]) != "hsqs" {
				t.Fatalf("Inspect accepted an inconsistent image: %+v", got)
			}
		}

		if _, err := Verify(t.Context(), path, kr); err != nil && !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrDenied) {
			t.Fatalf("Verify error %v is of no api kind", err)
		}
	})
}

// smallSIF is a real image of under 3 KiB: an unpadded squashfs of one
// file, in a SIF with room for 4 descriptors (instead of sif/v2's default
// 48, 28 KiB of zeros). Small seeds keep the fuzzer's mutations on fields
// that matter and its minimization of new inputs short enough for CI's 10s.
func smallSIF(tb testing.TB) []byte {
	tb.Helper()
	big := testenv.BuildSIF(tb, testenv.SIFBare(), testenv.SIFNoDeffile(), testenv.SIFFile("hello", 0o644, []byte("hi\n")))
	off, size := testenv.SIFRootfs(tb, big)
	sqfs := readAt(tb, big, off, int(size))
	sqfs = sqfs[:binary.LittleEndian.Uint64(sqfs[sqBytesOffset:])] // drop mksquashfs's padding to 4 KiB
	di, err := sif.NewDescriptorInput(sif.DataPartition, bytes.NewReader(sqfs),
		sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, "amd64"), sif.OptObjectAlignment(8))
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "small.sif")
	out, err := sif.CreateContainerAtPath(path, sif.OptCreateDeterministic(),
		sif.OptCreateWithDescriptorCapacity(4), sif.OptCreateWithDescriptors(di))
	if err != nil {
		tb.Fatal(err)
	}
	if err := out.UnloadContainer(); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
