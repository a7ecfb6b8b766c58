package daemon

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/cache"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/isolation"
)

// stager stages data into the cache for callers: files under the site's
// cache.paths, read with the caller's own permissions, and http(s) URLs.
// Concurrent stages of one file or URL read it once.
type stager struct {
	cache  *cache.Store
	cfg    conf.Cache
	client *http.Client // for URLs, bounded by cache.url_timeout
	flight singleflight.Group

	mu    sync.Mutex
	files map[fileID]string // a file staged before → its digest
}

// maxStagedFiles bounds the files a stager remembers having staged.
const maxStagedFiles = 100000

// settled is how long ago a file must have changed for its identity to
// be trusted: more than the coarsest time stamps (NFS, FAT) tick.
const settled = 3 * time.Second

// fileID tells one version of a file from another: a file with the same
// identity was staged with the same bytes.
type fileID struct {
	dev, ino, size   uint64
	mtimeNS, ctimeNS int64
}

func newStager(c *cache.Store, cfg conf.Cache) *stager {
	s := &stager{cache: c, cfg: cfg, files: map[fileID]string{}}
	s.client = &http.Client{Timeout: cfg.URLTimeout.D(), CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return fmt.Errorf("stopped after 10 redirects")
		}
		if !s.urlAllowed(req.URL.String()) {
			return fmt.Errorf("redirected to %s, outside the site's data URLs (cache.urls): %w", req.URL.Redacted(), api.ErrDenied)
		}
		return nil
	}}
	return s
}

// urlAllowed says whether source lies under one of cache.urls.
func (s *stager) urlAllowed(source string) bool {
	for _, p := range s.cfg.URLs {
		if strings.HasPrefix(source, p) {
			return true
		}
	}
	return false
}

// stage stages source for account a, within quota bytes a may have
// readable; want, when set, is the digest the bytes must have.
func (s *stager) stage(ctx context.Context, a isolation.Account, quota int64, source, want string) (cache.Entry, error) {
	if want != "" {
		if err := api.CheckDigest(want); err != nil {
			return cache.Entry{}, err
		}
	}
	opts := cache.PutOptions{Want: want, Source: source, MaxSize: int64(s.cfg.MaxEntrySize), Quota: quota}
	switch {
	case api.IsDigest(source):
		return cache.Entry{}, fmt.Errorf("source %s is a digest: the entry is staged already (fx data ls); give nodes to fetch it into their caches (fx data stage REF --nodes N): %w", source, api.ErrInvalid)
	case cache.IsURL(source):
		return s.stageURL(ctx, a, source, opts)
	case filepath.IsAbs(source):
		return s.stagePath(ctx, a, source, opts)
	}
	return cache.Entry{}, fmt.Errorf("source %q: give an absolute path under one of the site's data paths (%s) or an http(s) URL: %w",
		source, s.paths(), api.ErrInvalid)
}

// paths lists cache.paths for messages.
func (s *stager) paths() string {
	if len(s.cfg.Paths) == 0 {
		return "none: this site takes no paths, upload the file with fx data put"
	}
	return strings.Join(s.cfg.Paths, ", ")
}

// allowed returns the allowed directory source lies in and its path
// there.
func (s *stager) allowed(source string) (root, rel string, ok bool) {
	clean := filepath.Clean(source)
	for _, p := range s.cfg.Paths {
		if r, err := filepath.Rel(p, clean); err == nil && r != ".." && !strings.HasPrefix(r, "../") && r != "." {
			return p, r, true
		}
	}
	return "", "", false
}

// stagePath stages the file or directory at source, which must lie in
// one of cache.paths and stay there (no ".." or symlink out of it),
// opened with a's permissions.
func (s *stager) stagePath(ctx context.Context, a isolation.Account, source string, opts cache.PutOptions) (cache.Entry, error) {
	root, rel, ok := s.allowed(source)
	if !ok {
		return cache.Entry{}, fmt.Errorf("stage %s: the site stages files only from its data paths (%s); copy it into one, or upload it with fx data put: %w",
			source, s.paths(), api.ErrDenied)
	}
	e, err := s.stageFile(ctx, a, root, rel, opts)
	if err != nil {
		return cache.Entry{}, fmt.Errorf("stage %s: %w", source, err)
	}
	return e, nil
}

