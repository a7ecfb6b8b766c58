#!/usr/bin/env bash
# The whole test suite: static checks, every package's tests (root-only tests
# included when run as root), the packages (scripts/test-packages.sh builds,
# installs, upgrades and purges the .deb, as root), then each fuzz target
# for a fixed number of inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
# Fuzz budgets are counts of inputs, not durations: with a duration, Go
# 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" (no failing input) at the deadline (go.dev/issue/75804, fixed
# in Go 1.27). Each target gets FUZZEXECS inputs (~5-13 s here), the slower
# FuzzLoad (a TOML parse and validation per input) fewer.
FUZZEXECS=${FUZZEXECS:-50000}
declare -A fuzzexecs=([FuzzLoad]=15000)

echo "== gofmt and go vet"
bad=$(gofmt -l .)
if [ -n "$bad" ]; then echo "gofmt needed: $bad" >&2; exit 1; fi
go vet ./...

echo "== go test"
go test -count=1 -timeout 20m ./...

echo "== packages: build, inspect, install, upgrade, remove (scripts/test-packages.sh)"
if [ "$(id -u)" = 0 ]; then
  ./scripts/test-packages.sh
elif [ "${CI:-}" = true ]; then
  echo "test.sh: the package test installs the .deb: run as root (sudo make test)" >&2
  exit 1
else
  echo "test.sh: not root: the package test (scripts/test-packages.sh) is skipped" >&2
fi

echo "== fuzz (${FUZZEXECS} inputs each, FuzzLoad ${fuzzexecs[FuzzLoad]})"
# Every Fuzz* target in the module, one at a time (go test -fuzz takes one).
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    n=${fuzzexecs[$f]:-$FUZZEXECS}
    echo "-- $pkg $f (${n} inputs)"
    go test -run '^$' -fuzz "^${f}\$" -fuzztime "${n}x" "$pkg"
  done
done
echo "== all tests passed"
