package fsmeta

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrNotRegular is wrapped by OpenRegular's error for a path that leads to
// something other than a regular file.
var ErrNotRegular = errors.New("not a regular file")

// OpenRegular opens for reading the file pfd refers to, an O_PATH
// descriptor of path (path is for messages), only once fstat on pfd shows a
// regular file: an O_PATH lookup runs no device driver and cannot block on
// a FIFO, where an open would do both. check, if not nil, sees that stat
// first and may refuse (a size limit, say). The same inode is then opened
// through /proc/self/fd, so a rename between the check and the open cannot
// swap in another file, and the result is checked again to be that inode.
// pfd stays the caller's to close.
func OpenRegular(pfd int, path string, check func(*unix.Stat_t) error) (*os.File, error) {
	var before unix.Stat_t
	if err := unix.Fstat(pfd, &before); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if before.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, TypeName(before.Mode))
	}
	if check != nil {
		if err := check(&before); err != nil {
			return nil, err
		}
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	fh := os.NewFile(uintptr(fd), path)
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		fh.Close()
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if after.Mode&unix.S_IFMT != unix.S_IFREG || after.Dev != before.Dev || after.Ino != before.Ino {
		fh.Close()
		return nil, fmt.Errorf("%s: changed while it was opened", path)
	}
	return fh, nil
}

// OpenPathRegular is OpenRegular for a path looked up as open(2) does,
// following symlinks.
func OpenPathRegular(path string, check func(*unix.Stat_t) error) (*os.File, error) {
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(pfd)
	return OpenRegular(pfd, path, check)
}
