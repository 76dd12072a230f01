package bootcfg

import (
	"slices"
	"strings"

	"pault.ag/go/debian/version"
)

// Kernels lists the kernels among the names of the files in the boot
// directory: each vmlinuz-VERSION, with initrd.img-VERSION (Debian) or
// initramfs-VERSION.img (Fedora) when that is there too. dir is the
// directory's path as the boot loader sees it ("/boot" or "" for a
// separate /boot). Newest first, by Debian version order (dpkg
// --compare-versions), which is what grub-mkconfig's version_sort and
// linux_entry order amount to for Debian's kernels.
func Kernels(dir string, names []string) []Kernel {
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	var ks []Kernel
	for _, n := range names {
		v, ok := strings.CutPrefix(n, "vmlinuz-")
		if !ok || v == "" || !ValidEntry(v) {
			continue
		}
		k := Kernel{Version: v, Linux: dir + "/" + n}
		for _, i := range []string{"initrd.img-" + v, "initramfs-" + v + ".img"} {
			if have[i] {
				k.Initrd = dir + "/" + i
				break
			}
		}
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b Kernel) int { return -compareVersions(a.Version, b.Version) })
	return ks
}

// compareVersions orders kernel versions as dpkg does, falling back to
// byte order for what is not a Debian version, so the order is total.
func compareVersions(a, b string) int {
	va, errA := version.Parse(a)
	vb, errB := version.Parse(b)
	if errA == nil && errB == nil {
		if c := version.Compare(va, vb); c != 0 {
			return c
		}
	}
	return strings.Compare(a, b)
}
