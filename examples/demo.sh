#!/usr/bin/env bash
# make demo: run kiln's main job on the examples with the default store.
set -euo pipefail
kiln=${1:-bin/kiln}
"$kiln" version
echo
"$kiln" store fsck
"$kiln" store ls
