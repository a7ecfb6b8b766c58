#!/usr/bin/env bash
# The whole test suite: static checks, every package's tests (root-only tests
# included when run as root), then each fuzz target for a short time.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
FUZZTIME=${FUZZTIME:-10s}

echo "== gofmt and go vet"
bad=$(gofmt -l .)
if [ -n "$bad" ]; then echo "gofmt needed: $bad" >&2; exit 1; fi
go vet ./...

echo "== go test"
go test -count=1 -timeout 20m ./...

echo "== fuzz (${FUZZTIME} each)"
# Every Fuzz* target in the module, one at a time (go test -fuzz takes one).
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "-- $pkg $f"
    go test -run '^$' -fuzz "^${f}\$" -fuzztime "$FUZZTIME" "$pkg"
  done
done
echo "== all tests passed"
