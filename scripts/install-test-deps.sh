#!/usr/bin/env bash
# Install the Debian packages fxd's test suite needs: useradd/userdel for real
# tenant accounts, python3 for the documented servable example, procps;
# gcc and libc6-dev, since the tests build fxd with cgo (NSS accounts);
# squashfs-tools (mksquashfs) and busybox-static (/bin/busybox) to build test
# SIF images offline; crun and runc to run them as OCI containers; then
# Slurm (slurmctld, slurmd, munge), started as a single-node cluster by
# scripts/start-local-slurm.sh for the batch/slurm tests; for
# scripts/test-packages.sh, lintian, rpm (to inspect the .rpm) and systemd
# (systemd-analyze verify, which needs no running systemd), and binutils
# (objcopy) for the packaging build.
# Idempotent; run as root. Only the package registry is needed.
set -euo pipefail
need=()
for p in passwd python3 procps util-linux gcc libc6-dev squashfs-tools busybox-static crun runc lintian rpm systemd binutils man-db; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ "$(id -u)" != 0 ]; then
  if [ ${#need[@]} -gt 0 ]; then
    echo "install-test-deps: missing packages ${need[*]}; run as root (sudo make test)" >&2
    exit 1
  fi
  echo "install-test-deps: not root: Slurm is not started, and the tests that need it skip (sudo make test runs them)" >&2
  exit 0
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "install-test-deps: apt-get install ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
"$(dirname "$0")/start-local-slurm.sh"
