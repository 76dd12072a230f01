#!/bin/sh
# Builds kiln's stage library into OUTDIR (by default
# stages-wasm/library/modules, which the library package embeds):
#
#   stages-wasm/build-library.sh [OUTDIR]
#
#   kiln-stages.wasm      every Go stage (stages-wasm/stages), one multi-call
#                         module picking the stage by argv[0]
#   kiln-truncate.wasm    org.osbuild.truncate in C (needs clang, wasi-libc)
#   kiln-machine-id.wasm  org.osbuild.machine-id in Rust (needs Debian's
#                         rustc and libstd-rust-dev-wasm32)
#
# Each module then gets a kiln.stages custom section listing its stages
# with their schemas (stages-wasm/stages/schemas). When clang or rustc is
# missing, that stage is listed in the Go module instead, which contains
# it too, and a note says so on stderr.
#
# The output is reproducible: no VCS stamp, no build id, no paths.
# GO, CLANG and RUSTC override the tools.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/library/modules}
mkdir -p "$out"
out=$(cd "$out" && pwd)

GO=${GO:-go}
CLANG=${CLANG:-clang}
RUSTC=${RUSTC:-/usr/bin/rustc}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Go: -buildvcs=false and an empty build id keep the bytes (and so every
# stage id) independent of the commit and of the toolchain's cache.
(cd "$here" && GOOS=wasip1 GOARCH=wasm "$GO" build -trimpath -buildvcs=false \
	-ldflags=-buildid= -o "$tmp/kiln-stages.wasm" ./stages)
(cd "$here" && "$GO" build -o "$tmp/wasmmeta" ./internal/cmd/kiln-wasmmeta)

native=""
if command -v "$CLANG" >/dev/null 2>&1; then
	"$CLANG" --target=wasm32-wasi -O2 -std=c11 -Wall -Wextra -Werror \
		-I"$here/sdk/c" -o "$tmp/kiln-truncate.wasm" \
		"$here/stages/c/truncate.c" "$here/sdk/c/kiln.c"
	"$tmp/wasmmeta" -schemas "$here/stages/schemas" -o "$tmp/kiln-truncate.wasm" \
		"$tmp/kiln-truncate.wasm" org.osbuild.truncate
	native="$native org.osbuild.truncate"
else
	echo "build-library.sh: $CLANG not found: org.osbuild.truncate ships in its Go build" >&2
fi

if [ -x "$RUSTC" ]; then
	# The SDK is an rlib of its own; no cargo. The path prefix is remapped
	# so that panic locations do not carry this checkout's path.
	remap="--remap-path-prefix=$here=stages-wasm"
	"$RUSTC" --target wasm32-wasi --edition 2021 -O -C strip=debuginfo "$remap" \
		--crate-type rlib --crate-name kiln \
		-o "$tmp/libkiln.rlib" "$here/sdk/rust/lib.rs"
	"$RUSTC" --target wasm32-wasi --edition 2021 -O -C strip=debuginfo "$remap" \
		--extern kiln="$tmp/libkiln.rlib" \
		-o "$tmp/kiln-machine-id.wasm" "$here/stages/rust/machine_id.rs"
	"$tmp/wasmmeta" -schemas "$here/stages/schemas" -o "$tmp/kiln-machine-id.wasm" \
		"$tmp/kiln-machine-id.wasm" org.osbuild.machine-id
	native="$native org.osbuild.machine-id"
else
	echo "build-library.sh: $RUSTC not found: org.osbuild.machine-id ships in its Go build" >&2
fi

# The Go module describes every stage with a schema except those a C or
# Rust module took over.
gostages=""
for f in "$here"/stages/schemas/*.json; do
	name=$(basename "$f" .json)
	case " $native " in
	*" $name "*) ;;
	*) gostages="$gostages $name" ;;
	esac
done
# shellcheck disable=SC2086 # word splitting of the stage list is wanted
"$tmp/wasmmeta" -schemas "$here/stages/schemas" -o "$tmp/kiln-stages.wasm" \
	"$tmp/kiln-stages.wasm" $gostages

rm -f "$out"/*.wasm
for m in "$tmp"/*.wasm; do
	cp "$m" "$out/"
done
