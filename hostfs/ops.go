package hostfs

import (
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// This file holds the operations both doors share, the wazero FS and the
// host module, as Root methods returning raw unix.Errno values; each door
// maps them to its own errno numbering.

// open opens guest path p with unix open flags. A created file gets exactly
// perm (the host umask never applies, so trees do not depend on the umask
// kiln runs under). Character and block devices, FIFOs and sockets are never
// opened: see reopen.
func (r *Root) open(p string, flags int, perm uint32) (int, error) {
	if flags&(unix.O_DIRECTORY|unix.O_CREAT|unix.O_ACCMODE) == unix.O_DIRECTORY && r.resolver == ResolveOpenat2 {
		return r.openDir(p, flags)
	}
	if flags&unix.O_CREAT == 0 {
		fd, err := r.lookup(p, flags&unix.O_NOFOLLOW == 0)
		if err != nil {
			return -1, err
		}
		if fd, err = r.changeOpen(fd, flags); err != nil {
			return -1, err
		}
		return reopen(fd, flags)
	}
	if _, dirOnly := clean(p); dirOnly {
		return -1, unix.EISDIR // as open(2): O_CREAT cannot make a directory
	}
	return r.create(p, flags, perm)
}

// openDir opens a directory for reading in one openat2 call. It needs no
// checked O_PATH step: with O_DIRECTORY the kernel refuses anything but a
// directory during the lookup, before it would open a device or a FIFO.
func (r *Root) openDir(p string, flags int) (int, error) {
	if err := checkPath(p); err != nil {
		return -1, err
	}
	rel, _ := clean(p)
	root, err := r.acquire()
	if err != nil {
		return -1, err
	}
	defer r.mu.RUnlock()
	flags &= unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_NONBLOCK
	return openat2(root, rel, flags|unix.O_RDONLY|unix.O_NOCTTY, 0)
}

// create is open with O_CREAT. The new file itself is made with
// O_CREAT|O_EXCL|O_NOFOLLOW on the base name in its resolved parent, so what
// it opens is always the regular file it just made; an existing file goes
// through lookup and reopen like any open.
func (r *Root) create(p string, flags int, perm uint32) (int, error) {
	return r.createFile(p, flags, perm, false)
}

// createFile is create; settled leaves a file it makes as the kernel made
// it (perm under the umask, the host's clock) for a caller that sets the
// final mode and times at once (write_file), which saves two calls a file.
func (r *Root) createFile(p string, flags int, perm uint32, settled bool) (int, error) {
	cur := p
	for hops := 0; hops <= maxSymlinks; hops++ {
		if flags&unix.O_EXCL == 0 {
			fd, err := r.lookup(cur, flags&unix.O_NOFOLLOW == 0)
			if err == nil {
				if fd, err = r.changeOpen(fd, flags); err != nil {
					return -1, err
				}
				return reopen(fd, flags&^unix.O_CREAT)
			}
			if err != unix.ENOENT {
				return -1, err
			}
		}
		dirfd, base, err := r.parent(cur)
		if err != nil {
			return -1, err
		}
		if base == "" {
			closeFd(dirfd)
			return -1, unix.EEXIST // the root always exists
		}
		if err := r.touchAt(dirfd, base, true); err != nil {
			closeFd(dirfd)
			return -1, err
		}
		var fd int
		err = retryEINTR(func() (err error) {
			fd, err = unix.Openat(dirfd, base, flags|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, perm)
			return err
		})
		if err == nil {
			if !settled {
				if err := unix.Fchmod(fd, perm); err != nil {
					closeFd(dirfd)
					closeFd(fd)
					return -1, err
				}
				r.stampFd(fd, true)
			}
			r.stampDir(dirfd)
			closeFd(dirfd)
			return fd, nil
		}
		if err != unix.EEXIST || flags&unix.O_EXCL != 0 {
			closeFd(dirfd)
			return -1, err
		}
		// The name exists though lookup found nothing: it is a dangling
		// symlink, whose target open(2) would create, or a file created since
		// the lookup, which the next lookup finds.
		target, lerr := readlinkFd(dirfd, base)
		dir, inRoot := r.inRootPath(dirfd)
		closeFd(dirfd)
		switch {
		case lerr == unix.EINVAL || flags&unix.O_NOFOLLOW != 0:
			continue
		case lerr != nil:
			return -1, lerr
		case strings.HasPrefix(target, "/"):
			cur = target
		case inRoot:
			// A relative target is taken from the directory the link is
			// in, as the kernel does: "/lib/link -> ../etc/x" with
			// "/lib -> usr/lib" names /usr/etc/x.
			cur = path.Join(dir, target)
		default:
			// Lexically, which can only stay inside the root too.
			rel, _ := clean(cur)
			cur = path.Join(path.Dir(rel), target)
		}
	}
	return -1, unix.ELOOP
}

// reopen turns a resolved O_PATH descriptor into a real one with flags, and
// closes opath.
//
// Why this is race-free: the type check is made on the descriptor itself
// (fstat), and the reopen goes through /proc/self/fd/N, a magic link that
// lands on the very inode the descriptor holds without looking any name up in
// the tree. Swapping the name for a device node or a symlink after the check
// changes nothing. Opening the path directly and checking afterwards would be
// too late: opening a device already runs its driver, and opening a FIFO
// blocks the host thread until a writer comes.
func reopen(opath int, flags int) (int, error) {
	defer closeFd(opath)
	var st unix.Stat_t
	if err := unix.Fstat(opath, &st); err != nil {
		return -1, err
	}
	acc := flags & unix.O_ACCMODE
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return -1, unix.ELOOP // only with O_NOFOLLOW, as open(2) reports it
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		return -1, unix.EPERM
	case unix.S_IFDIR:
		if acc != unix.O_RDONLY || flags&unix.O_TRUNC != 0 {
			return -1, unix.EISDIR
		}
		// "." beneath a directory descriptor is that directory, so no
		// procfs round trip is needed.
		var fd int
		err := retryEINTR(func() (err error) {
			fd, err = unix.Openat(opath, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			return err
		})
		return fd, err
	}
	if flags&unix.O_DIRECTORY != 0 {
		return -1, unix.ENOTDIR
	}
	// O_NOFOLLOW would refuse the magic link itself; the final name was
	// already resolved without following.
	flags &^= unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_DIRECTORY
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(procFd(opath), flags|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		return err
	})
	return fd, err
}

