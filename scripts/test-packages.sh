#!/usr/bin/env bash
# test-packages.sh: the proof of packaging/ (issue 7), run by scripts/test.sh
# (make test) as root. It builds the .deb and the .rpm, inspects the .rpm
# (rpm -qip, -qlp, -qcp, --scripts), runs lintian on the .deb (no error; a
# warning only if packaging/lintian-accepted.md accepts it), installs the
# .deb on this machine (dpkg -i), checks the installed fxd, its config and
# its units (systemd-analyze verify), runs the packaging tests that need
# the installed daemon (FXD_INSTALLED=/usr/bin/fxd go test -run
# TestInstalled ./packaging), edits the config, upgrades to a rebuilt
# package of a higher version and checks that the edit survived, then
# removes (config and state kept) and purges (both gone) the package.
# Whatever it made goes at exit, on failure too: the package is purged and
# the temp dir removed. It refuses to touch an fxd package it did not
# install.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

say() { printf 'test-packages: %s\n' "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root: it installs and removes the fxd package"
for c in dpkg-deb rpm lintian systemd-analyze unshare setpriv; do
  command -v "$c" >/dev/null || die "$c is missing; run scripts/install-test-deps.sh"
done

t0=$(date +%s)
declare -a timings=()
lap_t=$t0
lap() { # lap NAME: how long the step since the last lap took
  local now
  now=$(date +%s)
  timings+=("$1 $((now - lap_t))s")
  lap_t=$now
}

# The marker says the installed fxd is this script's own (a run that was
# killed before its cleanup): only then may it be purged.
marker=/etc/fxd/.installed-by-test-packages
pkg_state() { dpkg-query -W -f='${db:Status-Status}' fxd 2>/dev/null || true; }
case "$(pkg_state)" in
"" | not-installed) ;;
*)
  [ -e $marker ] || die "an fxd package is installed here ($(pkg_state)) that this script did not install; remove it first (dpkg -P fxd)"
  say "purging the fxd package a killed run left"
  dpkg -P fxd >/dev/null
  ;;
esac

work=$(mktemp -d /tmp/fxd-test-packages.XXXXXX)
cleanup() {
  local rc=$?
  trap - EXIT
  case "$(pkg_state)" in
  "" | not-installed) ;;
  *) dpkg -P fxd >/dev/null 2>&1 || say "could not purge fxd: dpkg -P fxd by hand" ;;
  esac
  rm -rf "$work"
  if [ $rc = 0 ]; then
    say "passed in $(($(date +%s) - t0))s: ${timings[*]}"
  else
    say "failed (exit $rc) after $(($(date +%s) - t0))s"
  fi
  exit $rc
}
trap cleanup EXIT

# 1. Build: the version from VERSION and git, then a higher one for the
# upgrade (the release of VERSION plus +ci1 sorts after its snapshots and
# after the release itself).
say "go run ./packaging"
mapfile -t built < <(go run ./packaging --out "$work/v1")
deb=${built[0]} rpm=${built[1]}
v1=$(dpkg-deb -f "$deb" Version)
v2="$(cat VERSION)+ci1"
mapfile -t built2 < <(go run ./packaging --version "$v2" --out "$work/v2")
deb2=${built2[0]}
[ "$deb" = "$work/v1/fxd_${v1}_amd64.deb" ] || die "the .deb is $deb, want fxd_${v1}_amd64.deb"
[ "$rpm" = "$work/v1/fxd-${v1}.x86_64.rpm" ] || die "the .rpm is $rpm, want fxd-${v1}.x86_64.rpm"
dpkg --compare-versions "$v2" gt "$v1" || die "dpkg: $v2 does not sort after $v1"
[ "$(rpm --eval "%{lua: print(rpm.vercmp('$v2', '$v1'))}")" = 1 ] || die "rpm: $v2 does not sort after $v1"
lap build

# 2. The .rpm: metadata, files, config files, scripts.
say "inspect $rpm"
rpm -K --nosignature "$rpm" | grep -q 'digests OK' || die "rpm -K: bad digests"
info=$(rpm -qip "$rpm")
for want in "Name        : fxd" "Version     : $v1" "Release     : 1" "Architecture: x86_64" "License     : Apache-2.0"; do
  grep -qxF "$want" <<<"$info" || die "rpm -qip: no line \"$want\":"$'\n'"$info"
