# kiln's build, test and check targets. `make help` lists them.
GO        ?= go
BIN       ?= bin/kiln
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
LDFLAGS   := -X github.com/kilnbuild/kiln/cmd/kiln/internal/cli.version=$(VERSION)
FUZZTIME  ?= 10s
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(HOME)/go/bin/staticcheck)

include stages-wasm/stages.mk

.PHONY: help stages build test bench lint fuzz soak demo clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The library needs Go alone: without clang or Debian's rustc, the C and Rust
# stages ship in the Go module, with a note. The hello stages (make
# hello-stages) are examples for stage authors, not part of the library.
stages: ## build the stage library (Go; C and Rust modules when their toolchains are here) that bin/kiln embeds
	stages-wasm/build-library.sh

build: stages ## build bin/kiln with its stage library
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kiln

# Tests that spend their time in wasm stages over whole Debian trees or in
# qemu skip under -race, which slows them several times and finds nothing
# the other tests of the same code would not; the second pass runs them
# (TestDebianVMBoots: two builds of examples/debian-vm and its BIOS and UEFI
# first boots, about 6 minutes). Not beside the race pass: sharing the two
# cores with it, the two TCG first boots took up to three times as long.
# The race pass names its two longest packages first, so that go test starts
# them first: started last, the stage library's 500 s ran alone on one core.
RACE_FREE := ^(TestDebDebootstrapMinbase|TestInitramfs.*|TestGrubBoots.*|TestSystemdBoot.*|TestDebianVMBoots)$$

test: stages ## run every test with the race detector, then the few too slow for it without (privileged tests skip with a reason when not root)
	$(GO) test -race -count=1 -timeout 30m ./stages-wasm/library/ ./cmd/kiln/ ./...
	$(GO) test -count=1 -timeout 30m -run '$(RACE_FREE)' ./stages-wasm/library/ ./cmd/kiln/

bench: build ## run the benchmarks; each prints its ratio against a baseline measured in the same run, then the store, untar and Debian install figures of bench/metrics.sh (JSON in bench/metrics.json)
	$(GO) test -run '^$$' -bench . -skip '^(BenchmarkMetrics|BenchmarkUntar|BenchmarkDebInstall|BenchmarkRebuild)$$' -benchtime 3x ./...
	GO=$(GO) bench/metrics.sh

lint: stages ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@# The stages and the SDK's host calls build for wasip1 only.
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./stages-wasm/stages/... ./stages-wasm/sdk/...
	GOOS=wasip1 GOARCH=wasm $(STATICCHECK) ./stages-wasm/stages/... ./stages-wasm/sdk/...

fuzz: ## run each fuzz target for FUZZTIME
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; done

soak: stages ## the long crash and concurrency suites: 100+ SIGKILLs at crash points, 40 builds beside gc
	KILN_SOAK=1 $(GO) test -count=1 -timeout 60m -run '^(TestCrashSuite|TestConcurrencySuite)$$' -v ./cmd/kiln/

demo: build ## build kiln and run its main job on examples/
	./examples/demo.sh $(BIN)

clean: ## remove build outputs
	rm -rf bin out
