package hostfs

import (
	"encoding/binary"
	"io"
	"io/fs"
	"slices"
	"strings"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
)

// file is an open regular file or directory of a root. wazero uses each File
// from one goroutine at a time, so it has no lock.
type file struct {
	experimentalsys.UnimplementedFile

	root     *Root
	dev      uint64 // the st_dev the guest sees
	fd       int    // -1 once closed
	append   bool
	readOnly bool
	flags    int // as opened, for a reopen after a copy-up

	// st caches the host's Dev and Ino and the type, which never change,
	// and ino the guest's number for them: it stays the same while the
	// file is open even if its last name is removed meanwhile.
	statDone bool
	st       unix.Stat_t
	ino      uint64

	// Directory reading: raw linux_dirent64 records from getdents64, the
	// whole directory sorted by name once read, and how far into it Readdir
	// has got. dirents is nil until the first Readdir after open or rewind.
	dirBuf  []byte
	dirents []experimentalsys.Dirent
	dirPos  int
}

func newFile(fsys *fsys, fd int, flags int) *file {
	return &file{root: fsys.root, dev: fsys.dev, fd: fd, append: flags&unix.O_APPEND != 0, readOnly: fsys.readOnly, flags: flags}
}

func (f *file) cachedStat() (*unix.Stat_t, experimentalsys.Errno) {
	if f.fd < 0 {
		return nil, experimentalsys.EBADF
	}
	if !f.statDone {
		if err := unix.Fstat(f.fd, &f.st); err != nil {
			return nil, f.root.sysErrno(err)
		}
		f.statDone = true
		f.ino = f.root.inodes.number(f.st.Dev, f.st.Ino)
	}
	return &f.st, 0
}

// Dev implements experimentalsys.File.Dev: the mount's, not the host's.
func (f *file) Dev() (uint64, experimentalsys.Errno) {
	if _, errno := f.cachedStat(); errno != 0 {
		return 0, errno
	}
	return f.dev, 0
}

// Ino implements experimentalsys.File.Ino: the root's number, not the
// host's.
func (f *file) Ino() (sys.Inode, experimentalsys.Errno) {
	if _, errno := f.cachedStat(); errno != 0 {
		return 0, errno
	}
	return f.ino, 0
}

// IsDir implements experimentalsys.File.IsDir.
func (f *file) IsDir() (bool, experimentalsys.Errno) {
	st, errno := f.cachedStat()
	if errno != 0 {
		return false, errno
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR, 0
}

// IsAppend implements experimentalsys.File.IsAppend.
func (f *file) IsAppend() bool { return f.append }

// SetAppend implements experimentalsys.File.SetAppend. Linux can toggle
// O_APPEND with fcntl, so the file is not reopened.
//
// # Errors
//   - EBADF: the file is closed.
//   - EROFS: the file belongs to a read-only FS.
func (f *file) SetAppend(enable bool) experimentalsys.Errno {
	if f.fd < 0 {
		return experimentalsys.EBADF
	}
	if f.readOnly && enable {
		return experimentalsys.EROFS
	}
	fl, err := unix.FcntlInt(uintptr(f.fd), unix.F_GETFL, 0)
	if err != nil {
		return f.root.sysErrno(err)
	}
	if enable {
		fl |= unix.O_APPEND
	} else {
		fl &^= unix.O_APPEND
	}
	if _, err := unix.FcntlInt(uintptr(f.fd), unix.F_SETFL, fl); err != nil {
		return f.root.sysErrno(err)
	}
	f.append = enable
	return 0
}

// Stat implements experimentalsys.File.Stat.
//
// # Errors
//   - EBADF: the file is closed.
func (f *file) Stat() (sys.Stat_t, experimentalsys.Errno) {
	if _, errno := f.cachedStat(); errno != 0 {
		return sys.Stat_t{}, errno
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return sys.Stat_t{}, f.root.sysErrno(err)
	}
	f.root.presentIno(&st, f.dev, f.ino)
	return sysStat(&st), 0
}

// Read implements experimentalsys.File.Read; end of file is n == 0, not an
// error.
//
// # Errors
//   - EBADF: the file is closed or not open for reading.
//   - EISDIR: the file is a directory.
func (f *file) Read(buf []byte) (int, experimentalsys.Errno) {
	if f.fd < 0 {
		return 0, experimentalsys.EBADF
	}
	if len(buf) == 0 {
		return 0, 0
	}
	var n int
	err := retryEINTR(func() (err error) {
		n, err = unix.Read(f.fd, buf)
		return err
	})
	return max(n, 0), f.root.sysErrno(err)
}

// Pread implements experimentalsys.File.Pread.
//
// # Errors
//   - EBADF: the file is closed or not open for reading.
//   - EINVAL: off is negative.
//   - EISDIR: the file is a directory.
func (f *file) Pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	if f.fd < 0 {
		return 0, experimentalsys.EBADF
	}
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	if len(buf) == 0 {
		return 0, 0
	}
	var n int
	err := retryEINTR(func() (err error) {
		n, err = unix.Pread(f.fd, buf, off)
		return err
	})
	return max(n, 0), f.root.sysErrno(err)
}

