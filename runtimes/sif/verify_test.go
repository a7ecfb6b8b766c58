package sif

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/sylabs/sif/v2/pkg/sif"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

func TestVerify(t *testing.T) {
	signer, stranger := testenv.NewKey(t, "signer"), testenv.NewKey(t, "stranger")
	unsigned := testenv.BuildSIF(t, testenv.SIFFile("opt/fn/serve.sh", 0o755, []byte(servable)))
	signed := testenv.SignedCopy(t, unsigned, signer)
	fp := testenv.Fingerprint(signer)

	t.Run("good", func(t *testing.T) {
		signers, err := Verify(t.Context(), signed, openpgp.EntityList{signer})
		if err != nil || len(signers) != 1 || signers[0] != fp {
			t.Fatalf("Verify = %v, %v; want [%s]", signers, err, fp)
		}
		img, err := Inspect(t.Context(), signed)
		if err != nil {
			t.Fatalf("Inspect(signed) = %v", err)
		}
		if !slices.ContainsFunc(img.Objects, func(o Object) bool { return o.Type == sif.DataSignature.String() }) {
			t.Errorf("Inspect(signed).Objects = %+v, want a signature object", img.Objects)
		}
	})
	t.Run("public keyring file", func(t *testing.T) {
		kr, err := LoadKeyRing(testenv.PublicKeyFile(t, signer, stranger))
		if err != nil {
			t.Fatalf("LoadKeyRing = %v", err)
		}
		if len(kr) != 2 || kr[0].PrivateKey != nil {
			t.Fatalf("LoadKeyRing = %d entities (private key %v), want 2 public ones", len(kr), kr[0].PrivateKey != nil)
		}
		if signers, err := Verify(t.Context(), signed, kr); err != nil || len(signers) != 1 || signers[0] != fp {
			t.Errorf("Verify(public keyring) = %v, %v; want [%s]", signers, err, fp)
		}
	})

	data, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Inspect(t.Context(), signed)
	if err != nil {
		t.Fatal(err)
	}
	tamper := func(at int64, b byte) string {
		d := bytes.Clone(data)
		d[at] ^= b
		return testenv.WriteTemp(t, "tampered.sif", d)
	}
	tests := []struct {
		name string
		path string
		kr   openpgp.KeyRing
		want error
		says string
	}{
		{"unsigned", unsigned, openpgp.EntityList{signer}, ErrUnsigned, "signature not found"},
		{"unknown key", signed, openpgp.EntityList{stranger}, ErrUnknownSigner, fp},
		{"root fs changed", tamper(img.Rootfs.Offset+img.Rootfs.Size/2, 0x55), openpgp.EntityList{signer}, ErrBadSignature, "changed after it was signed"},
		{"header changed", tamper(3, 'x'), openpgp.EntityList{signer}, ErrBadSignature, "header integrity"},
		{"signature corrupt", tamper(sigOffset(t, img)+100, 0x01), openpgp.EntityList{signer}, ErrBadSignature, "signature"},
		{"no root fs", testenv.SignedCopy(t, testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFPartType(sif.PartData)), signer), openpgp.EntityList{signer}, ErrNoRootfs, "primary system partition"},
		{"not a SIF", testenv.WriteTemp(t, "x.sif", []byte("hello")), openpgp.EntityList{signer}, ErrNotSIF, "SIF"},
		{"no keyring", signed, nil, api.ErrInvalid, "no keyring"},
		{"empty keyring", signed, openpgp.EntityList{}, api.ErrInvalid, "no keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signers, err := Verify(t.Context(), tt.path, tt.kr)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, %v; want %v", signers, err, tt.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "verify image: ") || !strings.Contains(msg, tt.says) || strings.Contains(msg, tt.path) {
				t.Errorf("Verify error %q: want it to start with %q and say %q, and leave naming the path to the caller", msg, "verify image: ", tt.says)
			}
			switch tt.want {
			case ErrUnsigned, ErrUnknownSigner, ErrBadSignature:
				if !errors.Is(err, api.ErrDenied) {
					t.Errorf("Verify error %v is not api.ErrDenied", err)
				}
			}
		})
	}

	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := Verify(ctx, signed, openpgp.EntityList{signer}); !errors.Is(err, context.Canceled) {
			t.Errorf("Verify(canceled ctx) = %v, want context.Canceled", err)
		}
	})
}

func TestLoadKeyRingRefuses(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":           nil,
		"garbage":         []byte("not a key\n"),
		"armored garbage": []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n"),
	} {
		t.Run(name, func(t *testing.T) {
			path := testenv.WriteTemp(t, "keys.asc", data)
			if kr, err := LoadKeyRing(path); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "gpg --export") {
				t.Errorf("LoadKeyRing(%s) = %d keys, %v; want api.ErrInvalid with a hint", name, len(kr), err)
			}
		})
	}
	if _, err := LoadKeyRing(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadKeyRing(missing) = %v, want fs.ErrNotExist", err)
	}
}

// sigOffset is where the first signature object of img starts.
func sigOffset(t testing.TB, img Image) int64 {
	t.Helper()
	for _, o := range img.Objects {
		if o.Type == sif.DataSignature.String() {
			return o.Offset
		}
	}
	t.Fatalf("no signature object in %+v", img.Objects)
	return 0
}
