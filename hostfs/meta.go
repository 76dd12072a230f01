package hostfs

import (
	"golang.org/x/sys/unix"
)

// This file holds the metadata operations WASI preview1 lacks, used by the
// host module (and utimens also by the FS). None of them follows a final
// symlink unless it says so.

// lchown changes the owner of p itself; -1 leaves an id unchanged.
func (r *Root) lchown(p string, uid, gid int) error {
	dirfd, base, err := r.parent(p)
	if err != nil {
		return err
	}
	defer closeFd(dirfd)
	if err := r.changeAt(dirfd, base); err != nil {
		return err
	}
	if base == "" {
		return unix.Fchownat(dirfd, "", uid, gid, unix.AT_EMPTY_PATH)
	}
	if err := r.sameMount(dirfd, base); err != nil {
		return err
	}
	return unix.Fchownat(dirfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// mknod makes a character or block device, a FIFO or an empty regular file,
// with exactly the permission bits of mode: mknodat applies the umask, so the
// mode is set again afterwards.
func (r *Root) mknod(p string, mode uint32, dev uint64) error {
	typ := mode & unix.S_IFMT
	switch typ {
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFREG:
	default:
		return unix.EINVAL
	}
	if mode&^(unix.S_IFMT|0o7777) != 0 {
		return unix.EINVAL
	}
	dirfd, base, err := r.parent(p)
	if err != nil {
		return err
	}
	defer closeFd(dirfd)
	if base == "" {
		return unix.EEXIST
	}
	if err := r.touchAt(dirfd, base, true); err != nil {
		return err
	}
	if err := unix.Mknodat(dirfd, base, mode, int(dev)); err != nil {
		return err
	}
	if err := chmodAt(dirfd, base, typ, mode&0o7777); err != nil {
		return err
	}
	r.stampCreated(dirfd, base)
	return nil
}

// utimens sets access and modification times with nanoseconds; a time whose
// Nsec is unix.UTIME_OMIT is kept. follow picks utimensat's two behaviours.
func (r *Root) utimens(p string, ts [2]unix.Timespec, follow bool) error {
	if follow {
		fd, err := r.lookup(p, true)
		if err != nil {
			return err
		}
		if fd, err = r.changeFd(fd); err != nil {
			closeFd(fd)
			return err
		}
		defer closeFd(fd)
		// The O_PATH descriptor's own inode: a device is never opened.
		return utimensFd(fd, ts[:])
	}
	dirfd, base, err := r.parent(p)
	if err != nil {
		return err
	}
	defer closeFd(dirfd)
	if err := r.changeAt(dirfd, base); err != nil {
		return err
	}
	if base == "" {
		return utimensFd(dirfd, ts[:])
	}
	if err := r.sameMount(dirfd, base); err != nil {
		return err
	}
	return unix.UtimesNanoAt(dirfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// xattrPath returns a host path naming p itself for the l*xattr calls:
// /proc/self/fd/<parent>/<base>. The parent is pinned by its descriptor and
// base is one component that the l* variants do not follow, so the path
// cannot lead anywhere a guest swaps in. For the root, whose base is empty,
// the magic link itself is followed (follow is true), which lands on the
// root. fsetxattr and friends would need a real descriptor, that is an open,
// which a device node or a FIFO must not get. done closes the parent.
func (r *Root) xattrPath(p string) (hostPath string, follow bool, done func(), err error) {
	dirfd, base, err := r.parent(p)
	if err != nil {
		return "", false, nil, err
	}
	done = func() { closeFd(dirfd) }
	if base == "" {
		return procFd(dirfd), true, done, nil
	}
	if err := r.sameMount(dirfd, base); err != nil {
		done()
		return "", false, nil, err
	}
	return procFd(dirfd) + "/" + base, false, done, nil
}

func (r *Root) setxattr(p, name string, value []byte, flags int) error {
	if err := r.changePath(p); err != nil {
		return err
	}
	hp, follow, done, err := r.xattrPath(p)
	if err != nil {
		return err
	}
	defer done()
	if follow {
		return unix.Setxattr(hp, name, value, flags)
	}
	return unix.Lsetxattr(hp, name, value, flags)
}

// getxattr returns the value's size; with an empty dest it only asks the
// size, and a too-small dest gives ERANGE.
func (r *Root) getxattr(p, name string, dest []byte) (int, error) {
	hp, follow, done, err := r.xattrPath(p)
	if err != nil {
		return 0, err
	}
	defer done()
	if follow {
		return unix.Getxattr(hp, name, dest)
	}
	return unix.Lgetxattr(hp, name, dest)
}

// listxattr has getxattr's size convention.
func (r *Root) listxattr(p string, dest []byte) (int, error) {
	hp, follow, done, err := r.xattrPath(p)
	if err != nil {
		return 0, err
	}
	defer done()
	if follow {
		return unix.Listxattr(hp, dest)
	}
	return unix.Llistxattr(hp, dest)
}

func (r *Root) removexattr(p, name string) error {
	if err := r.changePath(p); err != nil {
		return err
	}
	hp, follow, done, err := r.xattrPath(p)
	if err != nil {
		return err
	}
	defer done()
	if follow {
		return unix.Removexattr(hp, name)
	}
	return unix.Lremovexattr(hp, name)
}
