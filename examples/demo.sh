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
tar -tvf "$out/root.tar.zst" -I zstd 2>/dev/null || tar -tvf "$out/root.tar.zst"
