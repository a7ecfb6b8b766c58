package sif

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/sylabs/sif/v2/pkg/integrity"
	"github.com/sylabs/sif/v2/pkg/sif"

	"fxd.dev/fxd/api"
)

// maxSignatureSize bounds a signature object: sif/v2 reads signatures
// whole into memory, and real ones are a few KiB.
const maxSignatureSize = 1 << 20

// Verify checks the OpenPGP signatures of the SIF image at path against the
// public keys in kr, with sif/v2's integrity package: every object group
// must be signed (as apptainer sign does), each signature must verify with
// a key of kr over the current header, descriptors and data, and the root
// file system must be among what was verified. It returns the fingerprints
// (upper-case hex) of the keys that signed. It first checks the header and
// descriptors and finds the root file system as Inspect does (with the same
// errors), then refuses the image with an error wrapping ErrUnsigned,
// ErrUnknownSigner or ErrBadSignature (api.ErrDenied) when the signatures
// do not hold. It reads all signed data, and stops with ctx.Err() when ctx
// is done; call it on the private copy Inspect checked. Errors do not name
// path: the caller knows which file it gave. Verify is safe for concurrent use if kr is.
func Verify(ctx context.Context, path string, kr openpgp.KeyRing) ([]string, error) {
	signers, err := verify(ctx, path, kr)
	if err != nil {
		return nil, fmt.Errorf("verify image: %w", err)
	}
	return signers, nil
}

func verify(ctx context.Context, path string, kr openpgp.KeyRing) ([]string, error) {
	if kr == nil {
		return nil, fmt.Errorf("%w: no keyring given; configure the public keys the site trusts", api.ErrInvalid)
	}
	if el, ok := kr.(openpgp.EntityList); ok && len(el) == 0 {
		return nil, fmt.Errorf("%w: the keyring holds no keys; add the public keys the site trusts", api.ErrInvalid)
	}
	im, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer im.close()
	root, err := im.rootfs()
	if err != nil {
		return nil, err
	}
	if err := checkSignatureObjects(im.objects); err != nil {
		return nil, err
	}
	var (
		verified = map[uint32]bool{}
		signers  []string
		failedFP string // signer of the last signature that did not verify
	)
	cb := func(r integrity.VerifyResult) bool {
		if r.Error() != nil {
			if _, fp, err := r.Signature().SignatureMetadata(); err == nil {
				failedFP = strings.ToUpper(hex.EncodeToString(fp))
			}
			return false
		}
		for _, d := range r.Verified() {
			verified[d.ID()] = true
		}
		if e := r.Entity(); e != nil && e.PrimaryKey != nil {
			fp := strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
			if !slices.Contains(signers, fp) {
				signers = append(signers, fp)
			}
		}
		return false
	}
	v, err := integrity.NewVerifier(im.fi, integrity.OptVerifyWithKeyRing(kr), integrity.OptVerifyCallback(cb))
	if err == nil {
		err = v.Verify()
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, signatureError(err, failedFP)
	}
	if !verified[root.ID] {
		return nil, fmt.Errorf("%w: the root file system (object %d) is not covered by a signature; sign the image with apptainer sign, which signs every object group", ErrUnsigned, root.ID)
	}
	return signers, nil
}

// checkSignatureObjects refuses signature objects too large to be real.
// An image without any fails later, in integrity's verifier.
func checkSignatureObjects(objs []Object) error {
	for _, o := range objs {
		if o.Type == sif.DataSignature.String() && o.Size > maxSignatureSize {
			return fmt.Errorf("%w: signature object %d is %d bytes (at most %d); re-sign the image", ErrBadSignature, o.ID, o.Size, maxSignatureSize)
		}
	}
	return nil
}

// signatureError turns an error of integrity's verifier into one of ours.
func signatureError(err error, fp string) error {
	switch {
	case errors.Is(err, &integrity.SignatureNotFoundError{}):
		return fmt.Errorf("%w: %v; sign the whole image with apptainer sign, which signs every object group", ErrUnsigned, err)
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		if fp == "" {
			fp = "unknown"
		}
		return fmt.Errorf("%w: signed by key %s, which is not in the site keyring; sign it with a key the site trusts, or ask the site to add that public key", ErrUnknownSigner, fp)
	}
	return fmt.Errorf("%w: %v; the image changed after it was signed or its signature is corrupt: rebuild or re-sign it", ErrBadSignature, err)
}
