package testenv

import (
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/sylabs/sif/v2/pkg/integrity"
	"github.com/sylabs/sif/v2/pkg/sif"
)

// NewKey makes an Ed25519 OpenPGP key (fast to generate) for a test.
func NewKey(tb testing.TB, name string) *openpgp.Entity {
	tb.Helper()
	e, err := openpgp.NewEntity(name, "fxd test", name+"@fxd.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// Fingerprint is e's primary key fingerprint in upper-case hex, as fxd
// reports signers.
func Fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

// SignedCopy signs a copy of the SIF image at path with e, as apptainer
// sign does (one signature per object group), and returns the copy's path.
func SignedCopy(tb testing.TB, path string, e *openpgp.Entity) string {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	out := WriteTemp(tb, "signed.sif", data)
	fi, err := sif.LoadContainerFromPath(out)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := integrity.NewSigner(fi, integrity.OptSignWithEntity(e))
	if err == nil {
		err = s.Sign()
	}
	if uerr := fi.UnloadContainer(); err == nil {
		err = uerr
	}
	if err != nil {
		tb.Fatalf("sign %s: %v", out, err)
	}
	return out
}

// PublicKeyFile writes the public keys of es, armored, as gpg --export
// --armor does, and returns the file's path.
func PublicKeyFile(tb testing.TB, es ...*openpgp.Entity) string {
	tb.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range es {
		if err := e.Serialize(w); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return WriteTemp(tb, "keys.asc", b.Bytes())
}