// stat follows a final symlink.
func (r *Root) stat(p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := r.lookup(p, true)
	if err != nil {
		return st, err
	}
	defer closeFd(fd)
	err = unix.Fstat(fd, &st)
	return st, err
}

// lstat does not follow a final symlink, unless a trailing slash demands a
// directory.
func (r *Root) lstat(p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if _, dirOnly := clean(p); dirOnly {
		return r.stat(p)
	}
	dirfd, base, err := r.parent(p)
	if err != nil {
		return st, err
	}
	defer closeFd(dirfd)
	if base == "" {
		err = unix.Fstat(dirfd, &st)
		return st, err
	}
	// One statx gives both the stat and the mount check of sameMount.
	var stx unix.Statx_t
	err = unix.Statx(dirfd, base, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT,
		unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, &stx)
	if err != nil {
		return st, err
	}
	if _, id, _ := mountOfStatx(&stx, r.mount.byDev); id != r.mount.id {
		return st, unix.EXDEV
	}
	return statFromStatx(&stx), nil
}

// mkdir makes a directory with exactly perm (umask aside).
func (r *Root) mkdir(p string, perm uint32) error {
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
	if err := unix.Mkdirat(dirfd, base, perm); err != nil {
		return err
	}
	if err := chmodAt(dirfd, base, unix.S_IFDIR, perm); err != nil {
		return err
	}
	r.stampCreated(dirfd, base)
	return nil
}

