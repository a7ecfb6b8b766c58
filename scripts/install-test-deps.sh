#!/usr/bin/env bash
# Install the Debian packages fxd's test suite needs: useradd/userdel for real
# tenant accounts, python3 for the documented servable example, procps.
# Idempotent; run as root. Only the package registry is needed.
set -euo pipefail
need=()
for p in passwd python3 procps util-linux; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: missing packages ${need[*]}; run as root (sudo make test)" >&2
  exit 1
fi
echo "install-test-deps: apt-get install ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
