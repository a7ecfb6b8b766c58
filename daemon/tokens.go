package daemon

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/internal/atomicfile"
)

// tokenPrefix starts every token so that leaked tokens are easy to find
// with secret scanners.
const tokenPrefix = "fxd_"

// TokenEntry is one issued token as kept in the token file: only the
// SHA-256 of the token is stored, never the token.
type TokenEntry struct {
	Hash     string    // hex SHA-256 of the whole token
	Identity string    // who the token authenticates
	Issued   time.Time // when it was issued
}

// IssueToken makes a new random token for identity, appends its hash to the
// token file (created 0600) and returns the token, which is shown once.
// Identities "uid:N" are refused: they name local socket callers, and a
// token for one would let its bearer act as that local user from afar.
func IssueToken(path, identity string) (string, error) {
	if identity == "" || strings.ContainsAny(identity, " \t\r\n") {
		return "", fmt.Errorf("identity %q: must be non-empty with no spaces", identity)
	}
	if strings.HasPrefix(identity, localIdentityPrefix) {
		return "", fmt.Errorf("identity %q: uid:N identities are reserved for local callers on the unix socket, who need no token; issue the token for a name such as alice@example.org and map it in [[auth.map]]", identity)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make token: %w", err)
	}
	tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	line := fmt.Sprintf("%s %s %s\n", TokenHash(tok), identity, time.Now().UTC().Format(time.RFC3339))
	err := withTokenLock(path, func() error {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(line); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		return "", fmt.Errorf("write token file %s: %w", path, err)
	}
	return tok, nil
}

// RevokeTokens removes every entry whose hash starts with prefix (at least
// 8 hex digits) or whose identity equals it, and returns how many went.
// The file is replaced atomically, under the lock IssueToken takes.
func RevokeTokens(path, hashPrefixOrIdentity string) (int, error) {
	n := 0
	err := withTokenLock(path, func() error {
		entries, err := ReadTokens(path)
		if err != nil {
			return err
		}
		var keep strings.Builder
		for _, e := range entries {
			if e.Identity == hashPrefixOrIdentity || (len(hashPrefixOrIdentity) >= 8 && strings.HasPrefix(e.Hash, hashPrefixOrIdentity)) {
				n++
				continue
			}
			fmt.Fprintf(&keep, "%s %s %s\n", e.Hash, e.Identity, e.Issued.Format(time.RFC3339))
		}
		if n == 0 {
			return nil
		}
		return atomicfile.Write(path, []byte(keep.String()), 0o600)
	})
	if err != nil {
		return 0, fmt.Errorf("revoke in token file %s: %w", path, err)
	}
	return n, nil
}

// ReadTokens parses the token file; a missing file has no tokens.
func ReadTokens(path string) ([]TokenEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open token file: %w", err)
	}
	defer f.Close()
	var out []TokenEntry
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 || len(fields[0]) != 64 {
			return nil, fmt.Errorf("token file %s:%d: want \"<sha256-hex> <identity> <issued>\"; reissue with fxd token issue", path, n)
		}
		issued, _ := time.Parse(time.RFC3339, fields[2])
		out = append(out, TokenEntry{Hash: fields[0], Identity: fields[1], Issued: issued})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read token file %s: %w", path, err)
	}
	return out, nil
}

// TokenHash is what the token file keeps of a token: its SHA-256, in hex.
func TokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// withTokenLock runs fn holding an exclusive lock on path+".lock", which
// every writer of the token file takes (the file itself is replaced by
// revoke, so it cannot carry the lock).
func withTokenLock(path string, fn func() error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return err
	}
	l, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := unix.Flock(int(l.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	return fn()
}

// tokenCheckInterval is how long a known token is trusted before the
// token file is looked at again (one stat, and a read if it changed), so a
// revocation takes effect within it without SIGHUP. An unknown token makes
// the daemon look at once: the admin may just have issued it.
const tokenCheckInterval = time.Second

// tokens is the daemon's view of the token file: an immutable tokenSet,
// swapped whole when the file changed or SIGHUP names another file.
type tokens struct{ cur atomic.Pointer[tokenSet] }

// tokenSet is the token file as read at one moment.
type tokenSet struct {
	path    string
	byHash  map[string]string // hash -> identity
	version fileVersion
	checked time.Time // the last look at the file
}

// load reads the token file at path and makes it the current set.
func (t *tokens) load(path string) error {
	s, err := readTokenSet(path, time.Now())
	if err != nil {
		return err
	}
	t.cur.Store(s)
	return nil
}

// identity returns who tok authenticates, or "" for an unknown or revoked
// token.
func (t *tokens) identity(tok string) string {
	h := TokenHash(tok)
	s := t.cur.Load()
	id, known := s.byHash[h]
	if now := time.Now(); !known || now.Sub(s.checked) >= tokenCheckInterval {
		// Another request or a reload may have swapped first: theirs wins.
		if next := s.refreshed(now); t.cur.CompareAndSwap(s, next) {
			s = next
		} else {
			s = t.cur.Load()
		}
		id = s.byHash[h]
	}
	return id
}

func readTokenSet(path string, now time.Time) (*tokenSet, error) {
	v := versionOf(path)
	entries, err := ReadTokens(path)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(entries))
	for _, e := range entries {
		m[e.Hash] = e.Identity
	}
	return &tokenSet{path: path, byHash: m, version: v, checked: now}, nil
}

// refreshed is s looked at again at now: re-read if the file changed.
func (s *tokenSet) refreshed(now time.Time) *tokenSet {
	if versionOf(s.path) == s.version {
		same := *s
		same.checked = now
		return &same
	}
	next, err := readTokenSet(s.path, now)
	if err != nil {
		// Unreadable now: trust nothing until it reads again.
		return &tokenSet{path: s.path, checked: now}
	}
	return next
}

// fileVersion tells whether a file changed since it was read.
type fileVersion struct {
	modTime time.Time
	size    int64
	inode   uint64
}

func versionOf(path string) fileVersion {
	st, err := os.Stat(path)
	if err != nil {
		return fileVersion{}
	}
	v := fileVersion{modTime: st.ModTime(), size: st.Size()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		v.inode = sys.Ino
	}
	return v
}