// chmodAt sets the exact mode of the node just created as base in dirfd. It
// reopens the name with O_NOFOLLOW and checks the type, so a name swapped for
// a symlink in between is refused rather than followed.
func chmodAt(dirfd int, base string, typ uint32, perm uint32) error {
	fd, err := unix.Openat(dirfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer closeFd(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != typ {
		return unix.EEXIST // not the node we made: another writer raced us
	}
	return chmodFd(fd, perm)
}

// chmodFd changes the mode of an O_PATH descriptor through its magic link:
// fchmod refuses O_PATH descriptors, and the magic link names exactly the
// resolved inode. A device node is not opened by this.
func chmodFd(fd int, perm uint32) error {
	return unix.Fchmodat(unix.AT_FDCWD, procFd(fd), perm, 0)
}

// chmod follows a final symlink, like chmod(2). perm may hold the setuid,
// setgid and sticky bits.
func (r *Root) chmod(p string, perm uint32) error {
	if perm&^0o7777 != 0 {
		return unix.EINVAL
	}
	fd, err := r.lookup(p, true)
	if err != nil {
		return err
	}
	if fd, err = r.changeFd(fd); err != nil {
		closeFd(fd)
		return err
	}
	defer closeFd(fd)
	return chmodFd(fd, perm)
}

// rename moves from to to, both resolved in the root: nothing can be moved
// out of it or brought in.
func (r *Root) rename(from, to string) error {
	fromDir, fromBase, err := r.parent(from)
	if err != nil {
		return err
	}
	defer closeFd(fromDir)
	toDir, toBase, err := r.parent(to)
	if err != nil {
		return err
	}
	defer closeFd(toDir)
	if fromBase == "" || toBase == "" {
		return unix.EBUSY // the root is a mount point for the guest
	}
	var fromSt, toSt unix.Stat_t
	replaced := unix.Fstatat(toDir, toBase, &toSt, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		unix.Fstatat(fromDir, fromBase, &fromSt, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		(fromSt.Dev != toSt.Dev || fromSt.Ino != toSt.Ino)
	if err := r.touchAt(fromDir, fromBase, true); err != nil {
		return err
	}
	if err := r.touchAt(toDir, toBase, true); err != nil {
		return err
	}
	if err := unix.Renameat(fromDir, fromBase, toDir, toBase); err != nil {
		return err
	}
	if replaced {
		r.forgetIfLast(&toSt)
	}
	r.stampDir(fromDir)
	r.stampDir(toDir)
	return nil
}

// unlink removes a non-directory; a final symlink is removed, not followed.
func (r *Root) unlink(p string) error {
	dirfd, base, err := r.parent(p)
	if err != nil {
		return err
	}
	defer closeFd(dirfd)
	if base == "" {
		return unix.EISDIR
	}
	return r.remove(dirfd, base, 0)
}

// rmdir removes an empty directory.
func (r *Root) rmdir(p string) error {
	dirfd, base, err := r.parent(p)
	if err != nil {
		return err
	}
	defer closeFd(dirfd)
	if base == "" {
		return unix.EBUSY
	}
	return r.remove(dirfd, base, unix.AT_REMOVEDIR)
}

// remove is unlinkat, which also forgets an inode whose last name it was
// and stamps the directory.
func (r *Root) remove(dirfd int, base string, flags int) error {
	var st unix.Stat_t
	known := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
	if err := r.touchAt(dirfd, base, true); err != nil {
		return err
	}
	if err := unix.Unlinkat(dirfd, base, flags); err != nil {
		return err
	}
	if known {
		r.forgetIfLast(&st)
	}
	r.stampDir(dirfd)
	return nil
}

// link makes newPath a hard link to oldPath. Both ends are resolved in the
// root and linkat is called without AT_SYMLINK_FOLLOW, so a symlink at
// oldPath is linked itself, never the file outside it may point to.
func (r *Root) link(oldPath, newPath string) error {
	oldDir, oldBase, err := r.parent(oldPath)
	if err != nil {
		return err
	}
	defer closeFd(oldDir)
	newDir, newBase, err := r.parent(newPath)
	if err != nil {
		return err
	}
	defer closeFd(newDir)
	switch {
	case oldBase == "":
		return unix.EPERM // a directory cannot be hard linked
	case newBase == "":
		return unix.EEXIST
	}
	// A new name for a shared inode would let a later write through it
	// reach the base: the file is made private first.
	if err := r.changeAt(oldDir, oldBase); err != nil {
		return err
	}
	if err := r.touchAt(newDir, newBase, true); err != nil {
		return err
	}
	if err := unix.Linkat(oldDir, oldBase, newDir, newBase, 0); err != nil {
		return err
	}
	r.stampDir(newDir)
	return nil
}

// symlink makes linkPath a symlink holding target verbatim. Any target is
// allowed, absolute ones included: it is only ever resolved in the root.
func (r *Root) symlink(target, linkPath string) error {
	if target == "" {
		return unix.ENOENT
	}
	if err := checkPath(target); err != nil {
		return err
	}
	dirfd, base, err := r.parent(linkPath)
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
	if err := unix.Symlinkat(target, dirfd, base); err != nil {
		return err
	}
	r.stampCreated(dirfd, base)
	return nil
}

// readlink returns a symlink's target verbatim.
func (r *Root) readlink(p string) (string, error) {
	dirfd, base, err := r.parent(p)
	if err != nil {
		return "", err
	}
	defer closeFd(dirfd)
	if base == "" {
		return "", unix.EINVAL
	}
	return readlinkFd(dirfd, base)
}

// statFromStatx fills a stat from a statx of STATX_BASIC_STATS.
func statFromStatx(x *unix.Statx_t) unix.Stat_t {
	ts := func(t unix.StatxTimestamp) unix.Timespec { return unix.Timespec{Sec: t.Sec, Nsec: int64(t.Nsec)} }
	return unix.Stat_t{
		Dev:     unix.Mkdev(x.Dev_major, x.Dev_minor),
		Ino:     x.Ino,
		Nlink:   uint64(x.Nlink),
		Mode:    uint32(x.Mode),
		Uid:     x.Uid,
		Gid:     x.Gid,
		Rdev:    unix.Mkdev(x.Rdev_major, x.Rdev_minor),
		Size:    int64(x.Size),
		Blksize: int64(x.Blksize),
		Blocks:  int64(x.Blocks),
		Atim:    ts(x.Atime),
		Mtim:    ts(x.Mtime),
		Ctim:    ts(x.Ctime),
	}
}

// inRootPath returns the guest path of the directory dirfd (resolved inside
// the root) from the kernel's name for it. It reports false when that name
// is not below the root's, which cannot happen for a descriptor resolved in
// the root unless the tree was moved meanwhile; callers then fall back to a
// lexical join, which stays inside the root as well.
func (r *Root) inRootPath(dirfd int) (string, bool) {
	root, err := r.acquire()
	if err != nil {
		return "", false
	}
	rootPath, err1 := os.Readlink("/proc/self/fd/" + strconv.Itoa(root))
	r.mu.RUnlock()
	dirPath, err2 := os.Readlink("/proc/self/fd/" + strconv.Itoa(dirfd))
	if err1 != nil || err2 != nil {
		return "", false
	}
	if dirPath == rootPath {
		return "/", true
	}
	rel, ok := strings.CutPrefix(dirPath, rootPath+"/")
	if !ok || strings.HasSuffix(dirPath, " (deleted)") {
		return "", false
	}
	return "/" + rel, true
}
