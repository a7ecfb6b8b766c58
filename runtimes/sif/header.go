package sif

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Where sif/v2 writes the global header fields that checkHeader reads
// (little endian, packed); TestLayout checks them against sif/v2.
const (
	headerSize  = 128
	magicOffset = 32
	sifMagic    = "SIF_MAGIC\x00"
	// tableOffset holds DescriptorsTotal, DescriptorsOffset and
	// DescriptorsSize, int64 each.
	tableOffset = 88
	// maxDescriptors bounds what sif/v2 allocates for the descriptor
	// table (≈2.4 MB); images hold a few (sif/v2 makes room for 48).
	maxDescriptors = 4096
)

// checkHeader checks the global header of an image of size bytes for what
// sif/v2's LoadContainer cannot be trusted with: the magic, so that other
// files get ErrNotSIF (sif/v2's error for it is unexported), and the
// descriptor table, because sif/v2 allocates DescriptorsTotal descriptors
// before reading them (a negative count panics, a huge one exhausts memory)
// and a table past the end of the file is a truncation. sif/v2 checks the
// version.
func checkHeader(r io.ReaderAt, size int64) error {
	buf := make([]byte, headerSize)
	n, err := io.NewSectionReader(r, 0, size).ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return fmt.Errorf("read header: %w", err)
	}
	buf = buf[:n]
	if len(buf) < magicOffset+len(sifMagic) || string(buf[magicOffset:magicOffset+len(sifMagic)]) != sifMagic {
		return notSIF(buf)
	}
	if len(buf) < headerSize {
		return fmt.Errorf("%w: the file is %d bytes, shorter than the %d-byte SIF header; copy the image again", ErrTruncated, len(buf), headerSize)
	}
	field := func(i int) int64 { return int64(binary.LittleEndian.Uint64(buf[tableOffset+8*i:])) }
	total, off, tsize := field(0), field(1), field(2)
	switch {
	case total < 0 || total > maxDescriptors:
		return fmt.Errorf("%w: header declares %d descriptors (at most %d); the header is corrupt, rebuild the image", ErrMalformed, total, maxDescriptors)
	case off < 0 || tsize < 0:
		return fmt.Errorf("%w: descriptor table at %d (%d bytes); the header is corrupt, rebuild the image", ErrMalformed, off, tsize)
	case !within(off, tsize, size):
		return fmt.Errorf("%w: the descriptor table ends at byte %d, past the end of the %d-byte file; copy the image again", ErrTruncated, end(off, tsize), size)
	}
	return nil
}

// notSIF explains what a file without the SIF magic looks like.
func notSIF(head []byte) error {
	const fix = "give the path of a .sif file made by apptainer build or singularity build"
	switch {
	case len(head) == 0:
		return fmt.Errorf("%w: the file is empty; %s", ErrNotSIF, fix)
	case bytes.HasPrefix(head, []byte("hsqs")):
		return fmt.Errorf("%w: it is a bare squashfs file; wrap it in a SIF (apptainer build image.sif <sandbox or squashfs>)", ErrNotSIF)
	case len(head) < magicOffset+len(sifMagic):
		return fmt.Errorf("%w: the file is %d bytes, too short for a SIF header; %s", ErrNotSIF, len(head), fix)
	}
	return fmt.Errorf("%w: no SIF_MAGIC at byte %d; %s", ErrNotSIF, magicOffset, fix)
}

// within reports whether [off, off+n) lies in [0, size), for non-negative
// off and n, without overflowing.
func within(off, n, size int64) bool { return off >= 0 && n >= 0 && off <= size && n <= size-off }

// end is off+n for messages, saturated instead of overflowing.
func end(off, n int64) int64 {
	if off > 1<<62 || n > 1<<62 {
		return 1<<63 - 1
	}
	return off + n
}
