package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// format is one package format: nfpm's packager name and its file name.
type format struct {
	name string
	file func(version, arch string) string
}

var formats = []format{
	{"deb", func(v, arch string) string { return "fxd_" + v + "_" + arch + ".deb" }},
	{"rpm", func(v, arch string) string { return "fxd-" + v + "." + arch + ".rpm" }},
}

// archNames are the deb and rpm names of the Go architectures packaged.
var archNames = map[string]map[string]string{
	"amd64": {"deb": "amd64", "rpm": "x86_64"},
	"arm64": {"deb": "arm64", "rpm": "aarch64"},
}

const summary = "function serving for HPC sites: daemon, CLI and systemd units"

// description is the long description, after the summary line in a deb's.
const description = `fxd serves small function invocations at HPC facilities. Users register
functions (commands, or long-lived servables that load a model once and
answer many requests) and run them through the site's endpoint, a unix
socket or HTTPS, with low latency and high throughput. Every task runs as
its caller's own account, in a cgroup with the tenant's limits, on warm
workers: on the login node, in SIF images as OCI containers (crun or
runc), or on compute nodes in pilot jobs from Slurm or PBS. Every accepted
task is stored durably and reaches a final state.

This package installs the daemon and admin tool (fxd), the users' CLI
(fx), the systemd units fxd.service, fxd.socket and fxd-node.service
(neither enabled nor started), and a commented default config in
/etc/fxd/fxd.toml.`

// build is one run of the packaging: what both formats share.
type build struct {
	root, work       string // the checkout; the temp dir with the binaries
	version, release string
	head             *commit
	when             time.Time
	generated        map[string]string // name → file in work, made once
}

// generate writes the files made for the packages (config, man pages,
// copyright, changelog) into b.work.
func (b *build) generate() error {
	if b.generated != nil {
		return nil
	}
	fxd := filepath.Join(b.work, "fxd")
	g := map[string]string{}
	conf, err := siteConfig(fxd, b.work)
	if err != nil {
		return err
	}
	g["fxd.toml"] = conf
	fxdMan, err := fxdManPage(fxd, b.version, b.when)
	if err != nil {
		return err
	}
	fxMan, err := fxManPage(filepath.Join(b.work, "fx"), b.version, b.when)
	if err != nil {
		return err
	}
	changelog := debianChangelog(b.version, b.release, b.head, b.when)
	for name, data := range map[string][]byte{
		"fxd.8.gz":     fxdMan,
		"fx.1.gz":      fxMan,
		"changelog.gz": changelog,
	} {
		z, err := gzipped(data)
		if err != nil {
			return err
		}
		if g[name], err = b.write(name, z); err != nil {
			return err
		}
	}
	for name, data := range map[string][]byte{
		"changelog": changelog,
		"copyright": copyright(b.when.Year()),
		"LICENSE":   licenseText(b.when.Year()),
		"node.env":  []byte(nodeEnv),
	} {
		if g[name], err = b.write(name, data); err != nil {
			return err
		}
	}
	b.generated = g
	return nil
}

func (b *build) write(name string, data []byte) (string, error) {
	path := filepath.Join(b.work, name)
	return path, os.WriteFile(path, data, 0o644)
}

