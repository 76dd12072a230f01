package store

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// bindReadOnly bind-mounts src on dst and makes that one mount read-only,
// nosuid and nodev: a tree in the store may hold a setuid-root binary, file
// capabilities or a 0666 block device node made by a stage, and whoever
// reaches a read context (a stage's host tools, an assembler) must not be
// able to gain privileges or reach a host device through them. (nosuid
// also disables file capabilities on exec.) mount_setattr changes only the
// attributes it names, so the flags the kernel locks on mounts inherited by
// a user namespace are kept without being restated; older kernels get the
// classic remount.
func bindReadOnly(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("store: bind mount %s on %s: %w", src, dst, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	err := unix.MountSetattr(unix.AT_FDCWD, dst, 0, &attr)
	if errors.Is(err, unix.ENOSYS) {
		err = remountReadOnly(dst)
	}
	if err != nil {
		_ = unix.Unmount(dst, unix.MNT_DETACH)
		return fmt.Errorf("store: making %s read-only: %w", dst, err)
	}
	return nil
}

func remountReadOnly(dst string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dst, &st); err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	for _, f := range []struct{ st, ms int64 }{
		{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if st.Flags&f.st != 0 {
			flags |= uintptr(f.ms)
		}
	}
	return unix.Mount("", dst, "", flags, "")
}

// unmount detaches dst; detaching cannot fail on a busy mount, and the
// mount namespace dies with the process anyway.
func unmount(dst string) error {
	if err := unix.Unmount(dst, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("store: unmounting %s: %w", dst, err)
	}
	return nil
}
