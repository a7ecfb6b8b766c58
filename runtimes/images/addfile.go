package images

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/isolation"
)

// catPath is the program that reads a file with an account's permissions.
const catPath = "/bin/cat"

// AddFile adds the SIF file at path (absolute) as Add does, reading it with
// account a's permissions, never root's: it runs /bin/cat as a (UID, GID
// and supplementary groups, empty environment, working directory /) and
// stores what cat writes. A file the account may not read fails with
// api.ErrDenied, a missing one with api.ErrNotFound, both quoting cat.
// UID 0 is refused (api.ErrDenied): the admin's reads go through
// AddSiteFile. owner is recorded as in Add; path becomes the Source.
func (s *Store) AddFile(ctx context.Context, name, owner string, a isolation.Account, path string, maxSize int64) (Image, error) {
	if a.UID == 0 {
		return Image{}, fmt.Errorf("add image %s: reading files as uid 0 is AddSiteFile's job, for the admin: %w", name, api.ErrDenied)
	}
	return s.addFile(ctx, name, owner, path, func() (received, error) { return s.receiveAs(ctx, a, path, maxSize) })
}

// AddSiteFile adds the SIF file at path (absolute) as the site image name,
// reading it as root: for the admin's `fxd runtime add` only.
func (s *Store) AddSiteFile(ctx context.Context, name, path string, maxSize int64) (Image, error) {
	return s.addFile(ctx, name, "", path, func() (received, error) { return s.receiveFile(ctx, path, maxSize) })
}

// addFile checks the name and path, receives the file and adds it.
func (s *Store) addFile(ctx context.Context, name, owner, path string, receive func() (received, error)) (Image, error) {
	ref, err := newRef(name, owner)
	if err != nil {
		return Image{}, fmt.Errorf("add image: %w", err)
	}
	if !filepath.IsAbs(path) {
		return Image{}, fmt.Errorf("add image %s from %q: give the absolute path of the .sif file: %w", ref, path, api.ErrInvalid)
	}
	tmp, err := receive()
	if err != nil {
		return Image{}, fmt.Errorf("add image %s from %s: %w", ref, path, err)
	}
	img, err := s.add(ctx, ref, owner, tmp, path)
	if err != nil {
		return Image{}, fmt.Errorf("add image %s from %s: %w", ref, path, err)
	}
	return img, nil
}

// receiveFile copies the regular file at path, opened as root.
func (s *Store) receiveFile(ctx context.Context, path string, maxSize int64) (received, error) {
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return received{}, fmt.Errorf("%w: no such file; check the path", api.ErrNotFound)
	case err != nil:
		return received{}, fmt.Errorf("open image file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return received{}, fmt.Errorf("stat image file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return received{}, fmt.Errorf("%w: it is a %s, not a file; give the path of a .sif file", api.ErrInvalid, fi.Mode().Type())
	}
	return s.receive(ctx, f, maxSize)
}

// receiveAs copies the file at path as /bin/cat, run as account a, reads it.
func (s *Store) receiveAs(ctx context.Context, a isolation.Account, path string, maxSize int64) (received, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, catPath, "--", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: a.UID, Gid: a.GID, Groups: a.Groups}}
	cmd.Env = []string{} // not nil: nil would pass ours on
	cmd.Dir = "/"
	stderr := &headBuffer{max: 4096}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return received{}, fmt.Errorf("read image file as account %s: %w", a.Name, err)
	}
	if err := cmd.Start(); err != nil {
		return received{}, fmt.Errorf("start %s as account %s (uid %d): %w", catPath, a.Name, a.UID, err)
	}
	tmp, err := s.receive(ctx, out, maxSize)
	if err != nil {
		cancel() // stop cat if it is still writing
		cmd.Wait()
		return received{}, err
	}
	if err := cmd.Wait(); err != nil {
		os.Remove(tmp.path)
		return received{}, catError(a, err, stderr.String())
	}
	return tmp, nil
}

// catError says why cat, run as a, could not read the file, by the kind of
// its complaint (cat runs with an empty environment: the C locale).
func catError(a isolation.Account, err error, stderr string) error {
	said := strings.TrimSpace(stderr)
	switch {
	case strings.Contains(said, "No such file or directory"), strings.Contains(said, "Not a directory"):
		return fmt.Errorf("%w: account %s finds no such file (%s: %v); check the path", api.ErrNotFound, a.Name, said, err)
	case strings.Contains(said, "Permission denied"):
		return fmt.Errorf("%w: account %s may not read the file (%s: %v); make it readable by you (chmod u+r) and its directories searchable (chmod u+x)", api.ErrDenied, a.Name, said, err)
	case strings.Contains(said, "Is a directory"):
		return fmt.Errorf("%w: it is a directory (%s); give the path of a .sif file", api.ErrInvalid, said)
	}
	return fmt.Errorf("read image file as account %s: %w: %s", a.Name, err, said)
}

// headBuffer keeps the first max bytes written to it and drops the rest.
type headBuffer struct {
	b   []byte
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (h *headBuffer) String() string { return string(h.b) }