// stageFile stages the file rel under root, opened as a would: a regular
// file, or a directory, staged as a tree (stageTree).
func (s *stager) stageFile(ctx context.Context, a isolation.Account, root, rel string, opts cache.PutOptions) (cache.Entry, error) {
	f, err := isolation.OpenBeneathAs(a, root, rel, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return cache.Entry{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return cache.Entry{}, err
	}
	if fi.IsDir() {
		return s.stageTree(ctx, a, root, rel, opts)
	}
	if !fi.Mode().IsRegular() {
		return cache.Entry{}, fmt.Errorf("%s is not a regular file or a directory (%s): %w", rel, fi.Mode().Type(), api.ErrInvalid)
	}
	id := identity(fi)
	s.mu.Lock()
	digest, seen := s.files[id]
	s.mu.Unlock()
	if seen && (opts.Want == "" || opts.Want == digest) {
		// The same version of the file, staged before: a, who could
		// open it, may read the entry; no byte is read again.
		if e, err := s.cache.Grant(digest, a.Name, opts); err == nil {
			return e, nil
		}
	}
	opts.Size = fi.Size()
	e, err := s.once(ctx, fmt.Sprintf("file %v", id), a, opts, func() (cache.Entry, error) {
		return s.cache.Put(ctx, a.Name, f, opts)
	})
	if err != nil {
		return cache.Entry{}, err
	}
	// A file changed within the file system's time granularity could
	// share its identity with a file created in the same tick after it
	// is gone (its inode reused): only a settled file is remembered.
	if time.Since(id.ctime()) > settled {
		s.mu.Lock()
		if len(s.files) >= maxStagedFiles { // forget all: later stages read their files again
			clear(s.files)
		}
		s.files[id] = e.Digest
		s.mu.Unlock()
	}
	return e, nil
}

// stageURL downloads source.
func (s *stager) stageURL(ctx context.Context, a isolation.Account, source string, opts cache.PutOptions) (cache.Entry, error) {
	if !s.urlAllowed(source) {
		allowed := "none"
		if len(s.cfg.URLs) > 0 {
			allowed = strings.Join(s.cfg.URLs, ", ")
		}
		return cache.Entry{}, fmt.Errorf("stage %s: the site stages URLs only under its data URLs (cache.urls: %s); download it yourself and upload it with fx data put: %w",
			source, allowed, api.ErrDenied)
	}
	e, err := s.once(ctx, "url "+source, a, opts, func() (cache.Entry, error) {
		body, size, err := cache.OpenURL(ctx, s.client, source, opts.MaxSize)
		if err != nil {
			return cache.Entry{}, err
		}
		defer body.Close()
		opts.Size = size
		return s.cache.Put(ctx, a.Name, body, opts)
	})
	if err != nil {
		return cache.Entry{}, fmt.Errorf("stage %s: %w", source, err)
	}
	return e, nil
}

// once runs put for the first of concurrent stages under key; the others
// wait for it (as long as their own ctx lets them) and are granted its
// entry, checked against their own want. When the first failed, each of
// the others stages on its own: the first's error may speak of its
// account, and its cause (a quota, a cancel) need not be theirs.
func (s *stager) once(ctx context.Context, key string, a isolation.Account, opts cache.PutOptions, put func() (cache.Entry, error)) (cache.Entry, error) {
	ran := false
	ch := s.flight.DoChan(key, func() (any, error) {
		ran = true
		return put()
	})
	var r singleflight.Result
	select {
	case r = <-ch:
	case <-ctx.Done():
		return cache.Entry{}, ctx.Err()
	}
	if ran {
		if r.Err != nil {
			return cache.Entry{}, r.Err
		}
		return r.Val.(cache.Entry), nil
	}
	if r.Err != nil {
		return put()
	}
	e := r.Val.(cache.Entry)
	if opts.Want != "" && opts.Want != e.Digest {
		return cache.Entry{}, fmt.Errorf("the bytes hash to %s, not the digest given (%s); check the digest, or leave it out: %w", e.Digest, opts.Want, api.ErrInvalid)
	}
	return s.cache.Grant(e.Digest, a.Name, opts)
}

// ctime is when the file last changed.
func (id fileID) ctime() time.Time { return time.Unix(0, id.ctimeNS) }

// identity is fi's file identity.
func identity(fi os.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: st.Dev, ino: st.Ino, size: uint64(st.Size), mtimeNS: st.Mtim.Nano(), ctimeNS: st.Ctim.Nano()}
}
