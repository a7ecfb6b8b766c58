package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/cache"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/runtimes"
)

// A directory is staged as a tree: each regular file in it an entry of
// its own, and a manifest entry that lists them, whose digest is the
// tree's ref. A task that names a tree sees the directory, read-only,
// at $FXD_DATA/<path>.
const (
	// treeMagic starts a manifest: its first line.
	treeMagic = "fxd-tree 1\n"
	// maxTreeFiles bounds the files of one tree, maxTreeDepth its
	// nesting.
	maxTreeFiles = 10000
	maxTreeDepth = 32
	// maxManifest bounds a manifest's bytes, read when a task names it.
	maxManifest = 16 << 20
)

// treeFile is one file of a tree's manifest.
type treeFile struct {
	Path   string `json:"path"` // relative, "/"-separated
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// stageTree stages the directory rel under root, as a would read it: its
// regular files (symlinks followed only within root) each as an entry,
// then its manifest, whose entry it returns.
func (s *stager) stageTree(ctx context.Context, a isolation.Account, root, rel string, opts cache.PutOptions) (cache.Entry, error) {
	var files []treeFile
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		if depth > maxTreeDepth {
			return fmt.Errorf("%s: nested deeper than %d directories; stage a shallower directory: %w", dir, maxTreeDepth, api.ErrInvalid)
		}
		f, err := isolation.OpenBeneathAs(a, root, path.Join(rel, dir), unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		entries, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, e := range entries {
			name := path.Join(dir, e.Name())
			if err := runtimes.CheckDataNames([]string{name}); err != nil {
				return fmt.Errorf("%s: a tree's names must be letters, digits, '.', '_' and '-'; rename it or stage the files one by one: %w", name, api.ErrInvalid)
			}
			if e.IsDir() {
				if err := walk(name, depth+1); err != nil {
					return err
				}
				continue
			}
			if len(files) >= maxTreeFiles {
				return fmt.Errorf("more than %d files; stage a smaller directory, or an archive of it: %w", maxTreeFiles, api.ErrTooLarge)
			}
			ent, err := s.stageFile(ctx, a, root, path.Join(rel, name), cache.PutOptions{Source: opts.Source + "/" + name, MaxSize: opts.MaxSize, Quota: opts.Quota})
			if err != nil {
				return err
			}
			files = append(files, treeFile{Path: name, Digest: ent.Digest, Size: ent.Size})
		}
		return nil
	}
	if err := walk(".", 0); err != nil {
		return cache.Entry{}, err
	}
	slices.SortFunc(files, func(x, y treeFile) int { return strings.Compare(x.Path, y.Path) })
	var manifest bytes.Buffer
	manifest.WriteString(treeMagic)
	if err := json.NewEncoder(&manifest).Encode(files); err != nil {
		return cache.Entry{}, err
	}
	opts.Size = int64(manifest.Len())
	return s.cache.Put(ctx, a.Name, &manifest, opts)
}

// maxKnownTrees bounds the entries a treeCache remembers.
const maxKnownTrees = 10000

// treeCache remembers, by digest, whether an entry is a tree manifest,
// and its files: an entry's bytes never change (its digest names them),
// so each is read once, not at every task that names it. Safe for
// concurrent use.
type treeCache struct {
	mu    sync.Mutex
	known map[string]knownTree
}

// knownTree is what an entry was found to be.
type knownTree struct {
	files []treeFile
	tree  bool
}

// read is readTree of the blob of digest, remembered.
func (c *treeCache) read(digest, blob string) ([]treeFile, bool, error) {
	c.mu.Lock()
	k, ok := c.known[digest]
	c.mu.Unlock()
	if ok {
		return k.files, k.tree, nil
	}
	files, tree, err := readTree(blob)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	if c.known == nil || len(c.known) >= maxKnownTrees {
		c.known = map[string]knownTree{} // forget all rather than grow without bound
	}
	c.known[digest] = knownTree{files: files, tree: tree}
	c.mu.Unlock()
	return files, tree, nil
}

// readTree returns the files of the manifest at path, or ok false when
// the entry is no manifest (a plain file).
func readTree(blob string) (files []treeFile, ok bool, err error) {
	f, err := os.Open(blob)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	rd := bufio.NewReader(io.LimitReader(f, maxManifest+1))
	head, err := rd.Peek(len(treeMagic))
	if err != nil || string(head) != treeMagic {
		return nil, false, nil
	}
	rd.Discard(len(treeMagic))
	if err := json.NewDecoder(rd).Decode(&files); err != nil {
		return nil, false, fmt.Errorf("read tree manifest: %v: %w", err, api.ErrInvalid)
	}
	if len(files) > maxTreeFiles {
		return nil, false, fmt.Errorf("tree of %d files, more than %d: %w", len(files), maxTreeFiles, api.ErrTooLarge)
	}
	return files, true, nil
}
