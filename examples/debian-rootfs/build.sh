#!/usr/bin/env bash
# Builds a Debian 12 root filesystem (the Priority: required set plus systemd)
# from the committed lock packages.lock.json, as a zstd tarball, with kiln's
# default store. Prints the tarball's path as its last line.
#
#   examples/debian-rootfs/build.sh OUTDIR
#
# Maintainer scripts kiln does not reproduce are left to the first boot: the
# image carries a kiln-dpkg-configure.service that runs `dpkg --configure -a`
# once (docs/maintainer-scripts.md). `dpkg --root=TREE --verify` of the
# unpacked tarball is clean.
#
# The .debs are downloaded from the Debian mirror this machine's apt uses
# (KILN_DEBIAN_MIRROR overrides it) and checked against the lock's sha256.
# Refresh the lock when the archive has moved on (a download answers 404):
#   kiln deb resolve --suite bookworm --required -o examples/debian-rootfs/packages.lock.json \
#       usr-is-merged systemd systemd-sysv
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../lib/build-deb-example.sh" "$here" rootfs.json.in debian-rootfs.tar.zst "${1:?usage: build.sh OUTDIR}"
