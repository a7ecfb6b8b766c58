package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// binary is one program the packages ship.
type binary struct {
	name, pkg string
	cgo       bool   // fxd resolves accounts through NSS (os/user with cgo); fx as make build does
	dest      string // its path once installed
}

var binaries = []binary{
	{"fxd", "./cmd/fxd", true, "/usr/bin/fxd"},
	{"fx", "./cmd/fx", true, "/usr/bin/fx"},
	// Bind-mounted into any image, so static; found here by runtimes.FindShim.
	{"fxd-shim", "./cmd/fxd-shim", false, "/usr/libexec/fxd/fxd-shim"},
}

// cflags are the C compiler flags of the cgo code, Debian's hardening
// (dpkg-buildflags): a stack protector and fortified libc calls.
const cflags = "-g -O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2"

// buildBinaries builds every binary into dir with version linked in, as
// the Makefile's build does, and as Debian builds what it ships: without
// build paths (-trimpath), stripped (-s -w; a panic's stack trace keeps
// its function names and lines), and, where cgo links, hardened:
// position-independent (PIE, for address space randomization), with full
// RELRO (relro, now) and cflags; the static fxd-shim has no C code. The
// PIE and -trimpath builds compile every package once more than make build
// does (about two minutes on two cores), then come from the build cache.
func buildBinaries(root, dir, version string) error {
	for _, b := range binaries {
		ldflags := "-s -w -X main.version=" + version
		env := append(os.Environ(), "CGO_ENABLED=0")
		var mode []string
		if b.cgo {
			ldflags += " -linkmode=external -extldflags=-Wl,-z,relro,-z,now"
			env = append(os.Environ(), "CGO_ENABLED=1", "CGO_CFLAGS="+cflags)
			mode = []string{"-buildmode=pie"}
		}
		args := append([]string{"build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(dir, b.name)}, mode...)
		cmd := exec.Command("go", append(args, b.pkg)...)
		cmd.Dir = root
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", b.name, err, out)
		}
		if b.cgo {
			// The C compiler's version notes, which dh_strip removes too
			// (objcopy comes with gcc, which cgo needs).
			strip := exec.Command("objcopy", "--remove-section=.comment", filepath.Join(dir, b.name))
			if out, err := strip.CombinedOutput(); err != nil {
				return fmt.Errorf("objcopy %s: %w\n%s", b.name, err, out)
			}
		}
	}
	return nil
}

// helpText runs a built binary with args and returns what it printed on
// stdout and stderr; usage output may come with exit code 0 or 2.
func helpText(bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		err = nil
	}
	if err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// siteConfig is /etc/fxd/fxd.toml: the built fxd's commented default,
// checked by the same fxd, so that the package never ships a config its
// daemon refuses.
func siteConfig(fxd, dir string) (string, error) {
	out, err := exec.Command(fxd, "config", "default").Output()
	if err != nil {
		return "", fmt.Errorf("fxd config default: %w", err)
	}
	path := filepath.Join(dir, "fxd.toml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return "", err
	}
	if msg, err := exec.Command(fxd, "config", "check", path).CombinedOutput(); err != nil {
		return "", fmt.Errorf("fxd config check of the default config: %w\n%s", err, msg)
	}
	return path, nil
}

// glibcNeeded returns the newest GLIBC_x.y symbol version the dynamic
// binaries in dir need ("" when they need none), for the packages'
// dependency on the C library.
func glibcNeeded(dir string) (string, error) {
	best := ""
	for _, b := range binaries {
		f, err := elf.Open(filepath.Join(dir, b.name))
		if err != nil {
			return "", err
		}
		syms, err := f.ImportedSymbols()
		f.Close()
		if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
			return "", fmt.Errorf("read the symbols of %s: %w", b.name, err)
		}
		for _, s := range syms {
			if v, ok := strings.CutPrefix(s.Version, "GLIBC_"); ok && releasePattern.MatchString(v) && newerVersion(v, best) {
				best = v
			}
		}
	}
	return best, nil
}

// newerVersion compares dotted decimal versions: whether a > b ("" is
// older than anything).
func newerVersion(a, b string) bool {
	if b == "" {
		return a != ""
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x > y
		}
	}
	return false
}