done
want_files=$(
  printf '%s\n' /etc/fxd /etc/fxd/fxd.toml /etc/fxd/node.env /usr/bin/fx /usr/bin/fxd \
    /usr/lib/systemd/system/fxd-node.service /usr/lib/systemd/system/fxd.service /usr/lib/systemd/system/fxd.socket \
    /usr/libexec/fxd /usr/libexec/fxd/fxd-shim /usr/share/doc/fxd /usr/share/doc/fxd/README.md /usr/share/doc/fxd/changelog \
    /usr/share/licenses/fxd /usr/share/licenses/fxd/LICENSE /usr/share/man/man1/fx.1.gz /usr/share/man/man8/fxd.8.gz /var/lib/fxd
  for d in docs/*.md; do echo "/usr/share/doc/fxd/${d#docs/}"; done
)
diff <(sort <<<"$want_files") <(rpm -qlp "$rpm" | sort) >&2 || die "rpm -qlp: the file list differs (< wanted, > packed)"
[ "$(rpm -qcp "$rpm" | sort | tr '\n' ' ')" = "/etc/fxd/fxd.toml /etc/fxd/node.env " ] || die "rpm -qcp: $(rpm -qcp "$rpm")"
flags=$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEMODES:perms}\n]' "$rpm")
for want in "/etc/fxd/fxd.toml cn -rw-r--r--" "/etc/fxd/node.env cn -rw-------" "/var/lib/fxd  drwx--x--x" "/usr/libexec/fxd/fxd-shim  -rwxr-xr-x"; do
  grep -qxF "$want" <<<"$flags" || die "rpm: no \"$want\" (config files %config(noreplace), modes):"$'\n'"$flags"
done
scripts=$(rpm -qp --scripts "$rpm")
for s in postinstall:postinstall preuninstall:preremove postuninstall:postremove; do
  grep -q "^${s%%:*} scriptlet (using /bin/sh):" <<<"$scripts" || die "rpm --scripts: no ${s%%:*} scriptlet"
  # each scriptlet is the script in packaging/scripts, whole
  # (rpm adds a blank line after each: blank lines count only before text)
  awk -v s="${s%%:*}" '/^[a-z]+ scriptlet \(using/ {on = ($1 == s); blank = 0; next}
    on && /^$/ {blank++; next} on {while (blank) {print ""; blank--}; print}' <<<"$scripts" |
    diff - "packaging/scripts/${s#*:}.sh" >&2 || die "rpm's ${s%%:*} scriptlet differs from packaging/scripts/${s#*:}.sh"
done
if grep -q '^pretrans\|^posttrans\|^preinstall' <<<"$scripts"; then die "rpm: unexpected scriptlets:"$'\n'"$scripts"; fi
rpm -qpR "$rpm" | grep -q '^libc.so.6(GLIBC_2\.[0-9]*)(64bit)$' || die "rpm -qpR: no dependency on the C library: $(rpm -qpR "$rpm")"
lap rpm

# 3. lintian: no error; each warning accepted in packaging/lintian-accepted.md.
say "lintian $deb"
lint=$(lintian --display-info --pedantic "$deb" 2>&1 | grep -v '^running with root privileges' || true)
if [ -n "$lint" ]; then printf '%s\n' "$lint" >&2; fi
if grep -q '^E:' <<<"$lint"; then die "lintian reports errors"; fi
while read -r tag; do
  grep -qF "\`$tag\`" packaging/lintian-accepted.md || die "lintian warns $tag, which packaging/lintian-accepted.md does not accept: fix it, or accept it there with the reason"
done < <(sed -n 's/^[WIP]: fxd[^:]*: \([^ ]*\).*/\1/p' <<<"$lint" | sort -u)
lap lintian

# 4. Install. Nothing starts; the config passes; the units verify.
say "dpkg -i $deb"
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >&2
touch $marker
[ "$(fxd --version)" = "fxd $v1" ] || die "fxd --version: $(fxd --version), want fxd $v1"
fxd config check /etc/fxd/fxd.toml
[ "$(stat -c '%a %U' /var/lib/fxd)" = "711 root" ] || die "/var/lib/fxd: $(stat -c '%a %U' /var/lib/fxd), want 711 root"
[ "$(stat -c '%a' /etc/fxd/node.env)" = 600 ] || die "/etc/fxd/node.env: mode $(stat -c '%a' /etc/fxd/node.env), want 600"
for p in /proc/[0-9]*; do
  if [ "$(readlink "$p/exe" 2>/dev/null)" = /usr/bin/fxd ]; then
    die "fxd runs after install (pid ${p#/proc/}): the package must not start it"
  fi
done
man -w fxd >/dev/null && man -w fx >/dev/null || die "no man page for fxd or fx"
verify=$(systemd-analyze verify /usr/lib/systemd/system/fxd.service /usr/lib/systemd/system/fxd.socket \
  /usr/lib/systemd/system/fxd-node.service 2>&1) || die "systemd-analyze verify failed:"$'\n'"$verify"
[ -z "$verify" ] || die "systemd-analyze verify complains (it exits 0 on what it ignores):"$'\n'"$verify"
lap install

# 5. The installed daemon under a notify socket and in fxd.service's sandbox.
say "FXD_INSTALLED=/usr/bin/fxd go test -run TestInstalled ./packaging/"
if ! FXD_INSTALLED=/usr/bin/fxd go test -count=1 -v -run '^TestInstalled' ./packaging/ >"$work/installed.log" 2>&1; then
  cat "$work/installed.log" >&2
  die "the tests of the installed daemon failed"
fi
grep -E '^(--- |    --- |ok )' "$work/installed.log" >&2
lap installed-tests

# 6. Edit the config and make state, then upgrade: both survive.
say "edit /etc/fxd/fxd.toml, dpkg -i $deb2"
sed -i 's/^level = "info"$/level = "warn"/' /etc/fxd/fxd.toml
echo '# edited by scripts/test-packages.sh' >>/etc/fxd/fxd.toml
grep -qx 'level = "warn"' /etc/fxd/fxd.toml || die "could not edit the config"
fxd config check /etc/fxd/fxd.toml
sum=$(sha256sum </etc/fxd/fxd.toml)
fxd token issue --config /etc/fxd/fxd.toml --identity pkgtest@example.org >/dev/null 2>&1
DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$deb2" >&2
[ "$(fxd --version)" = "fxd $v2" ] || die "after the upgrade fxd --version says $(fxd --version), want fxd $v2"
[ "$(sha256sum </etc/fxd/fxd.toml)" = "$sum" ] || die "the upgrade changed the edited /etc/fxd/fxd.toml"
[ ! -e /etc/fxd/fxd.toml.dpkg-new ] && [ ! -e /etc/fxd/fxd.toml.dpkg-dist ] || die "the upgrade left a new config beside the edited one"
fxd token list --config /etc/fxd/fxd.toml 2>&1 | grep -q pkgtest@example.org || die "the upgrade lost the state (the token)"
lap upgrade

# 7. Remove: config and state stay. Purge: both go.
say "dpkg -r fxd, dpkg -P fxd"
dpkg -r fxd >&2
[ "$(pkg_state)" = config-files ] || die "after dpkg -r the package is $(pkg_state), want config-files"
[ ! -e /usr/bin/fxd ] || die "dpkg -r left /usr/bin/fxd"
[ "$(sha256sum </etc/fxd/fxd.toml)" = "$sum" ] || die "dpkg -r changed or removed /etc/fxd/fxd.toml"
[ -s /var/lib/fxd/tokens ] || die "dpkg -r removed the state in /var/lib/fxd"
dpkg -P fxd >&2
[ ! -e /etc/fxd ] || die "dpkg -P left /etc/fxd: $(ls -A /etc/fxd)"
[ ! -e /var/lib/fxd ] || die "dpkg -P left /var/lib/fxd: $(ls -A /var/lib/fxd)"
case "$(pkg_state)" in "" | not-installed) ;; *) die "after dpkg -P the package is $(pkg_state)" ;; esac
lap remove-purge
