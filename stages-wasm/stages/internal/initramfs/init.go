package initramfs

import (
	"fmt"
	"regexp"
	"strings"
)

// BusyboxPath is where the archive holds busybox; /init calls every
// applet through it, and /bin/sh links to it for the #! line.
const BusyboxPath = "/bin/busybox"

var modPathRE = regexp.MustCompile(`^/lib/modules/[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*\.ko$`)

// Init renders /init: it mounts /dev, /proc and /sys, loads modules (paths
// in the archive) in the order given, finds the root device named by
// root= on the kernel command line (UUID=, LABEL= or a /dev path), mounts
// it (read-only unless rw is on the command line, as initramfs-tools
// does; rootfstype= and rootflags= are honoured) and switch_roots to
// init= or /sbin/init. On failure it says why on the console and starts a
// shell there. The paths go into the script unquoted, so they are held to
// a pattern.
func Init(modules []string, rootWait int) (string, error) {
	for _, m := range modules {
		if !modPathRE.MatchString(m) || strings.Contains(m, "/../") {
			return "", fmt.Errorf("%w: module path %q", ErrPath, m)
		}
	}
	if rootWait <= 0 {
		rootWait = 30
	}
	var b strings.Builder
	b.WriteString(initHead)
	b.WriteString("for m in")
	for _, m := range modules {
		b.WriteString(" \\\n\t" + m)
	}
	b.WriteString("; do\n")
	fmt.Fprintf(&b, initTail, rootWait*10, rootWait)
	return b.String(), nil
}

const initHead = `#!/bin/sh
# kiln.initramfs's /init: load the root device's modules, mount the root
# filesystem, switch_root to its init. Written by kiln, not by
# initramfs-tools or dracut; see docs/boot.md.
bb=/bin/busybox
$bb mkdir -p /dev /proc /sys /run /root /tmp
$bb mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
exec </dev/console >/dev/console 2>&1
$bb mount -t proc -o nosuid,nodev,noexec proc /proc
$bb mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
$bb mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run

fail() {
	echo "kiln initramfs: $*"
	echo "kiln initramfs: starting a shell on the console"
	exec $bb sh
}

`

const initTail = `	$bb insmod "$m" || echo "kiln initramfs: insmod $m failed"
done

root= rootfstype= rootflags= init=/sbin/init mode=ro
for arg in $($bb cat /proc/cmdline); do
	case "$arg" in
	root=*) root=${arg#root=} ;;
	rootfstype=*) rootfstype=${arg#rootfstype=} ;;
	rootflags=*) rootflags=${arg#rootflags=} ;;
	init=*) init=${arg#init=} ;;
	rw) mode=rw ;;
	ro) mode=ro ;;
	esac
done
[ -n "$root" ] || fail "no root= on the kernel command line"

# Wait for the device: udev does not run here, the kernel makes the nodes
# in devtmpfs as the drivers find the disks.
dev= i=0
while :; do
	case "$root" in
	UUID=*|LABEL=*) dev=$($bb findfs "$root" 2>/dev/null) ;;
	/dev/*) [ -b "$root" ] && dev=$root ;;
	*) fail "root=$root: kiln's initramfs finds UUID=, LABEL= or /dev/... only" ;;
	esac
	[ -n "$dev" ] && break
	i=$((i + 1))
	[ $i -ge %d ] && fail "root device $root did not appear in %d s"
	$bb sleep 0.1
done

opts=$mode
[ -n "$rootflags" ] && opts=$opts,$rootflags
if [ -n "$rootfstype" ]; then
	$bb mount -t "$rootfstype" -o "$opts" "$dev" /root || fail "mounting $dev on /root failed"
else
	$bb mount -o "$opts" "$dev" /root || fail "mounting $dev on /root failed"
fi
[ -x "/root$init" ] || [ -L "/root$init" ] || fail "$init is not in the root filesystem"
for d in dev proc sys run; do
	$bb mount --move /$d /root/$d || fail "moving /$d into the root filesystem failed"
done
exec $bb switch_root /root "$init" "$@"
`
