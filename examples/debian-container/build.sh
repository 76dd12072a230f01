#!/usr/bin/env bash
# Builds a distroless-style Debian 12 container image (busybox,
# ca-certificates, tzdata, a non-root user "kiln") from the committed lock
# packages.lock.json, as an OCI archive, with kiln's default store. Prints the
# archive's path as its last line.
#
#   examples/debian-container/build.sh OUTDIR
#
# Run it:
#   podman load -i OUTDIR/debian-container.oci.tar
#   podman run --rm --runtime runc --ulimit nofile=1024:1024 \
#       --ulimit nproc=1024:1024 localhost/kiln-debian:12
# (On Debian 12 hosts without cgroup delegation crun fails on setrlimit:
# runc with explicit --ulimit values works.)
#
# The .debs are downloaded from the Debian mirror this machine's apt uses
# (KILN_DEBIAN_MIRROR overrides it) and checked against the lock's sha256.
# Refresh the lock when the archive has moved on (a download answers 404):
#   kiln deb resolve --suite bookworm -o examples/debian-container/packages.lock.json \
#       busybox ca-certificates tzdata base-files base-passwd netbase
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: build.sh OUTDIR}
kiln=${KILN:-$root/bin/kiln}
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -x "$kiln" ] || make -C "$root" build >&2
# Without KILN_DEBIAN_MIRROR, kiln takes the mirror from apt's configuration.
"$kiln" deb manifest --lock "$here/packages.lock.json" ${KILN_DEBIAN_MIRROR:+--mirror "$KILN_DEBIAN_MIRROR"} \
	-o "$out/debian-container.json" "$here/image.json.in"
"$kiln" build --output-directory "$out" "$out/debian-container.json" >&2
echo "$out/debian-container.oci.tar"
