package runtimes

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/isolation"
)

// DataFile is a file of the node's data cache that a task reads. The
// worker sees it, read-only, as $FXD_DATA/<Name>: a hard link to Source
// in a directory of the worker's own.
type DataFile struct {
	// Source is the host path of the cache blob: a root-owned regular
	// file, readable by all (0644), in a directory only root may enter,
	// on the same file system as the pools' data dir.
	Source string
	// Name is where it appears under $FXD_DATA: one path element or a
	// relative path of them, each of [A-Za-z0-9._-], not "." or "..".
	Name string
}

// dataMount is the directory under Containers.WorkDir at which a
// container worker sees its data, $FXD_DATA.
const dataMount = "data"

// maxDataName bounds a DataFile's Name, in bytes.
const maxDataName = 1024

var dataName = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)

// checkData refuses a data set no worker can show: bad names (see
// CheckDataNames), or a Source that is not an absolute, clean path
// (api.ErrInvalid).
func checkData(files []DataFile) error {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
		if !path.IsAbs(f.Source) || path.Clean(f.Source) != f.Source || strings.ContainsRune(f.Source, 0) {
			return fmt.Errorf("data %q: source %q: want the absolute, clean path of a cache file: %w", f.Name, f.Source, api.ErrInvalid)
		}
	}
	return CheckDataNames(names)
}

// CheckDataNames refuses the names of a task's data files that no worker
// can show (api.ErrInvalid): a name that is not a relative path of
// [A-Za-z0-9._-] elements, a name given twice, or a name that is both a
// file and a directory of another.
func CheckDataNames(names []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if err := checkDataName(n); err != nil {
			return err
		}
		if seen[n] {
			return fmt.Errorf("data %q: named twice; give each data file a name of its own: %w", n, api.ErrInvalid)
		}
		seen[n] = true
	}
	for _, n := range names {
		for dir := path.Dir(n); dir != "."; dir = path.Dir(dir) {
			if seen[dir] {
				return fmt.Errorf("data %q: %q is a data file, so it cannot also be a directory; rename one of them: %w", n, dir, api.ErrInvalid)
			}
		}
	}
	return nil
}

// checkDataName refuses a Name that is not a relative path of elements of
// [A-Za-z0-9._-], other than "." and "..", each at most 255 bytes.
func checkDataName(name string) error {
	bad := len(name) > maxDataName || !dataName.MatchString(name)
	for _, e := range strings.Split(name, "/") {
		bad = bad || e == "" || e == "." || e == ".." || len(e) > 255
	}
	if bad {
		return fmt.Errorf("data name %q: want a relative path such as \"input.h5\" or \"run1/input.h5\": "+
			"elements of letters, digits, '.', '_' and '-' (not \".\" or \"..\"), no leading, trailing or doubled '/', at most %d bytes: %w",
			name, maxDataName, api.ErrInvalid)
	}
	return nil
}

// dataKey encodes a data set canonically, for the key of the workers
// that show it: the sha256 of the files sorted by Name, with each Source;
// "" for none.
func dataKey(files []DataFile) string {
	if len(files) == 0 {
		return ""
	}
	sorted := slices.SortedFunc(slices.Values(files), func(a, b DataFile) int { return cmp.Compare(a.Name, b.Name) })
	b, _ := json.Marshal(sorted)
	sum := sha256.Sum256(b) // a tree may hold thousands of files: keys stay small
	return hex.EncodeToString(sum[:])
}

// prepareDataDir creates the pools' data dir, or sets the mode of one
// there, root's with mode 0711 (the accounts pass through, to their own
// directories, but cannot list it),
// refuses one others could write or another Pools holds (its lock file,
// held until Close), and removes the worker directories a previous run
// left in it (after a crash), logging what it cannot remove. Each agent
// or daemon on a host needs a data dir of its own.
func (p *Pools) prepareDataDir() error {
	if !filepath.IsAbs(p.dataDir) || filepath.Clean(p.dataDir) != p.dataDir {
		return fmt.Errorf("task data dir %q: want an absolute, clean path: %w", p.dataDir, api.ErrInvalid)
	}
	if err := os.MkdirAll(p.dataDir, 0o711); err != nil {
		return fmt.Errorf("create task data dir: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p.dataDir, &st); err != nil {
		return fmt.Errorf("check task data dir: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 || st.Mode&0o022 != 0 {
		return fmt.Errorf("task data dir %s: owned by uid %d with mode %04o, but fxd makes tenants' directories in it as root: "+
			"make it a directory of root's that only root may write (chown root, chmod 0711): %w", p.dataDir, st.Uid, st.Mode&0o7777, api.ErrDenied)
	}
	if err := os.Chmod(p.dataDir, 0o711); err != nil { // one made by hand, say 0700, would keep the accounts out
		return fmt.Errorf("task data dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(p.dataDir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock task data dir: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("task data dir %s is in use by another fxd on this host; give each daemon its own state dir and each agent its own name: %w", p.dataDir, api.ErrConflict)
		}
		return fmt.Errorf("lock task data dir: %w", err)
	}
	p.dataLock = lock
	if dir, mode, private := privatePath(p.dataDir); private {
		p.log.Error().Str("dir", p.dataDir).Str("path", dir).Str("mode", fmt.Sprintf("%04o", mode)).
			Msg("other users cannot pass through this directory to the task data dir, so tasks with data will fail; " +
				"let every user search it (chmod o+x) or move the state dir")
	}
	entries, err := os.ReadDir(p.dataDir)
	if err != nil {
		p.log.Warn().Err(err).Msg("list task data left by a previous run")
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), workerPrefix) {
			continue // not a worker's: the lock, or an agent's data dir
		}
		if err := os.RemoveAll(filepath.Join(p.dataDir, e.Name())); err != nil {
			p.log.Warn().Err(err).Str("worker", e.Name()).Msg("remove task data a previous run left; remove it by hand")
			continue
		}
		p.log.Info().Str("worker", e.Name()).Msg("removed task data a previous run left")
	}
	return nil
}

