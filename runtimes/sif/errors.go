package sif

import "fxd.dev/fxd/api"

// kindError is a sentinel that is also an api error kind, so the daemon maps
// it to an HTTP status while callers can branch on the exact reason.
type kindError struct {
	text string
	kind error
}

func (e *kindError) Error() string { return e.text }
func (e *kindError) Unwrap() error { return e.kind }

// Reasons an image is refused. Each is an api.ErrInvalid, except the
// signature ones, which are api.ErrDenied.
var (
	// ErrNotSIF means the file is not a SIF image (no SIF magic).
	ErrNotSIF error = &kindError{"not a SIF image", api.ErrInvalid}
	// ErrTruncated means the file ends before its header, descriptors or
	// data objects do: a copy or download cut short.
	ErrTruncated error = &kindError{"truncated SIF image", api.ErrInvalid}
	// ErrMalformed means the header or descriptors are inconsistent
	// (negative sizes, overlaps, an unknown SIF version, two root
	// filesystems).
	ErrMalformed error = &kindError{"malformed SIF image", api.ErrInvalid}
	// ErrNoRootfs means the image has no primary system partition.
	ErrNoRootfs error = &kindError{"no root file system in SIF image", api.ErrInvalid}
	// ErrNotSquashfs means the root file system is not squashfs (ext3,
	// encrypted squashfs, raw) or its data is not a squashfs.
	ErrNotSquashfs error = &kindError{"root file system is not squashfs", api.ErrInvalid}
	// ErrWrongArch means the root file system is built for another CPU
	// architecture than the one wanted.
	ErrWrongArch error = &kindError{"wrong architecture", api.ErrInvalid}
	// ErrUnsigned means the image, or its root file system, carries no
	// signature.
	ErrUnsigned error = &kindError{"unsigned SIF image", api.ErrDenied}
	// ErrUnknownSigner means the image is signed by a key that is not in
	// the keyring.
	ErrUnknownSigner error = &kindError{"SIF image signed by an unknown key", api.ErrDenied}
	// ErrBadSignature means a signature does not verify: the image was
	// changed after signing, or the signature is corrupt.
	ErrBadSignature error = &kindError{"bad SIF signature", api.ErrDenied}
)
