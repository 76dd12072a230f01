package hostfs

import (
	"io/fs"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
)

// NewFS exposes root to wazero as a filesystem, to mount with
// wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(fs, guestPath) or with
// [FSConfig]. With readOnly set every method that would change the tree
// returns EROFS, and files open only for reading.
//
// Paths arrive from wazero relative to the mount and cleaned. Every one is
// resolved beneath the root with chroot semantics, so an absolute symlink
// target or a ".." at the root stays in the tree. Besides the errnos each
// method lists, any method may return EBADF once the root is closed, EINVAL
// for a path holding NUL, ENAMETOOLONG for one of PATH_MAX bytes or more,
// ENOTDIR when a directory in the path is not one, ELOOP past 40 symlinks,
// and EIO for a host error wazero has no number for.
//
// What the guest sees does not depend on the host: st_dev is that of a mount
// at "/" (FSConfig gives each mount its own), inode numbers are the root's
// own, times follow the root's epoch and directories list sorted; see
// docs/hostfs.md, "Determinism".
func NewFS(root *Root, readOnly bool) experimentalsys.FS {
	return newFS(root, readOnly, "/")
}

func newFS(root *Root, readOnly bool, guestPath string) *fsys {
	return &fsys{root: root, readOnly: readOnly, dev: devFor(guestPath)}
}

// FS is NewFS(r, false).
func (r *Root) FS() experimentalsys.FS { return NewFS(r, false) }

type fsys struct {
	experimentalsys.UnimplementedFS
	root     *Root
	readOnly bool
	dev      uint64 // the st_dev the guest sees
}

// OpenFile implements experimentalsys.FS.OpenFile. All flags are honoured; a
// created file gets exactly perm (wazero passes 0600).
//
// # Errors
//   - ENOENT: path does not exist and O_CREAT is not set, or a symlink in it
//     dangles.
//   - EEXIST: O_CREAT|O_EXCL and path exists (a symlink counts).
//   - ELOOP: O_NOFOLLOW and path is a symlink.
//   - EISDIR: path is a directory and the flags ask to write or truncate.
//   - ENOTDIR: O_DIRECTORY or a trailing slash, and path is not a directory.
//   - EPERM: path is a character or block device, a FIFO or a socket. These
//     are never opened: a device node in the tree is a live host device.
//   - EROFS: a read-only FS and the flags ask to write, create, truncate or
//     append.
func (f *fsys) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	flags, errno := unixFlags(flag)
	if errno != 0 {
		return nil, errno
	}
	if f.readOnly && (flags&unix.O_ACCMODE != unix.O_RDONLY || flags&(unix.O_CREAT|unix.O_TRUNC|unix.O_APPEND) != 0) {
		return nil, experimentalsys.EROFS
	}
	fd, err := f.root.open(path, flags, fsmeta.Perm(perm))
	if err != nil {
		return nil, f.root.sysErrno(err)
	}
	if flags&unix.O_TRUNC != 0 {
		// Truncating is a change of the data (Linux truncates even with
		// O_RDONLY).
		f.root.stampFd(fd, false)
	}
	return newFile(f, fd, flags), 0
}

// unixFlags converts wazero's flags, whose numeric values differ from Linux.
func unixFlags(flag experimentalsys.Oflag) (int, experimentalsys.Errno) {
	var flags int
	switch flag & (experimentalsys.O_RDONLY | experimentalsys.O_RDWR | experimentalsys.O_WRONLY) {
	case experimentalsys.O_RDONLY:
		flags = unix.O_RDONLY
	case experimentalsys.O_RDWR:
		flags = unix.O_RDWR
	case experimentalsys.O_WRONLY:
		flags = unix.O_WRONLY
	default:
		return 0, experimentalsys.EINVAL
	}
	for _, m := range [...]struct {
		sys  experimentalsys.Oflag
		unix int
	}{
		{experimentalsys.O_APPEND, unix.O_APPEND},
		{experimentalsys.O_CREAT, unix.O_CREAT},
		{experimentalsys.O_DIRECTORY, unix.O_DIRECTORY},
		{experimentalsys.O_DSYNC, unix.O_DSYNC},
		{experimentalsys.O_EXCL, unix.O_EXCL},
		{experimentalsys.O_NOFOLLOW, unix.O_NOFOLLOW},
		{experimentalsys.O_NONBLOCK, unix.O_NONBLOCK},
		{experimentalsys.O_RSYNC, unix.O_RSYNC},
		{experimentalsys.O_SYNC, unix.O_SYNC},
		{experimentalsys.O_TRUNC, unix.O_TRUNC},
	} {
		if flag&m.sys != 0 {
			flags |= m.unix
		}
	}
	return flags, 0
}

// Lstat implements experimentalsys.FS.Lstat: a final symlink is described
// itself.
//
// # Errors
//   - ENOENT: path does not exist.
func (f *fsys) Lstat(path string) (sys.Stat_t, experimentalsys.Errno) {
	st, err := f.root.lstat(path)
	if err != nil {
		return sys.Stat_t{}, f.root.sysErrno(err)
	}
	f.root.present(&st, f.dev)
	return sysStat(&st), 0
}

