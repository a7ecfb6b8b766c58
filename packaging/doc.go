// Command packaging builds fxd's .deb and .rpm with nfpm used as a
// library: `go run ./packaging` (or `make package`) from the checkout
// writes dist/fxd_<version>_amd64.deb and dist/fxd-<version>.x86_64.rpm.
//
// It builds fxd, fx and the static fxd-shim itself (go build with the
// version linked in, into a temp dir), and packs:
//
//	/usr/bin/fxd, /usr/bin/fx
//	/usr/libexec/fxd/fxd-shim          found there by runtimes.FindShim
//	/usr/lib/systemd/system/           fxd.service, fxd.socket, fxd-node.service (systemd/)
//	/etc/fxd/fxd.toml                  `fxd config default`, a config file kept on
//	                                   upgrade (conffile; %config(noreplace)),
//	                                   checked with `fxd config check` at build time
//	/etc/fxd/node.env                  fxd-node.service's environment (0600), idem
//	/var/lib/fxd/                      the state dir, 0711 root (as fxd makes it)
//	/usr/share/doc/fxd/                README.md, docs/*.md, copyright, changelog
//	/usr/share/man/                    fxd(8) and fx(1), made from the binaries' help
//
// The maintainer scripts are scripts/ here; one script per hook serves
// both formats, telling them apart by their arguments (deb passes words,
// rpm counts).
//
// # Versions
//
// The repository's VERSION file names the next release, "X.Y.Z" (digits
// and dots). A build of a commit tagged vX.Y.Z, from a clean tree, is
// version X.Y.Z. Any other build is a snapshot before it:
//
//	X.Y.Z~git<YYYYMMDDhhmmss>.<commit, 7 hex>[.dirty]
//
// with the commit's UTC committer time, and .dirty when the tree has
// uncommitted changes; without git it is X.Y.Z. The same string serves
// both formats and is what `fxd --version` prints: "~" sorts before
// anything in dpkg and in rpm (4.10 and later), so snapshots come before
// their release and after the one before (bump VERSION just after a
// release), and later commits sort later. The deb version has no Debian
// revision (the package is native); the rpm's Release is 1. --version
// overrides all of it with any string of digits, letters, ".", "+" and "~"
// that starts with a digit: no "-" (rpm refuses it in a version, dpkg
// reads it as a revision), no ":" (an epoch) and no "_".
//
// The program imports no fxd package: what it learns of fxd (the default
// config, the help texts) it asks the binaries it built, which are what
// the packages ship.
package main
