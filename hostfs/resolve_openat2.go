package hostfs

import "golang.org/x/sys/unix"

// openat2 opens rel beneath root with chroot semantics: RESOLVE_IN_ROOT makes
// absolute symlink targets and ".." at the root resolve inside root,
// RESOLVE_NO_MAGICLINKS refuses /proc/*/fd style links, which would otherwise
// jump to any file the kernel names, wherever it is, and RESOLVE_NO_XDEV
// refuses to enter a mount inside the tree (see mountKey).
func openat2(root int, rel string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags) | unix.O_CLOEXEC,
		Mode:    uint64(mode),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	for attempt := 0; ; attempt++ {
		fd, err := unix.Openat2(root, rel, &how)
		// EAGAIN: a rename or mount raced the lookup and the kernel could not
		// prove the result is beneath root; it asks us to try again.
		if (err == unix.EAGAIN && attempt < 64) || err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// resolveOpenat2 returns an O_PATH descriptor for rel beneath root; with
// dir, O_DIRECTORY makes the kernel refuse anything but a directory. The mode
// is zero because openat2, unlike openat, refuses a mode without O_CREAT.
func resolveOpenat2(root int, rel string, follow, dir bool) (int, error) {
	flags := unix.O_PATH
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	if dir {
		flags |= unix.O_DIRECTORY
	}
	if rel == "" {
		rel = "."
	}
	return openat2(root, rel, flags, 0)
}