// Stat implements experimentalsys.FS.Stat: a final symlink is followed,
// inside the root.
//
// # Errors
//   - ENOENT: path does not exist or is a dangling symlink.
func (f *fsys) Stat(path string) (sys.Stat_t, experimentalsys.Errno) {
	st, err := f.root.stat(path)
	if err != nil {
		return sys.Stat_t{}, f.root.sysErrno(err)
	}
	f.root.present(&st, f.dev)
	return sysStat(&st), 0
}

// Mkdir implements experimentalsys.FS.Mkdir with exactly perm (wazero passes
// 0700; stages set the final mode with kiln_hostfs.chmod).
//
// # Errors
//   - EEXIST: path exists (the root always does).
//   - ENOENT: the parent does not exist.
//   - EROFS: a read-only FS.
func (f *fsys) Mkdir(path string, perm fs.FileMode) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return f.root.sysErrno(f.root.mkdir(path, fsmeta.Perm(perm)))
}

// Chmod implements experimentalsys.FS.Chmod, following a final symlink
// inside the root.
//
// # Errors
//   - ENOENT: path does not exist or is a dangling symlink.
//   - EROFS: a read-only FS.
func (f *fsys) Chmod(path string, perm fs.FileMode) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return f.root.sysErrno(f.root.chmod(path, fsmeta.Perm(perm)))
}

// Rename implements experimentalsys.FS.Rename. Both names are resolved in
// the root, so nothing can be moved out of the tree or into it.
//
// # Errors
//   - ENOENT: from does not exist, or to's parent does not.
//   - EISDIR, ENOTDIR, ENOTEMPTY: as rename(2) for the kinds of from and to.
//   - EINVAL: to is inside from.
//   - EPERM: from or to is the root.
//   - EROFS: a read-only FS.
func (f *fsys) Rename(from, to string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return f.root.sysErrno(f.root.rename(from, to))
}

// Rmdir implements experimentalsys.FS.Rmdir.
//
// # Errors
//   - ENOENT: path does not exist.
//   - ENOTDIR: path is not a directory (a symlink to one is not).
//   - ENOTEMPTY: the directory is not empty.
//   - EPERM: path is the root.
//   - EROFS: a read-only FS.
func (f *fsys) Rmdir(path string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return f.root.sysErrno(f.root.rmdir(path))
}

// Unlink implements experimentalsys.FS.Unlink; a symlink is removed, never
// followed.
//
// # Errors
//   - ENOENT: path does not exist.
//   - EISDIR: path is a directory.
//   - EROFS: a read-only FS.
func (f *fsys) Unlink(path string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return f.root.sysErrno(f.root.unlink(path))
}

// Link implements experimentalsys.FS.Link. Both ends are resolved in the root
// and a symlink at oldPath is linked itself, not its target, so no file from
// outside the tree can be linked in.
//
// # Errors
//   - ENOENT: oldPath does not exist.
//   - EEXIST: newPath exists.
//   - EPERM: oldPath is a directory.
//   - EROFS: a read-only FS.
func (f *fsys) Link(oldPath, newPath string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return f.root.sysErrno(f.root.link(oldPath, newPath))
}

// Symlink implements experimentalsys.FS.Symlink. oldPath is stored verbatim;
// absolute targets are allowed (OS trees are full of them) because they are
// only ever resolved inside the root.
//
// # Errors
//   - EEXIST: linkName exists.
//   - ENOENT: oldPath is empty, or linkName's parent does not exist.
//   - EROFS: a read-only FS.
func (f *fsys) Symlink(oldPath, linkName string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return f.root.sysErrno(f.root.symlink(oldPath, linkName))
}

// Readlink implements experimentalsys.FS.Readlink, returning the target
// verbatim.
//
// # Errors
//   - ENOENT: path does not exist.
//   - EINVAL: path is not a symlink.
func (f *fsys) Readlink(path string) (string, experimentalsys.Errno) {
	s, err := f.root.readlink(path)
	return s, f.root.sysErrno(err)
}

// Utimens implements experimentalsys.FS.Utimens, following a final symlink
// inside the root. UTIME_OMIT keeps a time.
//
// # Errors
//   - ENOENT: path does not exist or is a dangling symlink.
//   - EROFS: a read-only FS.
func (f *fsys) Utimens(path string, atim, mtim int64) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return f.root.sysErrno(f.root.utimens(path, [2]unix.Timespec{timespec(atim), timespec(mtim)}, true))
}

// timespec converts wazero's epoch nanoseconds, or its UTIME_OMIT.
func timespec(nanos int64) unix.Timespec {
	if nanos == experimentalsys.UTIME_OMIT {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(nanos)
}

// sysStat converts a Linux stat, already as the guest may see it (see
// Root.present), to wazero's.
func sysStat(st *unix.Stat_t) sys.Stat_t {
	return sys.Stat_t{
		Dev:   st.Dev,
		Ino:   st.Ino,
		Mode:  fsmeta.FileMode(st.Mode),
		Nlink: st.Nlink,
		Size:  st.Size,
		Atim:  st.Atim.Nano(),
		Mtim:  st.Mtim.Nano(),
		Ctim:  st.Ctim.Nano(),
	}
}

var (
	_ experimentalsys.FS   = (*fsys)(nil)
	_ experimentalsys.File = (*file)(nil)
)
