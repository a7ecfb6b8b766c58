# fxd: thin wrappers around the go tool. `make help` lists the targets.
GO      ?= go
BIN     ?= bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build run test test-deps check bench help

build: ## build bin/fxd, bin/fxd-shim (static) and bin/fx
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/fxd ./cmd/fxd
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/fxd-shim ./cmd/fxd-shim
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/fx ./cmd/fx

run: build ## build, then run the daemon with the embedded dev config (as root; socket /tmp/fxd-dev/fxd.sock)
	$(BIN)/fxd serve --dev

test-deps: ## install what the test suite needs (Debian packages; as root)
	./scripts/install-test-deps.sh

test: test-deps ## install test dependencies, then run the whole suite with short fuzzing (as root)
	./scripts/test.sh

check: ## gofmt, go vet, and no drift after go mod tidy
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo "gofmt: the files above need gofmt -w"; exit 1)
	$(GO) vet ./...
	$(GO) mod tidy -diff

bench: build ## Go benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchtime 2s ./daemon/... ./runtimes/... ./isolation/...

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'
