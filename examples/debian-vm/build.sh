#!/usr/bin/env bash
# Builds a Debian 12 VM disk from the committed lock packages.lock.json: a
# GPT qcow2 with a BIOS boot partition (GRUB's core.img, boot.img in the
# MBR), an ESP (Debian's signed grubx64.efi as EFI/BOOT/BOOTX64.EFI) and an
# ext4 root, that boots with SeaBIOS and with OVMF to a serial console
# (ttyS0), sshd on port 22 and DHCP on the first NIC (systemd-networkd).
# Prints the disk's path as its last line.
#
#   examples/debian-vm/build.sh OUTDIR [PUBKEY]
#
# PUBKEY is an SSH public key (a file holding one line, or the line itself)
# for the user kiln's ~/.ssh/authorized_keys; kiln has no password, so
# without a key nobody logs in over ssh or on the console.
#
# Package scripts kiln does not reproduce (openssh-server's host keys,
# linux-image's update-initramfs, ...; kiln.depmod writes the module index
# linux-image's would) run at the first boot through
# kiln-dpkg-configure.service (docs/maintainer-scripts.md, docs/boot.md).
#
# The .debs are downloaded from the Debian mirror this machine's apt uses
# (KILN_DEBIAN_MIRROR overrides it) and checked against the lock's sha256.
# Refresh the lock when the archive has moved on (a download answers 404):
#   kiln deb resolve --suite bookworm --required -o examples/debian-vm/packages.lock.json \
#       usr-is-merged systemd systemd-sysv linux-image-amd64 openssh-server grub-pc-bin \
#       grub-efi-amd64-bin grub-efi-amd64-signed busybox kmod udev dbus
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: build.sh OUTDIR [PUBKEY]}
pubkey=${2:-}
kiln=${KILN:-$root/bin/kiln}

key=
if [ -n "$pubkey" ]; then
	if [ -f "$pubkey" ]; then
		[ "$(wc -l <"$pubkey")" -le 1 ] || { echo "build.sh: $pubkey: more than one line; give one public key" >&2; exit 2; }
		key=$(cat "$pubkey")
	else
		key=$pubkey
	fi
	# The key goes into the manifest's JSON by sed: a closed pattern (key
	# type, base64, a comment of plain characters) keeps quotes,
	# backslashes, sed's & and | and line breaks out.
	case $key in *$'\n'* | *$'\r'*) echo "build.sh: the public key has a line break" >&2; exit 2 ;; esac
	if ! printf '%s' "$key" | grep -Eqx '(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [A-Za-z0-9@._:+-]{1,128})?'; then
		echo "build.sh: not an SSH public key line (TYPE BASE64 [COMMENT], comment of [A-Za-z0-9@._:+-]): $pubkey" >&2
		exit 2
	fi
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -x "$kiln" ] || make -C "$root" build >&2
# Without KILN_DEBIAN_MIRROR, kiln takes the mirror from apt's configuration.
"$kiln" deb manifest --lock "$here/packages.lock.json" ${KILN_DEBIAN_MIRROR:+--mirror "$KILN_DEBIAN_MIRROR"} \
	-o "$out/debian-vm.json.tmp" "$here/vm.json.in"
if [ -n "$key" ]; then
	sed "s|\"@KILN_PUBKEY@\"|\"$key\"|" "$out/debian-vm.json.tmp" >"$out/debian-vm.json"
else
	sed 's|"@KILN_PUBKEY@"||' "$out/debian-vm.json.tmp" >"$out/debian-vm.json"
fi
rm "$out/debian-vm.json.tmp"
grep -q '@KILN_PUBKEY@' "$out/debian-vm.json" && { echo "build.sh: the key placeholder is still in the manifest" >&2; exit 1; }
# The package installation and the initramfs are the expensive stages:
# stored, so a change to a later stage re-runs only the stages after them.
"$kiln" build --checkpoint kiln.deb --checkpoint kiln.initramfs --output-directory "$out" "$out/debian-vm.json" >&2
echo "$out/disk.qcow2"
