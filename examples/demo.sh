#!/usr/bin/env bash
# make demo: build the example image with kiln's default store, twice, to
# show that the second build is served from the store.
set -euo pipefail
kiln=${1:-bin/kiln}
here=$(cd "$(dirname "$0")" && pwd)
out=${KILN_DEMO_OUT:-out/demo}

"$kiln" build --output-directory "$out" "$here/hello.json"
echo
echo "again, with nothing changed:"
"$kiln" build --output-directory "$out" "$here/hello.json"
echo
echo "the image's file list:"
# kiln compresses in Go; listing the tarball needs the zstd program, which a
# machine with only Go may not have.
if command -v zstd >/dev/null 2>&1; then
	tar -tvf "$out/root.tar.zst" -I zstd
else
	echo "(zstd is not installed, so tar cannot read $out/root.tar.zst: apt-get install zstd)"
fi
