# fxd: thin wrappers around the go tool. `make help` lists the targets.

# Go from the official tarball lives in /usr/local/go/bin, which sudo's
# secure_path leaves out.
export PATH := $(PATH):/usr/local/go/bin

GO      ?= go
BIN     ?= bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# DEV_DIR is the dev daemon's state dir (fxd serve --dev uses the same
# default); make run installs the binaries into DEV_DIR/bin, where tenant
# accounts can execute fxd-shim and fx even when the checkout is private
# (/root, a 0700 home). /tmp is shared, so run refuses a DEV_DIR that is a
# symlink or not root's: root executes what is in it. Each path is checked
# once (stat does not follow symlinks) before anything touches it, since
# chmod and install -d -m follow a symlink to its target; a missing path is
# made with mkdir, which fails, rather than follows, on one planted since.
DEV_DIR ?= /tmp/fxd-dev
# SERVE_FLAGS are more flags for make run's fxd serve, e.g. --cgroup-parent NAME.
SERVE_FLAGS ?=

.PHONY: build run test test-deps check bench package help

build: ## build bin/fxd, bin/fxd-shim (static) and bin/fx
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/fxd ./cmd/fxd
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/fxd-shim ./cmd/fxd-shim
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/fx ./cmd/fx

run: build ## as root: install the binaries into /tmp/fxd-dev/bin and serve the dev config (socket /tmp/fxd-dev/fxd.sock)
	@test "$$(id -u)" = 0 || { echo "make run: fxd must start as root to run tasks as their callers' accounts; run: sudo make run" >&2; exit 1; }
	@for dm in $(DEV_DIR):0711 $(DEV_DIR)/bin:0755; do d=$${dm%:*} m=$${dm##*:}; \
	  st=$$(stat -c '%u %F' "$$d" 2>/dev/null); \
	  case "$$st" in \
	    "") mkdir -m $$m "$$d" || exit 1;; \
	    "0 directory") chmod $$m "$$d" || exit 1;; \
	    *) echo "make run: $$d is a symlink or not a directory owned by root ($$st); remove it (rm -rf $$d) and run again" >&2; exit 1;; \
	  esac; \
	done
	install -m 0755 $(BIN)/fxd $(BIN)/fxd-shim $(BIN)/fx $(DEV_DIR)/bin/
	$(DEV_DIR)/bin/fxd serve --dev --state-dir $(DEV_DIR) $(SERVE_FLAGS)

test-deps: ## install what the test suite needs (Debian packages; as root)
	./scripts/install-test-deps.sh

test: test-deps ## install test dependencies, then run the whole suite with short fuzzing (as root)
	./scripts/test.sh

check: ## gofmt, go vet, the import-direction test, and no drift after go mod tidy
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo "gofmt: the files above need gofmt -w"; exit 1)
	$(GO) vet ./...
	$(GO) test -count=1 -run 'TestImport' ./cmd/fxd
	$(GO) mod tidy -diff

package: ## build dist/fxd_<version>_amd64.deb and dist/fxd-<version>.x86_64.rpm (PACKAGE_VERSION=V sets the version)
	$(GO) run ./packaging $(if $(PACKAGE_VERSION),--version $(PACKAGE_VERSION))

bench: build ## Go benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchtime 2s ./daemon/... ./runtimes/... ./isolation/...

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'
