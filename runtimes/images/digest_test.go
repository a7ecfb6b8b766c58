package images

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

// TestAddDigest stores an image sent by digest, as a node agent does,
// and serves it back with OpenDigest, as the daemon does for its nodes.
func TestAddDigest(t *testing.T) {
	daemon := newStore(t, Config{})
	node := newStore(t, Config{})
	path := testenv.BuildSIF(t)
	img := mustAdd(t, daemon, "python", "", path)

	f, err := daemon.OpenDigest(img.Digest)
	if err != nil {
		t.Fatalf("OpenDigest(%s) = %v", img.Digest, err)
	}
	defer f.Close()
	got, err := node.AddDigest(t.Context(), img.Digest, f, img.Size, "daemon", Limits{})
	if err != nil {
		t.Fatalf("AddDigest = %v", err)
	}
	if got.Digest != img.Digest || got.Size != img.Size || got.Arch != img.Arch || got.Source != "daemon" {
		t.Errorf("AddDigest = %+v, want digest %s, size %d", got, img.Digest, img.Size)
	}
	if have, ok := node.HasDigest(img.Digest); !ok || have.Digest != img.Digest {
		t.Errorf("HasDigest after AddDigest = %+v, %v; want the image", have, ok)
	}
	// A second add of the same digest reads nothing.
	again, err := node.AddDigest(t.Context(), img.Digest, failingReader{}, img.Size, "daemon", Limits{})
	if err != nil || again.Digest != img.Digest {
		t.Errorf("AddDigest again = %+v, %v; want the stored image without reading", again, err)
	}
	if blobs := files(t, node, "blobs/sha256"); len(blobs) != 1 {
		t.Errorf("node blobs = %v, want one", blobs)
	}

	if err := daemon.Remove("python", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := daemon.OpenDigest(img.Digest); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("OpenDigest after its name is removed = %v, want api.ErrNotFound", err)
	}
	if _, err := daemon.OpenDigest("sha256:../../etc/passwd"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("OpenDigest(bad digest) = %v, want api.ErrInvalid", err)
	}
}

// TestAddDigestRefusals: bytes that do not hash to the digest, a short
// stream and a device node are refused and leave nothing behind.
func TestAddDigestRefusals(t *testing.T) {
	good := testenv.BuildSIF(t)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	digestOf := func(path string) string {
		t.Helper()
		s := newStore(t, Config{})
		return mustAdd(t, s, "x", "", path).Digest
	}
	goodDigest := digestOf(good)
	device := testenv.BuildSIF(t, testenv.SIFBare(), testenv.SIFFile("bin/sh", 0o755, nil), testenv.SIFDevice("dev/console", 5, 1))
	deviceData, err := os.ReadFile(device)
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(data)
	other[len(other)-1] ^= 0xff
	tests := []struct {
		name   string
		digest string
		data   []byte
		size   int64
		want   string
	}{
		{"other bytes", goodDigest, other, int64(len(other)), "hash to sha256:"},
		{"cut short", goodDigest, data[:len(data)/2], int64(len(data)), "hash to sha256:"},
		{"bad digest", "sha256:XYZ", data, int64(len(data)), "want sha256: and 64"},
		{"no size", goodDigest, data, 0, "size 0"},
		{"device node", sha256Of(deviceData), deviceData, int64(len(deviceData)), "device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Config{})
			img, err := s.AddDigest(t.Context(), tt.digest, bytes.NewReader(tt.data), tt.size, "daemon", Limits{})
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("AddDigest = %+v, %v; want api.ErrInvalid saying %q", img, err, tt.want)
			}
			requireEmpty(t, s)
		})
	}
}

// failingReader fails every read.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// sha256Of is the digest of b as the store writes it.
func sha256Of(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