// Seek implements experimentalsys.File.Seek. A directory only rewinds to
// offset zero, which restarts Readdir.
//
// # Errors
//   - EBADF: the file is closed.
//   - EINVAL: a negative resulting offset, a bad whence, or a directory seek
//     other than to the start.
func (f *file) Seek(offset fileOffset, whence int) (int64, experimentalsys.Errno) {
	if f.fd < 0 {
		return 0, experimentalsys.EBADF
	}
	if isDir, _ := f.IsDir(); isDir {
		if offset != 0 || whence != io.SeekStart {
			return 0, experimentalsys.EINVAL
		}
		f.dirents, f.dirPos = nil, 0
	}
	off, err := unix.Seek(f.fd, offset, whence)
	return off, f.root.sysErrno(err)
}

// fileOffset is int64 under another name, only so that go vet's stdmethods
// check, which wants every Seek(int64, int) to return error like io.Seeker,
// leaves alone this Seek, whose signature is wazero's File interface.
type fileOffset = int64

// Readdir implements experimentalsys.File.Readdir. It never returns "." or
// ".." (wazero adds its own), nor io.EOF: fewer than n entries means the end.
// Entries come sorted by name bytes, not in the host filesystem's order
// (hash order on ext4, creation order on tmpfs), and with the root's inode
// numbers, given in that sorted order: the whole directory is read on the
// first call after opening or rewinding.
//
// # Errors
//   - EBADF: the file is closed or not a directory.
//   - ENOENT: the directory was removed.
func (f *file) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	if isDir, errno := f.IsDir(); errno != 0 {
		return nil, errno
	} else if !isDir {
		return nil, experimentalsys.EBADF
	}
	if f.dirents == nil {
		all, errno := f.readAll()
		if errno != 0 {
			return nil, errno
		}
		f.dirents, f.dirPos = all, 0
	}
	out := f.dirents[f.dirPos:]
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	f.dirPos += len(out)
	return slices.Clone(out), 0
}

// readAll reads the rest of the directory with getdents64, sorts it and
// numbers the inodes. The result is never nil.
func (f *file) readAll() ([]experimentalsys.Dirent, experimentalsys.Errno) {
	if f.dirBuf == nil {
		f.dirBuf = make([]byte, 16<<10)
	}
	all := []experimentalsys.Dirent{}
	for {
		var m int
		err := retryEINTR(func() (err error) {
			m, err = unix.Getdents(f.fd, f.dirBuf)
			return err
		})
		if err != nil {
			return nil, f.root.sysErrno(err)
		}
		if m <= 0 {
			break
		}
		for pos := 0; pos < m; {
			d, reclen, ok := f.dirent(f.dirBuf[pos:m])
			pos += reclen
			if ok {
				all = append(all, d)
			}
		}
	}
	slices.SortFunc(all, func(a, b experimentalsys.Dirent) int { return strings.Compare(a.Name, b.Name) })
	for i := range all {
		all[i].Ino = f.root.inodes.number(f.st.Dev, all[i].Ino)
	}
	return all, 0
}

// dirent decodes the linux_dirent64 at the start of rec (u64 ino, s64 off,
// u16 reclen, u8 type, NUL-terminated name) and returns its length. ok is
// false for "." and "..". Ino is still the host's.
func (f *file) dirent(rec []byte) (d experimentalsys.Dirent, reclen int, ok bool) {
	reclen = int(binary.LittleEndian.Uint16(rec[16:18]))
	name := rec[19:reclen]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	if string(name) == "." || string(name) == ".." {
		return d, reclen, false
	}
	d.Ino = binary.LittleEndian.Uint64(rec[0:8])
	d.Name = string(name)
	d.Type = f.direntType(rec[18], d.Name)
	return d, reclen, true
}

