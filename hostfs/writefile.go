package hostfs

import (
	"golang.org/x/sys/unix"
)

// write_file (docs/hostfs.md, "Writing a whole file"): one host call makes
// a regular file with its data, owner, mode and mtime, where WASI and the
// other kiln_hostfs calls take eight or more (open, writes, close, lchown,
// chmod, utimens, each resolving the path again, and an unlink of what was
// in the way). Unpacking an OS tree is mostly small files, for which that
// per-call cost, not the data, was kiln's share of the time.

// Flags of write_file.
const (
	// writeReplace removes what is at the path first (a non-directory or
	// an empty directory, as os.Remove and tar do); without it an
	// existing name is EEXIST.
	writeReplace = 1
	// writeAppend appends to the existing regular file instead of making
	// one: a file larger than the guest's buffer is written in pieces,
	// each call setting the owner, mode and mtime again.
	writeAppend = 2
)

func hostWriteFile(c *call) uint32 {
	root, rel, errno := c.writable(0)
	if errno != 0 {
		return errno
	}
	data, errno := c.bytes(2)
	if errno != 0 {
		return errno
	}
	mode, uid, gid := c.u32(4), c.id(5), c.id(6)
	sec, nsec := int64(c.stack[7]), int64(c.u32(8))
	flags := c.u32(9)
	if mode&^0o7777 != 0 || flags&^(writeReplace|writeAppend) != 0 || flags == writeReplace|writeAppend {
		return wasiEINVAL
	}
	// UTIME_NOW would stamp the host's clock into the image.
	if nsec != unix.UTIME_OMIT && nsec >= 1e9 {
		return wasiEINVAL
	}
	return wasiErrno(root.writeFile(rel, data, flags, mode, uid, gid, unix.Timespec{Sec: sec, Nsec: nsec}))
}

// writeFile is write_file on the root.
func (r *Root) writeFile(p string, data []byte, flags, mode uint32, uid, gid int, mtime unix.Timespec) error {
	return r.writeFileWith(p, flags, mtime, func(fd int) error {
		if flags&writeAppend != 0 {
			// reopen accepts a directory for reading only; O_WRONLY
			// already failed on one, but a file is what is appended to.
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT != unix.S_IFREG {
				return unix.EINVAL
			}
		}
		if err := writeAll(fd, data); err != nil {
			return err
		}
		return r.finishFile(fd, mode, uid, gid, mtime)
	})
}

// writeFileWith makes or opens the file of write_file (and tar_write) and
// has fill write it. A created file is made as WASI makes one (create:
// O_EXCL on the base name in its resolved parent, so it is always the new
// inode), an appended one is opened as WASI opens one (never a device, a
// FIFO or, here, through a final symlink).
func (r *Root) writeFileWith(p string, flags uint32, mtime unix.Timespec, fill func(fd int) error) error {
	if _, dirOnly := clean(p); dirOnly {
		return unix.EISDIR // as open(2): a file cannot be made at "d/"
	}
	var fd int
	var err error
	// With an mtime given, a file made here gets its mode and times once,
	// at the end; should anything fail before, it is settled as create
	// leaves a file (0600, the epoch), so no host clock stays in the tree.
	settled := flags&writeAppend == 0 && mtime.Nsec != unix.UTIME_OMIT
	if flags&writeAppend != 0 {
		fd, err = r.open(p, unix.O_WRONLY|unix.O_APPEND|unix.O_NOFOLLOW, 0)
	} else {
		fd, err = r.createFile(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600, settled)
		if err == unix.EEXIST && flags&writeReplace != 0 {
			// As os.Remove, which a stage would call: an empty
			// directory goes too.
			if err = r.unlink(p); err == unix.EISDIR {
				err = r.rmdir(p)
			}
			if err == nil {
				fd, err = r.createFile(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600, settled)
			}
		}
	}
	if err != nil {
		return err
	}
	defer closeFd(fd)
	if err := fill(fd); err != nil {
		if settled {
			_ = unix.Fchmod(fd, 0o600)
			r.stampFd(fd, true)
		}
		return err
	}
	return nil
}

// writeAll writes data to fd.
func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		var n int
		err := retryEINTR(func() (err error) {
			n, err = unix.Write(fd, data)
			return err
		})
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// finishFile sets the owner, mode and times of a file write_file wrote.
func (r *Root) finishFile(fd int, mode uint32, uid, gid int, mtime unix.Timespec) error {
	if mtime.Nsec == unix.UTIME_OMIT {
		r.stampFd(fd, false) // the data changed: the epoch
	}
	// The owner first: a change of owner clears setuid and setgid.
	if uid != -1 || gid != -1 {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return err
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	ts := [2]unix.Timespec{mtime, mtime}
	return futimens(fd, &ts)
}
