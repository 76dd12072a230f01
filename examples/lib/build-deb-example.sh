#!/usr/bin/env bash
# The build step the Debian examples share: fills the example's manifest
# template from its committed lock (kiln deb manifest), builds it with
# kiln's default store into OUTDIR and prints the output's path last.
#
#   examples/lib/build-deb-example.sh EXAMPLE_DIR TEMPLATE OUTPUT OUTDIR
#
# The .debs come from the mirror apt uses here, or KILN_DEBIAN_MIRROR; KILN
# names the kiln binary (default bin/kiln, built when missing).
set -euo pipefail
dir=${1:?example directory} template=${2:?template} output=${3:?output file} out=${4:?usage: build.sh OUTDIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
kiln=${KILN:-$root/bin/kiln}
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -x "$kiln" ] || make -C "$root" build >&2
name=$(basename "$dir")
"$kiln" deb manifest --lock "$dir/packages.lock.json" ${KILN_DEBIAN_MIRROR:+--mirror "$KILN_DEBIAN_MIRROR"} \
	-o "$out/$name.json" "$dir/$template"
"$kiln" build --output-directory "$out" "$out/$name.json" >&2
echo "$out/$output"
