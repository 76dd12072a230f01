package hostfs

import (
	"encoding/binary"
	"io"
	"io/fs"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// file is an open regular file or directory of a root. wazero uses each File
// from one goroutine at a time, so it has no lock.
type file struct {
	experimentalsys.UnimplementedFile

	fd       int // -1 once closed
	append   bool
	readOnly bool

	statDone bool // st caches Dev, Ino and the type, which never change
	st       unix.Stat_t

	// Directory reading: raw linux_dirent64 records from getdents64, and how
	// far into them Readdir has got.
	dirBuf         []byte
	dirPos, dirEnd int
}

func newFile(fd int, flags int, readOnly bool) *file {
	return &file{fd: fd, append: flags&unix.O_APPEND != 0, readOnly: readOnly}
}

func (f *file) cachedStat() (*unix.Stat_t, experimentalsys.Errno) {
	if f.fd < 0 {
		return nil, experimentalsys.EBADF
	}
	if !f.statDone {
		if err := unix.Fstat(f.fd, &f.st); err != nil {
			return nil, sysErrno(err)
		}
		f.statDone = true
	}
	return &f.st, 0
}

// Dev implements experimentalsys.File.Dev.
func (f *file) Dev() (uint64, experimentalsys.Errno) {
	st, errno := f.cachedStat()
	if errno != 0 {
		return 0, errno
	}
	return st.Dev, 0
}

// Ino implements experimentalsys.File.Ino.
func (f *file) Ino() (sys.Inode, experimentalsys.Errno) {
	st, errno := f.cachedStat()
	if errno != 0 {
		return 0, errno
	}
	return st.Ino, 0
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
		return sysErrno(err)
	}
	if enable {
		fl |= unix.O_APPEND
	} else {
		fl &^= unix.O_APPEND
	}
	if _, err := unix.FcntlInt(uintptr(f.fd), unix.F_SETFL, fl); err != nil {
		return sysErrno(err)
	}
	f.append = enable
	return 0
}

// Stat implements experimentalsys.File.Stat.
//
// # Errors
//   - EBADF: the file is closed.
func (f *file) Stat() (sys.Stat_t, experimentalsys.Errno) {
	if f.fd < 0 {
		return sys.Stat_t{}, experimentalsys.EBADF
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return sys.Stat_t{}, sysErrno(err)
	}
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
	return max(n, 0), sysErrno(err)
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
	return max(n, 0), sysErrno(err)
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
		f.dirPos, f.dirEnd = 0, 0
	}
	off, err := unix.Seek(f.fd, offset, whence)
	return off, sysErrno(err)
}

// fileOffset is int64 under another name, only so that go vet's stdmethods
// check, which wants every Seek(int64, int) to return error like io.Seeker,
// leaves alone this Seek, whose signature is wazero's File interface.
type fileOffset = int64

// Readdir implements experimentalsys.File.Readdir. It never returns "." or
// ".." (wazero adds its own), nor io.EOF: fewer than n entries means the end.
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
	if f.dirBuf == nil {
		f.dirBuf = make([]byte, 16<<10)
	}
	var out []experimentalsys.Dirent
	for n <= 0 || len(out) < n {
		if f.dirPos >= f.dirEnd {
			var m int
			err := retryEINTR(func() (err error) {
				m, err = unix.Getdents(f.fd, f.dirBuf)
				return err
			})
			if err != nil {
				return out, sysErrno(err)
			}
			if m <= 0 {
				break
			}
			f.dirPos, f.dirEnd = 0, m
		}
		d, ok := f.nextDirent()
		if ok {
			out = append(out, d)
		}
	}
	return out, 0
}

// nextDirent decodes the linux_dirent64 at dirPos (u64 ino, s64 off, u16
// reclen, u8 type, NUL-terminated name) and advances past it. ok is false
// for "." and "..".
func (f *file) nextDirent() (d experimentalsys.Dirent, ok bool) {
	rec := f.dirBuf[f.dirPos:f.dirEnd]
	reclen := int(binary.LittleEndian.Uint16(rec[16:18]))
	f.dirPos += reclen
	name := rec[19:reclen]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	if string(name) == "." || string(name) == ".." {
		return d, false
	}
	d.Ino = binary.LittleEndian.Uint64(rec[0:8])
	d.Name = string(name)
	d.Type = f.direntType(rec[18], d.Name)
	return d, true
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
	return fileMode(st.Mode).Type()
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
	return max(n, 0), f.writeErrno(err)
}

// writeErrno reports a write to a directory as wazero documents it.
func (f *file) writeErrno(err error) experimentalsys.Errno {
	errno := sysErrno(err)
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
	return sysErrno(retryEINTR(func() error { return unix.Ftruncate(f.fd, size) }))
}

// Sync implements experimentalsys.File.Sync.
//
// # Errors
//   - EBADF: the file is closed.
func (f *file) Sync() experimentalsys.Errno {
	if f.fd < 0 {
		return experimentalsys.EBADF
	}
	return sysErrno(unix.Fsync(f.fd))
}

// Datasync implements experimentalsys.File.Datasync.
//
// # Errors
//   - EBADF: the file is closed.
func (f *file) Datasync() experimentalsys.Errno {
	if f.fd < 0 {
		return experimentalsys.EBADF
	}
	return sysErrno(unix.Fdatasync(f.fd))
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
	ts := []unix.Timespec{timespec(atim), timespec(mtim)}
	return sysErrno(unix.UtimesNanoAt(unix.AT_FDCWD, procFd(f.fd), ts, 0))
}

// Close implements experimentalsys.File.Close; closing twice is not an error.
func (f *file) Close() experimentalsys.Errno {
	if f.fd < 0 {
		return 0
	}
	fd := f.fd
	f.fd = -1
	return sysErrno(unix.Close(fd))
}
