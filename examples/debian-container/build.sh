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
exec "$here/../lib/build-deb-example.sh" "$here" image.json.in debian-container.oci.tar "${1:?usage: build.sh OUTDIR}"
