#!/usr/bin/env bash
# Builds a bootable-layout Debian 12 disk (qcow2, GPT, one ext4 root) with
# kiln from a rootfs that debootstrap makes. Needs root, debootstrap and
# Debian's mirror; the rootfs tarball is kept and reused.
#
#   examples/debian/build.sh [KILN] [WORKDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kiln=${1:-bin/kiln}
work=${2:-out/debian}
mkdir -p "$work"
work=$(cd "$work" && pwd)

tarball=$work/rootfs.tar.gz
if [ ! -f "$tarball" ]; then
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,openssh-server,chrony \
    bookworm "$work/rootfs" "$("$here/../lib/apt-mirror.sh" bookworm)"
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$work/rootfs" -czf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$work/rootfs"
fi
sum=sha256:$(sha256sum "$tarball" | cut -d' ' -f1)
sed -e "s|@CHECKSUM@|$sum|g" -e "s|@TARBALL@|$tarball|g" "$here/debian.json.in" > "$work/debian.json"
"$kiln" build --checkpoint org.osbuild.untar --output-directory "$work" "$work/debian.json"
qemu-img info "$work/debian.qcow2"
