# osbgit — see README.md. Every target works on a fresh machine with Go.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BIN       := bin/osbgit
PKGS      := ./...

.PHONY: all build test lint bench demo e2e fuzz clean tidy

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/osbgit

## test: unit and integration tests (real git, real HTTP), with the race detector
test:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## e2e: end-to-end tests against a real kube-apiserver + etcd (envtest): the kube secret store, sync and run --leader-elect as subprocesses, the example RBAC. kube-apiserver and etcd are built from the Go module proxy on first use (~10 min on 2 cores) and cached outside the tree (.ci/k8s-test-assets.sh)
e2e:
	@assets=$$(GO="$(GO)" bash .ci/k8s-test-assets.sh) && \
	echo "KUBEBUILDER_ASSETS=$$assets" && \
	KUBEBUILDER_ASSETS="$$assets" $(GO) test -tags e2e -count=1 -timeout 30m -v ./cmd/osbgit/e2e/...

## lint: formatting and vet
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

## bench: benchmarks printing ratios against a measured floor
bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m $(PKGS)

## demo: the example broker, a local bare repo from examples/repo, then validate, diff, sync, a change, diff and sync again (examples/demo/demo.sh)
demo:
	@GO="$(GO)" MAKE="$(MAKE)" bash examples/demo/demo.sh

## fuzz: a short fuzzing run of every fuzz target
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 30s ./manifest/

clean:
	rm -rf bin
