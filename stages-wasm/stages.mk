# Make targets for kiln's WebAssembly stages, for the top-level Makefile to
# include. The commands themselves are in build.sh, which tests call too.
STAGES_OUT ?= out/stages

.PHONY: hello-stages
# C and Rust are built when their wasm32-wasi toolchains are here; build.sh
# notes each one it leaves out and what to install.
hello-stages: ## build the example hello stages (Go; C and Rust when installed) into STAGES_OUT
	stages-wasm/build.sh $(STAGES_OUT)
