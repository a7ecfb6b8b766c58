package sif

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Layout of the SIF global header and descriptors, as sif/v2 writes them
// (little endian, packed). header_test.go checks them against real images.
const (
	headerSize     = 128
	descriptorSize = 585
	magicOffset    = 32
	// maxDescriptors bounds what sif/v2 allocates for the descriptor
	// table (≈2.4 MB); images hold a few (sif/v2 makes room for 48).
	maxDescriptors = 4096
	sifMagic       = "SIF_MAGIC\x00"
	sifVersion     = "01\x00"
)

// rawHeader mirrors sif/v2's unexported on-disk header, so that its fields
// are checked before sif/v2 trusts them (it allocates DescriptorsTotal
// descriptors, and a negative count would panic).
type rawHeader struct {
	LaunchScript      [32]byte
	Magic             [10]byte
	Version           [3]byte
	Arch              [3]byte
	ID                [16]byte
	CreatedAt         int64
	ModifiedAt        int64
	DescriptorsFree   int64
	DescriptorsTotal  int64
	DescriptorsOffset int64
	DescriptorsSize   int64
	DataOffset        int64
	DataSize          int64
}

// readHeader reads and checks the global header of an image of size bytes.
func readHeader(r io.ReaderAt, size int64) (rawHeader, error) {
	var h rawHeader
	buf := make([]byte, headerSize)
	n, err := r.ReadAt(buf, 0)
	if n < len(buf) && err != io.EOF && err != nil {
		return h, fmt.Errorf("read header: %w", err)
	}
	buf = buf[:n]
	if int64(n) > size {
		buf = buf[:size] // the file shrank since it was measured
	}
	if len(buf) < magicOffset+len(sifMagic) || string(buf[magicOffset:magicOffset+len(sifMagic)]) != sifMagic {
		return h, notSIF(buf)
	}
	if len(buf) < headerSize {
		return h, fmt.Errorf("%w: the file is %d bytes, shorter than the %d-byte SIF header; copy the image again", ErrTruncated, len(buf), headerSize)
	}
	if err := binary.Read(bytes.NewReader(buf), binary.LittleEndian, &h); err != nil {
		return h, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if string(h.Version[:]) != sifVersion {
		return h, fmt.Errorf("%w: SIF format version %q is not supported (want \"01\"); rebuild the image with a current apptainer or singularity", ErrMalformed, bytes.TrimRight(h.Version[:], "\x00"))
	}
	return h, checkLayout(h, size)
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

// checkLayout checks that the descriptor table and the data section lie in
// a file of size bytes, without overflow.
func checkLayout(h rawHeader, size int64) error {
	switch {
	case h.DescriptorsTotal < 0 || h.DescriptorsTotal > maxDescriptors:
		return fmt.Errorf("%w: header declares %d descriptors (at most %d); the header is corrupt, rebuild the image", ErrMalformed, h.DescriptorsTotal, maxDescriptors)
	case h.DescriptorsOffset < headerSize || h.DescriptorsSize < h.DescriptorsTotal*descriptorSize:
		return fmt.Errorf("%w: descriptor table at %d (%d bytes) cannot hold %d descriptors after the header; the header is corrupt, rebuild the image", ErrMalformed, h.DescriptorsOffset, h.DescriptorsSize, h.DescriptorsTotal)
	case h.DataOffset < 0 || h.DataSize < 0:
		return fmt.Errorf("%w: data section at %d (%d bytes); the header is corrupt, rebuild the image", ErrMalformed, h.DataOffset, h.DataSize)
	}
	if !within(h.DescriptorsOffset, h.DescriptorsSize, size) {
		return fmt.Errorf("%w: the descriptor table ends at byte %d, past the end of the %d-byte file; copy the image again", ErrTruncated, end(h.DescriptorsOffset, h.DescriptorsSize), size)
	}
	if !within(h.DataOffset, h.DataSize, size) {
		return fmt.Errorf("%w: the data section ends at byte %d, past the end of the %d-byte file; copy the image again", ErrTruncated, end(h.DataOffset, h.DataSize), size)
	}
	return nil
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