// makeData makes the data directory of worker id: <data dir>/<id>, which
// a may read and search but not change (handOver), holding a hard link
// named Name to each file's Source (in subdirectories, likewise, for
// names with "/"). The links are made while the directory is still
// root's alone, and it is handed to a last, so the account never sees it
// half made. The links
// share the cache's inodes (root's, 0644): the account reads them but
// cannot change them. It returns the directory; removeData removes it.
func (p *Pools) makeData(id string, a isolation.Account, files []DataFile) (string, error) {
	if p.dataDir == "" {
		return "", fmt.Errorf("this node keeps no task data (the pools have no data dir); run tasks with data where the daemon placed them: %w", api.ErrUnavailable)
	}
	dir := filepath.Join(p.dataDir, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("create task data dir of %s: %w", id, err)
	}
	if err := linkData(dir, a, files); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// linkData fills dir, root's and 0700, as makeData says, and hands it to a.
func linkData(dir string, a isolation.Account, files []DataFile) error {
	subdirs := map[string]bool{}
	for _, f := range files {
		var st unix.Stat_t
		if err := unix.Lstat(f.Source, &st); err != nil {
			return fmt.Errorf("data %q: source %s: %w; stage it into the cache again", f.Name, f.Source, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("data %q: source %s is not a regular file; name a cache file: %w", f.Name, f.Source, api.ErrInvalid)
		}
		for d := path.Dir(f.Name); d != "."; d = path.Dir(d) {
			subdirs[d] = true
		}
		if d := path.Dir(f.Name); d != "." {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
				return fmt.Errorf("data %q: create its directory: %w", f.Name, err)
			}
		}
		err := os.Link(f.Source, filepath.Join(dir, f.Name))
		if errors.Is(err, unix.EXDEV) {
			return fmt.Errorf("data %q: link %s into %s: the data cache and the task data dir are on different file systems; "+
				"keep the cache and the task data (both under the state dir) on one file system: %w", f.Name, f.Source, dir, api.ErrUnavailable)
		}
		if err != nil {
			return fmt.Errorf("data %q: link %s: %w", f.Name, f.Source, err)
		}
	}
	// Deepest first, the top last: a directory handed over holds only
	// what is final.
	order := slices.SortedFunc(maps.Keys(subdirs), func(x, y string) int { return cmp.Compare(strings.Count(y, "/"), strings.Count(x, "/")) })
	for _, d := range append(order, ".") {
		if err := handOver(filepath.Join(dir, d), a); err != nil {
			return err
		}
	}
	return nil
}

// handOver lets a read and search the task data directory p: it stays
// root's, mode 0550, with an ACL for a alone, so that a can neither add
// to it nor move its links out (which would keep cache bytes past their
// eviction, outside a's quota). On a file system without ACLs, p is
// given to a, mode 0500: a still cannot change the files, but could
// rearrange its own view.
func handOver(p string, a isolation.Account) error {
	err := grantReadExec(p, a.UID)
	if errors.Is(err, unix.EOPNOTSUPP) {
		if err = os.Chmod(p, 0o500); err == nil {
			err = os.Lchown(p, int(a.UID), int(a.GID))
		}
	}
	if err != nil {
		return fmt.Errorf("hand task data dir %s to %s: %w", p, a.Name, err)
	}
	return nil
}

// removeData removes a worker's data directory: the links, never what
// they link to.
func (p *Pools) removeData(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		p.log.Warn().Err(err).Str("dir", dir).Msg("remove a worker's task data dir; remove it by hand")
	}
}
