package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"strings"
	"time"
)

// Who the packages name as their maintainer, and where fxd lives.
const (
	maintainer = "fxd maintainers <fxd@fxd.dev>"
	homepage   = "https://fxd.dev"
	license    = "Apache-2.0"
	// commonLicense is where Debian keeps the license's full text
	// (base-files); the copyright file points there, as Debian's do.
	commonLicense = "/usr/share/common-licenses/Apache-2.0"
)

// gzipped compresses b at the best level with no name or time in the
// header, as dh_compress does (gzip -9n): the same input gives the same
// bytes.
func gzipped(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// debianChangelog is the package's changelog in Debian's format: one entry
// for this build.
func debianChangelog(version, release string, c *commit, when time.Time) []byte {
	var what string
	switch {
	case c == nil:
		what = "Build of release " + release + " from a source tree without git."
	case version == release:
		what = "Release " + release + ", commit " + c.sha + "."
	case strings.HasPrefix(version, release+"~git"):
		what = "Snapshot of commit " + c.sha + " before release " + release + "."
	default:
		what = "Build of commit " + c.sha + " as version " + version + "."
	}
	return fmt.Appendf(nil, "fxd (%s) unstable; urgency=medium\n\n  * %s\n  * The changes are those of the project's git history.\n\n -- %s  %s\n",
		version, what, maintainer, when.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
}

// copyright is /usr/share/doc/fxd/copyright in Debian's machine-readable
// format.
func copyright(year int) []byte {
	return fmt.Appendf(nil, `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fxd
Upstream-Contact: %s
Source: %s
Comment: fxd's binaries are statically linked with the Go modules that
 `+"`go version -m /usr/bin/fxd`"+` lists, each under its own license.

Files: *
Copyright: %d The fxd authors
License: %s

License: %s
 Licensed under the Apache License, Version 2.0 (the "License"); you may
 not use this file except in compliance with the License. You may obtain
 a copy of the License at
 .
 https://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS,
 WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 See the License for the specific language governing permissions and
 limitations under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in "%s".
`, maintainer, homepage, year, license, license, commonLicense)
}

// licenseText is the rpm's license file: the license's full text where
// the build host has it (Debian's base-files), else the copyright notice,
// which names the license and where to read it.
func licenseText(year int) []byte {
	if b, err := os.ReadFile(commonLicense); err == nil {
		return b
	}
	return copyright(year)
}

// nodeEnv is /etc/fxd/node.env, fxd-node.service's environment.
const nodeEnv = `# Environment of fxd-node.service, the node agent (fxd node -h says more).
# Keep this file mode 0600: FXD_NODE_TOKEN is a credential.
#
# Mint the credential on the daemon's host:
#   fxd nodes credential BLOCK --ttl 336h
# It admits new links for its ttl only (at most 14 days): an agent that
# must link again after that (the daemon or this node restarted) needs a
# new one here.
#
# Required:
#FXD_NODE_TOKEN=
# The daemon's HTTPS endpoint (its endpoint.listen):
#FXD_DAEMON=https://fxd.example.org:8443
# The CA of the daemon's certificate, if not one the system trusts:
#FXD_DAEMON_CA=/etc/fxd/ca.pem
# The BLOCK the credential was minted for (default "manual"):
#FXD_BLOCK=manual
# This node's name at the daemon (default: the host name):
#FXD_BLOCK_NODE=
`

// manSection is one part of a man page: a heading and its paragraphs, or
// text shown as it is (help output).
type manSection struct {
	heading, sub string // .SH heading, or .SS sub within the last heading
	text         string // roff source
	verbatim     string // shown as is, escaped
}

// manPage renders a man page. Roff is written by hand here; verbatim text
// is escaped so that groff shows it as printed.
func manPage(name string, section int, date time.Time, version, summary string, parts []manSection) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s %d %q %q %q\n", strings.ToUpper(name), section, date.UTC().Format("2006-01-02"), "fxd "+version, "fxd")
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", name, roffEscape(summary))
	for _, p := range parts {
		if p.heading != "" {
			fmt.Fprintf(&b, ".SH %s\n", p.heading)
		}
		if p.sub != "" {
			fmt.Fprintf(&b, ".SS %s\n", roffEscape(p.sub))
		}
		if p.text != "" {
			b.WriteString(strings.TrimRight(p.text, "\n") + "\n")
		}
		if p.verbatim != "" {
			b.WriteString(".PP\n.nf\n")
			for _, line := range strings.Split(strings.TrimRight(p.verbatim, "\n"), "\n") {
				b.WriteString(roffLine(line) + "\n")
			}
			b.WriteString(".fi\n")
		}
	}
	return []byte(b.String())
}

// roffLine escapes one line of verbatim text: a leading "." or "'" would
// be a request.
func roffLine(s string) string {
	s = roffEscape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffEscape escapes backslashes and minus signs (an option's "-" is a
// minus, not a hyphen) and writes non-ASCII characters as \[uXXXX].
func roffEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r > 0x7e || (r < 0x20 && r != '\t'):
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// commandsOf lists the subcommands a usage text names: the first word of
// each line indented by two spaces (not more) in the block after the line
// heading ("commands:").
func commandsOf(usage, heading string) []string {
	var out []string
	in := false
	for _, line := range strings.Split(usage, "\n") {
		switch {
		case strings.EqualFold(strings.TrimSpace(line), heading):
			in = true
		case in && strings.HasPrefix(line, "   "): // a description's next line
		case in && strings.HasPrefix(line, "  "):
			if f := strings.Fields(line); len(f) > 0 {
				out = append(out, f[0])
			}
		case in:
			return out
		}
	}
	return out
}

// fxdManPage is fxd(8): what fxd is, its usage, each subcommand's help,
// and its files.
func fxdManPage(fxd, version string, date time.Time) ([]byte, error) {
	usage, err := helpText(fxd, "--help")
	if err != nil {
		return nil, err
	}
	parts := []manSection{
		{heading: "SYNOPSIS", text: ".B fxd\n.I command\n.RI [ args ]"},
		{heading: "DESCRIPTION", text: `.B fxd
is the daemon of fxd (function serving for HPC sites) and the tool to
administer it. Users register functions and run tasks through the site's
endpoint (a unix socket and HTTPS) with
.BR fx (1);
.B fxd serve
runs every task as its caller's own account, in a cgroup with the
tenant's limits, on warm workers: on this node, in SIF images as OCI
containers, or on compute nodes that run
.BR "fxd node" .
It must run as root. Installed from a package it runs under systemd
.RB ( fxd.service ,
or
.B fxd.socket
for socket activation), configured in
.IR /etc/fxd/fxd.toml .`, verbatim: usage},
		{heading: "COMMANDS", text: "Each command prints this help with \\-h."},
	}
	for _, c := range commandsOf(usage, "commands:") {
		if c == "version" { // prints the version, whatever its arguments
			continue
		}
		help, err := helpText(fxd, c, "-h")
		if err != nil {
			return nil, err
		}
		parts = append(parts, manSection{sub: "fxd " + c, verbatim: help})
	}
	parts = append(parts,
		manSection{heading: "FILES", text: `.TP
.I /etc/fxd/fxd.toml
The site config; every key with its default and what it does.
.B fxd config check
validates it,
.B fxd config default
prints the default again.
.TP
.I /etc/fxd/node.env
The environment of
.BR fxd\-node.service :
the node credential and the daemon's URL.
.TP
.I /var/lib/fxd
The state dir (site.state_dir): task store, tokens, images, data cache.
.TP
.I /run/fxd/fxd.sock
The unix socket of the local API (endpoint.socket).
.TP
.I /usr/libexec/fxd/fxd\-shim
The static shim that runs inside every worker.`},
		manSection{heading: "SEE ALSO", text: ".BR fx (1),\n.BR systemctl (1),\n.BR systemd.socket (5)\n.PP\nThe documents in\n.IR /usr/share/doc/fxd ."},
	)
	return manPage("fxd", 8, date, version, "function serving daemon for HPC sites, and its admin commands", parts), nil
}

// fxManPage is fx(1): the users' CLI, its usage and each command's help.
func fxManPage(fx, version string, date time.Time) ([]byte, error) {
	usage, err := helpText(fx, "--help")
	if err != nil {
		return nil, err
	}
	parts := []manSection{
		{heading: "SYNOPSIS", text: ".B fx\n.I command\n.RI [ flags ]\n.RI [ args ]"},
		{heading: "DESCRIPTION", text: `.B fx
registers functions at the site's fxd endpoint and runs tasks of them,
which run as your own account. It reaches the local daemon over
.I /run/fxd/fxd.sock
by default, or an HTTPS endpoint with a token or a client certificate.`, verbatim: usage},
		{heading: "COMMANDS", text: "Each command prints this help with \\-h."},
	}
	for _, c := range commandsOf(usage, "commands:") {
		help, err := helpText(fx, c, "-h")
		if err != nil {
			return nil, err
		}
		parts = append(parts, manSection{sub: "fx " + c, verbatim: help})
	}
	parts = append(parts,
		manSection{heading: "FILES", text: ".TP\n.I ~/.config/fx/config.toml\nDefaults of the settings above ($XDG_CONFIG_HOME/fx/config.toml)."},
		manSection{heading: "SEE ALSO", text: ".BR fxd (8)"},
	)
	return manPage("fx", 1, date, version, "run functions at an fxd site", parts), nil
}
