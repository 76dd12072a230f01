#!/bin/sh
# Builds kiln's WebAssembly stages into OUTDIR.
#
#   stages-wasm/build.sh OUTDIR [go] [c] [rust]
#
# With no language named, builds all three hello stages:
#   OUTDIR/hello-go.wasm    GOOS=wasip1 GOARCH=wasm go build -trimpath
#   OUTDIR/hello-c.wasm     clang --target=wasm32-wasi (Debian: clang lld
#                           wasi-libc libclang-rt-14-dev-wasm32)
#   OUTDIR/hello-rust.wasm  Debian's rustc 1.63 --target wasm32-wasi (Debian:
#                           rustc libstd-rust-dev-wasm32), std only
# GO, CLANG and RUSTC override the tools. RUSTC defaults to /usr/bin/rustc
# because a rustup toolchain first on PATH usually has no wasm32-wasi target.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR [go] [c] [rust]}
shift
[ $# -gt 0 ] || set -- go c rust
mkdir -p "$out"
out=$(cd "$out" && pwd)

GO=${GO:-go}
CLANG=${CLANG:-clang}
RUSTC=${RUSTC:-/usr/bin/rustc}

for lang in "$@"; do
	case $lang in
	go)
		(cd "$here" && GOOS=wasip1 GOARCH=wasm "$GO" build -trimpath \
			-o "$out/hello-go.wasm" ./hello/go)
		;;
	c)
		"$CLANG" --target=wasm32-wasi -O2 -std=c11 -Wall -Wextra -Werror \
			-I"$here/sdk/c" -o "$out/hello-c.wasm" \
			"$here/hello/c/hello.c" "$here/sdk/c/kiln.c"
		;;
	rust)
		# The SDK is an rlib of its own; no cargo, no crates.
		rlib=$(mktemp -d)
		trap 'rm -rf "$rlib"' EXIT
		"$RUSTC" --target wasm32-wasi --edition 2021 -O -C strip=debuginfo \
			--crate-type rlib --crate-name kiln \
			-o "$rlib/libkiln.rlib" "$here/sdk/rust/lib.rs"
		"$RUSTC" --target wasm32-wasi --edition 2021 -O -C strip=debuginfo \
			--extern kiln="$rlib/libkiln.rlib" \
			-o "$out/hello-rust.wasm" "$here/hello/rust/main.rs"
		;;
	*)
		echo "build.sh: unknown language $lang (want go, c or rust)" >&2
		exit 2
		;;
	esac
done