// direntType converts d_type; filesystems that leave it DT_UNKNOWN get an
// fstatat of the entry, which does not follow it.
func (f *file) direntType(t uint8, name string) fs.FileMode {
	switch t {
	case unix.DT_REG:
		return 0
	case unix.DT_DIR:
		return fs.ModeDir
	case unix.DT_LNK:
		return fs.ModeSymlink
	case unix.DT_CHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.DT_BLK:
		return fs.ModeDevice
	case unix.DT_FIFO:
		return fs.ModeNamedPipe
	case unix.DT_SOCK:
		return fs.ModeSocket
	}
	var st unix.Stat_t
	if err := unix.Fstatat(f.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fs.ModeIrregular
	}
	return fsmeta.FileMode(st.Mode).Type()
}

// Write implements experimentalsys.File.Write.
//
// # Errors
//   - EBADF: the file is closed, not open for writing, or a directory.
func (f *file) Write(buf []byte) (int, experimentalsys.Errno) {
	if f.fd < 0 {
		return 0, experimentalsys.EBADF
	}
	if len(buf) == 0 {
		return 0, 0
	}
	var n int
	err := retryEINTR(func() (err error) {
		n, err = unix.Write(f.fd, buf)
		return err
	})
	if n > 0 {
		f.root.stampFd(f.fd, false)
	}
	return max(n, 0), f.writeErrno(err)
}

// Pwrite implements experimentalsys.File.Pwrite.
//
// # Errors
//   - EBADF: the file is closed or not open for writing.
//   - EINVAL: off is negative.
//   - EISDIR: the file is a directory.
func (f *file) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if f.fd < 0 {
		return 0, experimentalsys.EBADF
	}
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	if len(buf) == 0 {
		return 0, 0
	}
	var n int
	err := retryEINTR(func() (err error) {
		n, err = unix.Pwrite(f.fd, buf, off)
		return err
	})
	if n > 0 {
		f.root.stampFd(f.fd, false)
	}
	return max(n, 0), f.writeErrno(err)
}

// writeErrno reports a write to a directory as wazero documents it.
func (f *file) writeErrno(err error) experimentalsys.Errno {
	errno := f.root.sysErrno(err)
	if errno == experimentalsys.EBADF {
		if isDir, _ := f.IsDir(); isDir {
			return experimentalsys.EISDIR
		}
	}
	return errno
}

// Truncate implements experimentalsys.File.Truncate.
//
// # Errors
//   - EBADF: the file is closed.
//   - EINVAL: size is negative, or the file is not open for writing.
//   - EISDIR: the file is a directory.
func (f *file) Truncate(size int64) experimentalsys.Errno {
	if f.fd < 0 {
		return experimentalsys.EBADF
	}
	if isDir, _ := f.IsDir(); isDir {
		return experimentalsys.EISDIR
	}
	if size < 0 {
		return experimentalsys.EINVAL
	}
	if err := retryEINTR(func() error { return unix.Ftruncate(f.fd, size) }); err != nil {
		return f.root.sysErrno(err)
	}
	f.root.stampFd(f.fd, false)
	return 0
}

// Sync implements experimentalsys.File.Sync.
//
// # Errors
//   - EBADF: the file is closed.
func (f *file) Sync() experimentalsys.Errno {
	if f.fd < 0 {
		return experimentalsys.EBADF
	}
	return f.root.sysErrno(unix.Fsync(f.fd))
}

// Datasync implements experimentalsys.File.Datasync.
//
// # Errors
//   - EBADF: the file is closed.
func (f *file) Datasync() experimentalsys.Errno {
	if f.fd < 0 {
		return experimentalsys.EBADF
	}
	return f.root.sysErrno(unix.Fdatasync(f.fd))
}

// Utimens implements experimentalsys.File.Utimens; UTIME_OMIT keeps a time.
//
// # Errors
//   - EBADF: the file is closed.
//   - EROFS: the file belongs to a read-only FS.
func (f *file) Utimens(atim, mtim int64) experimentalsys.Errno {
	if f.fd < 0 {
		return experimentalsys.EBADF
	}
	if f.readOnly {
		return experimentalsys.EROFS
	}
	if err := f.root.changeOpenFile(f); err != nil {
		return f.root.sysErrno(err)
	}
	ts := []unix.Timespec{timespec(atim), timespec(mtim)}
	return f.root.sysErrno(utimensFd(f.fd, ts))
}

// Close implements experimentalsys.File.Close; closing twice is not an error.
func (f *file) Close() experimentalsys.Errno {
	if f.fd < 0 {
		return 0
	}
	fd := f.fd
	f.fd = -1
	return f.root.sysErrno(unix.Close(fd))
}
