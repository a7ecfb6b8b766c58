// Package sif reads and checks SIF images (the Singularity/Apptainer image
// format) before fxd accepts them as runtimes. Inspect validates the global
// header and every descriptor with github.com/sylabs/sif/v2, finds the
// primary system partition, checks that it is squashfs for the wanted
// architecture and returns what the runtime repository records: the size,
// the architecture, and where the root filesystem lies in the file (offset
// and size, to loop-mount or extract it there); it reads no data, so the
// repository hashes the image once, while it copies it.
// Verify checks the image's OpenPGP signatures against a keyring with
// sif/v2's integrity package.
//
// Every refusal wraps a sentinel of this package (ErrNotSIF, ErrTruncated,
// ErrMalformed, ErrNoRootfs, ErrNotSquashfs, ErrWrongArch, ErrUnsigned,
// ErrUnknownSigner, ErrBadSignature), each of which is also an api kind
// (api.ErrInvalid, or api.ErrDenied for signatures), and says how to fix the
// image. Input is never trusted: bounds are checked before sif/v2 allocates
// or reads anything, and FuzzInspect keeps it that way.
//
// It owns no state: no files are written, nothing is cached. It imports only
// api among fxd packages (conf is allowed too); it must not import daemon,
// cmd, or other runtimes packages.
package sif
