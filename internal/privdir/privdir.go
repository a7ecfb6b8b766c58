// Package privdir makes the private directories of fxd's stores (images,
// data cache): owned by the user fxd runs as, mode 0700, never a symlink,
// since whoever controls one could swap what tasks run or read. It holds
// no design word, so every package may import it.
package privdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
)

// Ensure creates the directory p (mode 0700) if absent, and refuses one
// that is a symlink, not a directory, or owned by another user than the
// one fxd runs as (api.ErrInvalid, saying how to fix it). One open to
// others is made 0700, with a warning that names what it holds.
func Ensure(p, what string, log zerolog.Logger) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("create directory %s: %w", p, err)
		}
		fi, err = os.Lstat(p)
	}
	if err != nil {
		return fmt.Errorf("check directory %s: %w", p, err)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("directory %s: %w: it is a symlink; make it a real directory owned by the user fxd runs as (root), mode 0700", p, api.ErrInvalid)
	case !fi.IsDir():
		return fmt.Errorf("directory %s: %w: it is a %s; move it away so fxd can make the directory", p, api.ErrInvalid, fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("directory %s: %w: it is owned by uid %d, not by uid %d that runs fxd; chown it to that user, or give fxd its own state_dir",
			p, api.ErrInvalid, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(p, 0o700); err != nil {
			return fmt.Errorf("chmod directory %s to 0700: %w", p, err)
		}
		log.Warn().Str("path", p).Str("mode", fi.Mode().Perm().String()).Msg(what + " directory was open to others; mode set to 0700")
	}
	return nil
}

// Prune removes what dir holds besides the names in keep (blobs a crash
// left without an index entry; with keep nil, all of it: the partial
// copies of a store's tmp), logging each as what it is.
func Prune(dir string, keep map[string]bool, what string, log zerolog.Logger) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("remove %s: %w", what, err)
		}
		log.Info().Str("name", e.Name()).Msg(what + " removed")
	}
	return nil
}
