package sif

import (
	"encoding/binary"
	"fmt"
	"io"
)

// squashfs superblock fields (little endian), from the kernel's
// fs/squashfs/squashfs_fs.h.
const (
	sqMagic       = 0x73717368 // "hsqs"
	sqSuperSize   = 96
	sqCompOffset  = 20 // u16 compression id
	sqMajorOffset = 28 // u16 s_major, must be 4
	sqBytesOffset = 40 // u64 bytes_used
)

// sqCompressor names a squashfs compression id, or returns "".
func sqCompressor(id uint16) string {
	switch id {
	case 1:
		return "gzip"
	case 2:
		return "lzma"
	case 3:
		return "lzo"
	case 4:
		return "xz"
	case 5:
		return "lz4"
	case 6:
		return "zstd"
	}
	return ""
}

// checkSquashfs checks the squashfs superblock of the size-byte partition
// at off: magic, version 4.0, a known compressor, and a file system that
// fits the partition. It returns the compressor's name.
func checkSquashfs(r io.ReaderAt, off, size int64) (string, error) {
	if size < sqSuperSize {
		return "", fmt.Errorf("%w: the partition is %d bytes, smaller than a squashfs superblock; rebuild the image", ErrNotSquashfs, size)
	}
	sb := make([]byte, sqSuperSize)
	if _, err := r.ReadAt(sb, off); err != nil {
		return "", fmt.Errorf("read squashfs superblock: %w", err)
	}
	if binary.LittleEndian.Uint32(sb) != sqMagic {
		return "", fmt.Errorf("%w: the partition is labelled squashfs but does not start with the squashfs magic; rebuild the image", ErrNotSquashfs)
	}
	if major := binary.LittleEndian.Uint16(sb[sqMajorOffset:]); major != 4 {
		return "", fmt.Errorf("%w: squashfs version %d, want 4; rebuild the image with a current mksquashfs", ErrNotSquashfs, major)
	}
	comp := sqCompressor(binary.LittleEndian.Uint16(sb[sqCompOffset:]))
	if comp == "" {
		return "", fmt.Errorf("%w: unknown squashfs compressor %d; rebuild the image with gzip, xz, lz4 or zstd", ErrNotSquashfs, binary.LittleEndian.Uint16(sb[sqCompOffset:]))
	}
	if used := binary.LittleEndian.Uint64(sb[sqBytesOffset:]); used > uint64(size) {
		return "", fmt.Errorf("%w: the squashfs needs %d bytes, its partition holds %d; copy the image again", ErrTruncated, used, size)
	}
	return comp, nil
}
