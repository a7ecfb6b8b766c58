package sif

import (
	"context"
	"fmt"
	"runtime"
	"strings"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// Image is what Inspect learns about a valid SIF image.
type Image struct {
	// Size is the file size in bytes.
	Size int64
	// Arch is the root file system's architecture, GOARCH-style ("amd64").
	Arch string
	// Rootfs is the primary system partition: a squashfs whose bytes are
	// Rootfs.Offset to Rootfs.Offset+Rootfs.Size of the file, for
	// `mount -o loop,offset=,sizelimit=`, squashfuse -o offset= or
	// unsquashfs -o.
	Rootfs Object
	// Compression is the root squashfs's compressor: gzip, lzma, lzo, xz,
	// lz4 or zstd.
	Compression string
	// Objects summarizes every data object, in descriptor order.
	Objects []Object
}

// Object summarizes one SIF data object (descriptor).
type Object struct {
	ID    uint32
	Group uint32 // 0 when in no object group
	// Type is sif/v2's name of the data type: "FS" (partition),
	// "Def.FILE", "Signature", "JSON.Labels", "Env.Vars", …
	Type   string
	Name   string
	Offset int64
	Size   int64
	// FS, Part and Arch describe partitions ("Squashfs", "*System"
	// for the primary system partition, "amd64"); empty otherwise.
	FS, Part, Arch string
}

// summarize describes d, and returns its file system and partition types
// (0 unless d is a partition).
func summarize(d sif.Descriptor) (Object, sif.FSType, sif.PartType) {
	o := Object{ID: d.ID(), Group: d.GroupID(), Type: d.DataType().String(), Name: d.Name(), Offset: d.Offset(), Size: d.Size()}
	fs, pt, arch, err := d.PartitionMetadata() // fails for other objects
	if err != nil {
		return o, 0, 0
	}
	o.FS, o.Part, o.Arch = fs.String(), pt.String(), arch
	return o, fs, pt
}

// describe lists objects for messages: "1 Def.FILE, 2 FS Squashfs/Data/amd64".
func describe(objs []Object) string {
	if len(objs) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, o := range objs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", o.ID, o.Type)
		if o.FS != "" {
			fmt.Fprintf(&b, " %s/%s/%s", o.FS, o.Part, o.Arch)
		}
	}
	return b.String()
}

// Inspect reads and checks the SIF image at path and returns its size,
// architecture and root file system. It refuses, with an error wrapping one
// of ErrNotSIF, ErrTruncated, ErrMalformed, ErrNoRootfs, ErrNotSquashfs or
// ErrWrongArch that says how to fix the image, anything but a SIF whose
// primary system partition is a squashfs for the wanted architecture.
// Errors opening the file are the os ones (errors.Is fs.ErrNotExist,
// fs.ErrPermission); no error names path, which the caller knows. It reads the header, the descriptors and the
// squashfs superblock, not the data: the caller that copies an image
// hashes it on the way (its content address). It stops with ctx.Err()
// when ctx is done. Inspect a private copy, which nothing else writes.
// Inspect is safe for concurrent use and writes nothing.
func Inspect(ctx context.Context, path string) (Image, error) {
	img, err := inspect(ctx, path, runtime.GOARCH)
	if err != nil {
		return Image{}, fmt.Errorf("inspect image: %w", err)
	}
	return img, nil
}

func inspect(ctx context.Context, path, arch string) (Image, error) {
	im, err := open(ctx, path)
	if err != nil {
		return Image{}, err
	}
	defer im.close()
	root, err := im.rootfs()
	if err != nil {
		return Image{}, err
	}
	if im.rootFS != sif.FsSquash {
		return Image{}, fmt.Errorf("%w: the primary system partition (object %d) is %s; fxd runs squashfs root file systems only: rebuild the image with apptainer build (unencrypted, which makes squashfs)", ErrNotSquashfs, root.ID, root.FS)
	}
	comp, err := checkSquashfs(im.r, root.Offset, root.Size)
	if err != nil {
		return Image{}, fmt.Errorf("primary system partition (object %d): %w", root.ID, err)
	}
	if root.Arch != arch {
		return Image{}, fmt.Errorf("%w: the root file system is built for %s, not %s; build or pull the image for linux/%s", ErrWrongArch, root.Arch, arch, arch)
	}
	if err := ctx.Err(); err != nil {
		return Image{}, err
	}
	return Image{
		Size:        im.size,
		Arch:        root.Arch,
		Rootfs:      root,
		Compression: comp,
		Objects:     im.objects,
	}, nil
}
