# Make targets for kiln's WebAssembly stages, for the top-level Makefile to
# include. The commands themselves are in build.sh, which tests call too.
STAGES_OUT ?= out/stages

.PHONY: hello-stages
hello-stages: ## build the hello stages (Go, C, Rust) into STAGES_OUT
	stages-wasm/build.sh $(STAGES_OUT)
