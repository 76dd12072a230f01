#!/bin/sh
# Builds kiln's WebAssembly hello stages into OUTDIR.
#
#   stages-wasm/build.sh OUTDIR [go] [c] [rust]
#   stages-wasm/build.sh --check c|rust
#
# With no language named, builds hello-go.wasm and whichever of the C and
# Rust stages this machine has a wasm32-wasi toolchain for; a missing
# toolchain skips its stage with a note on stderr (C and Rust are optional:
# kiln itself needs Go alone). A language named on the command line is
# required: a missing toolchain for it is exit status 3.
#   OUTDIR/hello-go.wasm    GOOS=wasip1 GOARCH=wasm go build -trimpath
#   OUTDIR/hello-c.wasm     clang --target=wasm32-wasi (Debian: clang lld
#                           wasi-libc libclang-rt-14-dev-wasm32)
#   OUTDIR/hello-rust.wasm  Debian's rustc 1.63 --target wasm32-wasi (Debian:
#                           rustc libstd-rust-dev-wasm32), std only
#
# --check LANG exits 0 and prints the compiler's path when this machine can
# build LANG for wasm32-wasi, else exits 3 and says on stderr what to
# install; the tests skip on it, so they and make agree.
#
# GO, CLANG and RUSTC override the tools. RUSTC defaults to /usr/bin/rustc
# because a rustup toolchain first on PATH usually has no wasm32-wasi target.
set -eu

here=$(cd "$(dirname "$0")" && pwd)

GO=${GO:-go}
CLANG=${CLANG:-clang}
RUSTC=${RUSTC:-/usr/bin/rustc}

# toolchain LANG: is a wasm32-wasi compiler for LANG here? A compiler
# alone is not enough (clang without wasi-libc has no stdio.h, rustc
# without libstd-rust-dev-wasm32 has no std), so a one-line program is
# built. Sets tool to the compiler, or why to the reason and returns 3.
toolchain() {
	probe=$(mktemp -d)
	ok=0
	case $1 in
	c)
		pkgs="clang lld wasi-libc libclang-rt-14-dev-wasm32"
		if ! tool=$(command -v "$CLANG" 2>/dev/null) || [ ! -x "$tool" ]; then
			why="$CLANG not found"
		elif printf '#include <stdio.h>\nint main(void) { return puts("") < 0; }\n' >"$probe/p.c" &&
			"$tool" --target=wasm32-wasi -o "$probe/p.wasm" "$probe/p.c" >"$probe/log" 2>&1; then
			ok=1
		else
			why="$tool cannot build for wasm32-wasi: $(head -n 1 "$probe/log")"
		fi
		;;
	rust)
		pkgs="rustc libstd-rust-dev-wasm32"
		if ! tool=$(command -v "$RUSTC" 2>/dev/null) || [ ! -x "$tool" ]; then
			why="$RUSTC not found"
		elif printf 'fn main() { println!(); }\n' >"$probe/p.rs" &&
			"$tool" --target wasm32-wasi -o "$probe/p.wasm" "$probe/p.rs" >"$probe/log" 2>&1; then
			ok=1
		else
			why="$tool cannot build for wasm32-wasi: $(head -n 1 "$probe/log")"
		fi
		;;
	esac
	rm -rf "$probe"
	[ "$ok" = 1 ] && return 0
	why="$why (Debian: apt-get install $pkgs)"
	return 3
}

if [ "${1:-}" = "--check" ]; then
	case ${2:-} in
	c | rust)
		if toolchain "$2"; then
			echo "$tool"
			exit 0
		fi
		echo "$why" >&2
		exit 3
		;;
	*)
		echo "usage: build.sh --check c|rust" >&2
		exit 2
		;;
	esac
fi

out=${1:?usage: build.sh OUTDIR [go] [c] [rust]}
shift
optional=0
if [ $# -eq 0 ]; then
	set -- go c rust
	optional=1
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

for lang in "$@"; do
	case $lang in
	go | c | rust) ;;
	*)
		echo "build.sh: unknown language $lang (want go, c or rust)" >&2
		exit 2
		;;
	esac
	if [ "$lang" != go ]; then
		if ! toolchain "$lang"; then
			if [ "$optional" = 1 ]; then
				echo "build.sh: hello-$lang.wasm not built: $why; kiln needs Go alone, the C and Rust stages are optional" >&2
				continue
			fi
			echo "build.sh: cannot build hello-$lang.wasm: $why" >&2
			exit 3
		fi
	fi
	case $lang in
	go)
		(cd "$here" && GOOS=wasip1 GOARCH=wasm "$GO" build -trimpath \
			-o "$out/hello-go.wasm" ./hello/go)
		;;
	c)
		"$tool" --target=wasm32-wasi -O2 -std=c11 -Wall -Wextra -Werror \
			-I"$here/sdk/c" -o "$out/hello-c.wasm" \
			"$here/hello/c/hello.c" "$here/sdk/c/kiln.c"
		;;
	rust)
		# The SDK is an rlib of its own; no cargo, no crates.
		rlib=$(mktemp -d)
		trap 'rm -rf "$rlib"' EXIT
		"$tool" --target wasm32-wasi --edition 2021 -O -C strip=debuginfo \
			--crate-type rlib --crate-name kiln \
			-o "$rlib/libkiln.rlib" "$here/sdk/rust/lib.rs"
		"$tool" --target wasm32-wasi --edition 2021 -O -C strip=debuginfo \
			--extern kiln="$rlib/libkiln.rlib" \
			-o "$out/hello-rust.wasm" "$here/hello/rust/main.rs"
		;;
	esac
done
