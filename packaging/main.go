package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

const usage = `usage: go run ./packaging [--version V] [--out DIR]

Build fxd's .deb and .rpm: DIR/fxd_<version>_amd64.deb and
DIR/fxd-<version>.x86_64.rpm (paths printed on stdout). The version comes
from the VERSION file and git (see packaging/doc.go), or --version.

`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "packaging: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("packaging", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, usage); fl.PrintDefaults() }
	override := fl.String("version", "", "package `version` instead of VERSION and git's (digits, letters, . + ~; a digit first)")
	out := fl.String("out", "dist", "`dir` for the packages, relative to the repository's root")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		fl.Usage()
		return fmt.Errorf("unexpected argument %q", fl.Arg(0))
	}
	if goarch := os.Getenv("GOARCH"); goarch != "" && goarch != runtime.GOARCH {
		return fmt.Errorf("GOARCH=%s: the packages are built for this machine's %s, since the build runs the binaries (help, default config); unset GOARCH", goarch, runtime.GOARCH)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	release, err := readRelease(root)
	if err != nil {
		return err
	}
	head, err := headCommit(root)
	if err != nil {
		return err
	}
	version := snapshotVersion(release, head)
	if *override != "" {
		version = *override
	}
	if err := checkVersion(version); err != nil {
		return err
	}
	when, err := buildTime(head)
	if err != nil {
		return err
	}

	work, err := os.MkdirTemp("", "fxd-packaging-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	fmt.Fprintf(stderr, "packaging: building fxd %s\n", version)
	if err := buildBinaries(root, work, version); err != nil {
		return err
	}
	b := &build{root: root, work: work, version: version, release: release, head: head, when: when}
	dir := *out
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range formats {
		path, err := b.pack(f, dir)
		if err != nil {
			return fmt.Errorf("build the %s: %w", f.name, err)
		}
		fmt.Fprintln(stdout, path)
	}
	return nil
}

// moduleRoot is the directory of fxd's go.mod: the working directory or
// the nearest one above it that has one.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod in %s or above it; run this from fxd's checkout", dir)
		}
	}
}

// buildTime dates the packages' files and changelog: SOURCE_DATE_EPOCH
// when set (reproducible builds), else the commit's time, else now.
func buildTime(head *commit) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
		}
		return time.Unix(secs, 0).UTC(), nil
	}
	if head != nil {
		return head.time.UTC(), nil
	}
	return time.Now().UTC(), nil
}
