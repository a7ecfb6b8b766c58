package conf

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad checks that Parse never panics and that every error it returns is
// an ErrInvalid problem; and that Validate never panics on what it accepts.
func FuzzLoad(f *testing.F) {
	f.Add(defaultTOML)
	for _, glob := range []string{"testdata/good/*.toml", "testdata/bad/*.toml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("a.b.c = 1\n[[x]]\n[[x]]\ny = [1, {z = 2}]\n"))
	f.Add([]byte("[tenants.account]\nalice = 3\n[[auth.map]]\nregex = '('\naccount = '${'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) = %v, not an ErrInvalid problem", data, err)
			}
			return
		}
		// Validate reads the TLS files named; fuzzed names could be FIFOs or
		// devices, so leave them out here (TestValidateTLS covers them).
		c.Endpoint.TLSCert, c.Endpoint.TLSKey, c.Endpoint.ClientCA = "", "", ""
		if err := c.Validate(); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("Validate of %q = %v, not an ErrInvalid problem", data, err)
		}
	})
}
