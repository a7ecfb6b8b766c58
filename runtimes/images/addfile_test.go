package images

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
	"fxd.dev/fxd/isolation"
)

func TestAddFileAsAccount(t *testing.T) {
	u := testenv.NewUser(t)
	acct := isolation.Account{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home}
	s := newStore(t, Config{})
	data, err := os.ReadFile(testenv.BuildSIF(t))
	if err != nil {
		t.Fatal(err)
	}
	// A root-owned 0600 file in the account's home: reachable, not readable.
	path := filepath.Join(u.Home, "python.sif")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret") // 0700 root: not searchable
	if err := os.Mkdir(secret, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secret, "python.sif"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	refusals := []struct {
		name    string
		path    string
		maxSize int64
		want    error
		says    string
	}{
		{"root's 0600 file", path, 0, api.ErrDenied, "may not reach it (permission denied)"},
		{"unsearchable directory", filepath.Join(secret, "python.sif"), 0, api.ErrDenied, "may not reach it (permission denied)"},
		{"missing", filepath.Join(u.Home, "missing.sif"), 0, api.ErrNotFound, "no such file or directory for account"},
		{"directory", u.Home, 0, api.ErrInvalid, "not a regular file (d"},
		{"device (would never end)", "/dev/zero", 0, api.ErrInvalid, "not a regular file"},
		{"relative", "python.sif", 0, api.ErrInvalid, "absolute"},
		{"over maxSize", "/bin/busybox", 4096, api.ErrTooLarge, "larger than"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			img, err := s.AddFile(t.Context(), "python", u.Name, acct, tt.path, Limits{MaxSize: tt.maxSize})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("AddFile(%s) = %+v, %v; want %v saying %q", tt.path, img, err, tt.want, tt.says)
			}
			requireEmpty(t, s)
		})
	}

	if err := os.Chown(path, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
	img, err := s.AddFile(t.Context(), "python", u.Name, acct, path, Limits{MaxSize: int64(len(data))})
	if err != nil {
		t.Fatalf("AddFile(own file) = %v", err)
	}
	if img.Name != u.Name+"/python" || img.Owner != u.Name || img.Source != path {
		t.Errorf("AddFile = %+v, want %s/python from %s", img, u.Name, path)
	}
	if _, err := s.Get(u.Name+"/python", u.Name); err != nil {
		t.Errorf("Get(%s/python) = %v", u.Name, err)
	}
}

func TestAddFileAsRoot(t *testing.T) {
	testenv.RequireRoot(t)
	s := newStore(t, Config{})
	path := testenv.BuildSIF(t)
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddFile(t.Context(), "python", "", isolation.Account{Name: "root"}, path, Limits{}); !errors.Is(err, api.ErrDenied) {
		t.Errorf("AddFile as uid 0 = %v, want denied (AddSiteFile's job)", err)
	}
	if img, err := s.AddSiteFile(t.Context(), "python", path, Limits{}); err != nil || img.Name != "python" || img.Source != path {
		t.Fatalf("AddFile as root = %+v, %v; want python from %s", img, err, path)
	}
	if _, err := s.AddSiteFile(t.Context(), "gone", path+".missing", Limits{}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("AddFile(missing) as root = %v, want api.ErrNotFound", err)
	}
	if _, err := s.AddSiteFile(t.Context(), "dir", filepath.Dir(path), Limits{}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("AddFile(directory) as root = %v, want api.ErrInvalid", err)
	}
}
