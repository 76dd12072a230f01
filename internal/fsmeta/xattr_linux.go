package fsmeta

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ListXattrs returns the names of path's extended attributes without
// following a final symlink. Filesystems without xattr support yield none.
func ListXattrs(path string) ([]string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Llistxattr(path, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			sz, err := unix.Llistxattr(path, nil)
			if err != nil {
				return nil, fmt.Errorf("llistxattr %s: %w", path, err)
			}
			buf = make([]byte, sz+64)
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("llistxattr %s: %w", path, err)
		}
		return splitNames(buf[:n]), nil
	}
}

func splitNames(list []byte) []string {
	var names []string
	for _, name := range bytes.Split(list, []byte{0}) {
		if len(name) > 0 {
			names = append(names, string(name))
		}
	}
	return names
}

// noListxattrat is set once the kernel refused listxattrat(2) (before
// Linux 6.13, or a seccomp filter that does not know it).
var noListxattrat atomic.Bool

// ListXattrsAt is ListXattrs for the entry name of the open directory
// dirfd, whose path is dir: the kernel resolves one name instead of a
// whole path, which is what a walk over every file of a tree pays for.
// dir is used only where the kernel lacks listxattrat(2).
func ListXattrsAt(dirfd int, dir, name string) ([]string, error) {
	if noListxattrat.Load() {
		return ListXattrs(filepath.Join(dir, name))
	}
	var buf [256]byte
	n, err := listxattrat(dirfd, name, buf[:])
	switch {
	case err == nil:
		if n == 0 {
			return nil, nil // the common case: no allocation
		}
		return splitNames(buf[:n]), nil
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
		// EPERM: a seccomp filter that predates the call (container
		// runtimes' defaults did). The path form answers for itself.
		noListxattrat.Store(true)
		return ListXattrs(filepath.Join(dir, name))
	case errors.Is(err, unix.ENOTSUP):
		return nil, nil
	case errors.Is(err, unix.ERANGE):
		return ListXattrs(filepath.Join(dir, name))
	}
	return nil, fmt.Errorf("listxattrat %s: %w", filepath.Join(dir, name), err)
}

// listxattrat calls listxattrat(2), which x/sys has the number of but no
// wrapper for, without following a final symlink.
func listxattrat(dirfd int, name string, buf []byte) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	r, _, e := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unix.AT_SYMLINK_NOFOLLOW), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// GetXattr returns the value of one extended attribute of path without
// following a final symlink.
func GetXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Lgetxattr(path, name, nil)
			if err != nil {
				return nil, fmt.Errorf("lgetxattr %s %s: %w", path, name, err)
			}
			buf = make([]byte, sz+64)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lgetxattr %s %s: %w", path, name, err)
		}
		return buf[:n], nil
	}
}
