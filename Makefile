# osbgit — see README.md. Every target works on a fresh machine with Go.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BIN       := bin/osbgit
PKGS      := ./...

.PHONY: all build test test-short lint bench demo e2e fuzz clean tidy

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/osbgit

## test: unit and integration tests (real git, real HTTP), with the race detector: go test ./... with its test binaries kept in bin/test-race, so a run links only those whose inputs changed (.ci/gotest.sh)
test:
	GO="$(GO)" GOTEST_PKGS="$(PKGS)" bash .ci/gotest.sh bin/test-race -race -- -test.timeout=15m

## test-short: the inner loop: every package with -short (slow cases skipped), no race detector, test binaries kept in bin/test-short as for make test; built without cgo like the release binary (`make build`), which also links each test binary faster
test-short:
	CGO_ENABLED=0 GO="$(GO)" GOTEST_PKGS="$(PKGS)" bash .ci/gotest.sh bin/test-short -- -test.short -test.timeout=10m

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

## bench: issue 9's figures at full scale (several minutes): a no-op pass and `osbgit status` over 10,000 instances + 10,000 bindings, a cold converge of 1,000 + 1,000 and 1,000 async instances, each against its floor, and an osbgit sync after a one-file change against one from an empty cache dir (incremental); one line per figure, "name: ratio X (limit Y)" and the raw numbers, non-zero exit when one is over its limit (reconciler/bench; OSBGIT_BENCH_FIGURES=noop-pass,status,converge,async,incremental selects, OSBGIT_BENCH_REPS=N repeats, OSBGIT_BENCH_SCALE scales; OSBGIT_BENCH_FIGURES=scale adds the headroom figure, 100,000 + 100,000 in one long-running process, about 8 minutes)
bench:
	$(GO) test -c -o bin/bench.test ./reconciler/bench
	$(GO) build -o bin/osbgit ./cmd/osbgit
	OSBGIT_BENCH_BIN=$(CURDIR)/bin/osbgit OSBGIT_BENCH_SCALE=$${OSBGIT_BENCH_SCALE:-1} bin/bench.test -test.run '^TestFigures$$' -test.timeout 60m

## bench-short: the same figures at 1/10 scale with the same limits, the incremental one at full size, and the headroom one (scale) at 1/10 (CI; about 3.5 minutes)
.PHONY: bench-short
bench-short:
	$(GO) test -c -o bin/bench.test ./reconciler/bench
	$(GO) build -o bin/osbgit ./cmd/osbgit
	OSBGIT_BENCH_BIN=$(CURDIR)/bin/osbgit OSBGIT_BENCH_SCALE=0.1 bin/bench.test -test.run '^TestFigures$$' -test.timeout 20m

## demo: the example broker, a local bare repo from examples/repo, then validate, diff, sync, a change, diff and sync again (examples/demo/demo.sh)
demo:
	@GO="$(GO)" MAKE="$(MAKE)" bash examples/demo/demo.sh

## fuzz: a short fuzzing run of every fuzz target (FUZZTIME=30s each); the checked-in corpora also run in make test
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFile$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./manifest/
	$(GO) test -run '^$$' -fuzz '^FuzzCanonicalJSON$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./manifest/
	$(GO) test -run '^$$' -fuzz '^FuzzBuild$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./reconciler/plan/
	$(GO) test -run '^$$' -fuzz '^FuzzStatusPath$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./manifest/
	$(GO) test -run '^$$' -fuzz '^FuzzScrub$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./reconciler/redact/
	$(GO) test -run '^$$' -fuzz '^FuzzParseMessage$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./reconciler/integrity/
	$(GO) test -run '^$$' -fuzz '^FuzzMarkdown$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./reconciler/render/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./reconciler/policy/

## tidy: go mod tidy
tidy:
	$(GO) mod tidy

clean:
	rm -rf bin
