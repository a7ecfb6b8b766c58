package sif

import (
	"bytes"
	"fmt"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"

	"fxd.dev/fxd/api"
)

// LoadKeyRing reads the OpenPGP public keys that Verify trusts from the file
// at path, armored (gpg --export --armor) or binary (gpg --export).
func LoadKeyRing(path string) (openpgp.EntityList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load keyring: %w", err)
	}
	var el openpgp.EntityList
	if bytes.Contains(b[:min(len(b), 1024)], []byte("-----BEGIN PGP")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(b))
	}
	if err != nil {
		return nil, fmt.Errorf("load keyring %s: %w: %v; export the public keys with gpg --export --armor KEYID", path, api.ErrInvalid, err)
	}
	if len(el) == 0 {
		return nil, fmt.Errorf("load keyring %s: %w: no keys in it; export the public keys with gpg --export --armor KEYID", path, api.ErrInvalid)
	}
	return el, nil
}