// pack builds the package of format f into dir and returns its path.
func (b *build) pack(f format, dir string) (string, error) {
	arch, ok := archNames[runtime.GOARCH][f.name]
	if !ok {
		return "", fmt.Errorf("no %s architecture name for GOARCH %s", f.name, runtime.GOARCH)
	}
	if err := b.generate(); err != nil {
		return "", err
	}
	info, err := b.info(f.name)
	if err != nil {
		return "", err
	}
	packager, err := nfpm.Get(f.name)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, f.file(b.version, arch))
	tmp, err := os.CreateTemp(dir, ".fxd-package-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := packager.Package(nfpm.WithDefaults(info), tmp); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}

// info is the nfpm description of the package in format ("deb" or "rpm").
func (b *build) info(format string) (*nfpm.Info, error) {
	glibc, err := glibcNeeded(b.work)
	if err != nil {
		return nil, err
	}
	contents, err := b.contents(format)
	if err != nil {
		return nil, err
	}
	scripts := filepath.Join(b.root, "packaging", "scripts")
	info := &nfpm.Info{
		Name:          "fxd",
		Arch:          runtime.GOARCH,
		Platform:      "linux",
		Version:       b.version,
		VersionSchema: "none", // as it is: doc.go, Versions
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    maintainer,
		Vendor:        "fxd",
		Homepage:      homepage,
		License:       license,
		Description:   summary + "\n" + description,
		MTime:         b.when,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Umask:    0o022,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(scripts, "postinstall.sh"),
				PreRemove:   filepath.Join(scripts, "preremove.sh"),
				PostRemove:  filepath.Join(scripts, "postremove.sh"),
			},
		},
	}
	// Runtime needs: the C library of the cgo binaries (NSS accounts);
	// an OCI runtime for SIF images (without one, only the host runtime);
	// a batch scheduler's client for [[batch.pool]]s. The kernel brings
	// the rest (cgroups, loop devices, squashfs).
	switch format {
	case "deb":
		if glibc != "" {
			info.Depends = []string{"libc6 (>= " + glibc + ")"}
		}
		info.Recommends = []string{"crun | runc"}
		info.Suggests = []string{"slurm-client"}
	case "rpm":
		info.Release = "1"
		if glibc != "" {
			info.Depends = []string{"libc.so.6(GLIBC_" + glibc + ")(64bit)"}
		}
		info.Recommends = []string{"crun"}
		info.RPM.Summary = summary
		info.Description = description
		info.RPM.Group = "System Environment/Daemons"
		info.RPM.Packager = maintainer
	}
	return info, nil
}

// contents lists the package's files (doc.go draws the layout).
func (b *build) contents(format string) (files.Contents, error) {
	var c files.Contents
	add := func(src, dst, typ string, mode os.FileMode) {
		c = append(c, &files.Content{Source: src, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: b.when}})
	}
	for _, bin := range binaries {
		add(filepath.Join(b.work, bin.name), bin.dest, "", 0o755)
	}
	for _, u := range []string{"fxd.service", "fxd.socket", "fxd-node.service"} {
		add(filepath.Join(b.root, "packaging", "systemd", u), "/usr/lib/systemd/system/"+u, "", 0o644)
	}
	g := b.generated
	add(g["fxd.toml"], "/etc/fxd/fxd.toml", files.TypeConfigNoReplace, 0o644)
	add(g["node.env"], "/etc/fxd/node.env", files.TypeConfigNoReplace, 0o600)
	add("", "/var/lib/fxd", files.TypeDir, 0o711) // as fxd makes it: see fxd.service's StateDirectoryMode
	// The package owns its own directories, so that rpm removes them too
	// (dpkg lists every parent anyway).
	for _, d := range []string{"/etc/fxd", "/usr/libexec/fxd", "/usr/share/doc/fxd"} {
		add("", d, files.TypeDir, 0o755)
	}
	add(g["fxd.8.gz"], "/usr/share/man/man8/fxd.8.gz", "", 0o644)
	add(g["fx.1.gz"], "/usr/share/man/man1/fx.1.gz", "", 0o644)

	docs, err := filepath.Glob(filepath.Join(b.root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	sort.Strings(docs)
	docs = append([]string{filepath.Join(b.root, "README.md")}, docs...)
	docType := "" // deb: plain files under /usr/share/doc
	if format == "rpm" {
		docType = files.TypeRPMDoc // %doc
	}
	for _, d := range docs {
		add(d, "/usr/share/doc/fxd/"+filepath.Base(d), docType, 0o644)
	}
	switch format {
	case "deb":
		add(g["copyright"], "/usr/share/doc/fxd/copyright", "", 0o644)
		add(g["changelog.gz"], "/usr/share/doc/fxd/changelog.gz", "", 0o644)
		add(filepath.Join(b.root, "packaging", "lintian", "fxd"), "/usr/share/lintian/overrides/fxd", "", 0o644)
	case "rpm":
		add("", "/usr/share/licenses/fxd", files.TypeDir, 0o755)
		add(g["LICENSE"], "/usr/share/licenses/fxd/LICENSE", files.TypeRPMLicense, 0o644)
		add(g["changelog"], "/usr/share/doc/fxd/changelog", files.TypeRPMDoc, 0o644)
	}
	return c, nil
}
