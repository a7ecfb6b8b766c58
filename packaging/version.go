package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// releasePattern is what the VERSION file may hold: the next release.
var releasePattern = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// versionPattern is a version both dpkg and rpm take as it is (see doc.go).
var versionPattern = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// checkVersion refuses a version that dpkg or rpm would read otherwise.
func checkVersion(v string) error {
	if !versionPattern.MatchString(v) {
		return fmt.Errorf("version %q: want a digit first, then digits, letters, \".\", \"+\" or \"~\" (no \"-\", \":\" or \"_\": rpm and dpkg read them otherwise), like 1.2.0 or 1.2.0~rc1", v)
	}
	return nil
}

// commit is what git says of the checkout's HEAD.
type commit struct {
	sha   string    // 7 hex digits
	time  time.Time // committer time
	tags  []string  // tags pointing at HEAD
	dirty bool      // uncommitted changes
}

// snapshotVersion maps the VERSION file's release and HEAD to the
// package version (doc.go, Versions). c is nil without git.
func snapshotVersion(release string, c *commit) string {
	if c == nil {
		return release
	}
	if !c.dirty {
		for _, t := range c.tags {
			if t == "v"+release {
				return release
			}
		}
	}
	v := release + "~git" + c.time.UTC().Format("20060102150405") + "." + c.sha
	if c.dirty {
		v += ".dirty"
	}
	return v
}

// readRelease reads root/VERSION.
func readRelease(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		return "", fmt.Errorf("read the release version: %w; the repository's VERSION file names the next release, like 0.2.0", err)
	}
	v := strings.TrimSpace(string(b))
	if !releasePattern.MatchString(v) {
		return "", fmt.Errorf("VERSION holds %q: want the next release as digits and dots, like 0.2.0", v)
	}
	return v, nil
}

// headCommit asks git about root's HEAD; it returns nil, nil when root is
// no git checkout or git is missing (a source tarball).
func headCommit(root string) (*commit, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", append([]string{"-C", root}, args...)...)
		out, err := cmd.Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return strings.TrimSpace(string(out)), err
	}
	if _, err := exec.LookPath("git"); err != nil {
		return nil, nil
	}
	if _, err := git("rev-parse", "--git-dir"); err != nil {
		return nil, nil
	}
	out, err := git("log", "-1", "--format=%h %ct", "--abbrev=7")
	if err != nil {
		return nil, err
	}
	sha, ts, ok := strings.Cut(out, " ")
	secs, perr := strconv.ParseInt(ts, 10, 64)
	if !ok || perr != nil {
		return nil, fmt.Errorf("git log printed %q, want a commit and a time", out)
	}
	c := &commit{sha: sha, time: time.Unix(secs, 0)}
	tags, err := git("tag", "--points-at", "HEAD")
	if err != nil {
		return nil, err
	}
	c.tags = strings.Fields(tags)
	status, err := git("status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return nil, err
	}
	c.dirty = status != ""
	return c, nil
}
