package cache

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
)

func TestParseDigest(t *testing.T) {
	good := digestOf("x")
	tests := []struct {
		name   string
		digest string
		ok     bool
	}{
		{"good", good, true},
		{"empty", "", false},
		{"no hex", "sha256:", false},
		{"upper case", "sha256:" + strings.ToUpper(hexOf(good)), false},
		{"other algorithm", "sha512:" + hexOf(good), false},
		{"no algorithm", hexOf(good), false},
		{"short", good[:len(good)-1], false},
		{"long", good + "0", false},
		{"newline", good + "\n", false},
		{"path", "sha256:../../../../../../../../../../../../../../../../../../etc/passwd", false},
		{"slash", "sha256:/" + hexOf(good)[1:], false},
		{"not hex", "sha256:" + strings.Repeat("g", 64), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hex, err := ParseDigest(tt.digest)
			if tt.ok && (err != nil || "sha256:"+hex != tt.digest) {
				t.Errorf("ParseDigest(%q) = %q, %v; want its hex", tt.digest, hex, err)
			}
			if !tt.ok && !errors.Is(err, api.ErrInvalid) {
				t.Errorf("ParseDigest(%q) = %q, %v; want api.ErrInvalid", tt.digest, hex, err)
			}
		})
	}
}

// FuzzParseDigest: what ParseDigest accepts is a digest whose hex part
// names one file inside the blob directory; the rest is refused as
// api.ErrInvalid, with a message of bounded length.
func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{digestOf("x"), "", "sha256:", "sha256:../x", strings.ToUpper(digestOf("y")), strings.Repeat("a", 1000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hex, err := ParseDigest(s)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) || len(err.Error()) > 512 {
				t.Fatalf("ParseDigest(%q) = %v, want a short api.ErrInvalid", s, err)
			}
			return
		}
		if "sha256:"+hex != s || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
			t.Fatalf("ParseDigest(%q) = %q, want the 64 hex digits after sha256:", s, hex)
		}
		if p := filepath.Join("/blobs", hex); filepath.Dir(p) != "/blobs" || filepath.Base(p) != hex {
			t.Fatalf("ParseDigest(%q) = %q, which leaves the blob directory", s, hex)
		}
	})
}

// FuzzDecode: a record read from the index is accepted only with a
// digest key and a size of 0 or more, and never panics.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(digestOf("x")), []byte(`{"size":5,"added":"2025-01-02T03:04:05Z","last_used":"2025-01-02T03:04:05Z","readers":{"alice":{"added":"2025-01-02T03:04:05Z"}}}`))
	f.Add([]byte(digestOf("x")), []byte(`{"size":5,"added":"2025-01-02T03:04:05Z","last_used":"2025-01-02T04:00:00Z","readers":{"alice":{"added":"2025-01-02T03:04:05Z","last_used":"2025-01-02T04:00:00Z"}}}`))
	f.Add([]byte("sha256:../x"), []byte(`{"size":5}`))
	f.Add([]byte(digestOf("x")), []byte(`{"size":-1}`))
	f.Add([]byte(digestOf("x")), []byte(`{`))
	f.Fuzz(func(t *testing.T, k, v []byte) {
		hex, r, err := decode(k, v)
		if err != nil {
			return
		}
		if "sha256:"+hex != string(k) || r.Size < 0 {
			t.Fatalf("decode(%q, %q) = %q, %+v; want a digest key and a size of 0 or more", k, v, hex, r)
		}
		u := use{at: r.LastUsed, by: map[string]time.Time{"alice": r.LastUsed}}
		_ = r.entry(hex, "alice", 0, u)
		_ = r.entry(hex, "", 0, u)
	})
}
