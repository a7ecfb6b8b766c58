package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fxd.dev/fxd/conf"
)

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(good, []byte("[site]\nname = \"alcf\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("[site]\nname = \"ok\"\n\n[limits]\nmax_batch = \"many\"\nmax_wiat = \"1s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badValue := filepath.Join("..", "..", "conf", "testdata", "bad", "several.toml")
	tests := []struct {
		name    string
		args    []string
		stdout  string   // exact
		errHas  []string // substrings of the error, one per line; none: success
		invalid bool     // the error wraps conf.ErrInvalid
	}{
		{"good", []string{"check", good}, good + ": ok\n", nil, false},
		{"bad types and keys", []string{"check", bad}, "", []string{
			bad + ":5: limits.max_batch: want a whole number",
			bad + ":6: limits.max_wiat: unknown key; did you mean limits.max_wait?",
		}, true},
		{"bad values", []string{"check", badValue}, "", []string{badValue + ":3: site.name"}, true},
		{"missing", []string{"check", filepath.Join(dir, "nope.toml")}, "", []string{"no such file or directory; write one with: fxd config default >"}, false},
		{"two files", []string{"check", good, bad}, "", []string{"check takes one file"}, false},
		{"no subcommand", nil, "", []string{"missing subcommand"}, false},
		{"unknown subcommand", []string{"print"}, "", []string{`unknown subcommand "print"`}, false},
		{"help", []string{"--help"}, "", nil, false},
		{"check help", []string{"check", "-h"}, "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := cmdConfig(tt.args, &stdout, &stderr)
			if len(tt.errHas) == 0 {
				if err != nil {
					t.Fatalf("cmdConfig(%q) = %v, want nil", tt.args, err)
				}
			} else {
				if err == nil {
					t.Fatalf("cmdConfig(%q) = nil, want an error", tt.args)
				}
				for _, want := range tt.errHas {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("cmdConfig(%q) = %v, want it to contain %q", tt.args, err, want)
					}
				}
				if tt.invalid && !errors.Is(err, conf.ErrInvalid) {
					t.Errorf("cmdConfig(%q) = %v, want a conf.ErrInvalid problem", tt.args, err)
				}
			}
			if stdout.String() != tt.stdout {
				t.Errorf("cmdConfig(%q) printed %q, want %q", tt.args, stdout.String(), tt.stdout)
			}
		})
	}
}

// `fxd config default` prints the embedded file verbatim, and it passes check.
func TestConfigDefaultPassesCheck(t *testing.T) {
	var out, stderr bytes.Buffer
	if err := cmdConfig([]string{"default"}, &out, &stderr); err != nil {
		t.Fatalf("config default: %v", err)
	}
	if !bytes.Equal(out.Bytes(), conf.DefaultTOML()) {
		t.Error("config default did not print default.toml verbatim")
	}
	path := filepath.Join(t.TempDir(), "fxd.toml")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var checkOut bytes.Buffer
	if err := cmdConfig([]string{"check", path}, &checkOut, &stderr); err != nil {
		t.Errorf("config check of the default: %v", err)
	}
	if checkOut.String() != path+": ok\n" {
		t.Errorf("config check printed %q, want %q", checkOut.String(), path+": ok\n")
	}
	if err := cmdConfig([]string{"default", "extra"}, &out, &stderr); err == nil {
		t.Error("config default with an argument succeeded, want an error")
	}
}
