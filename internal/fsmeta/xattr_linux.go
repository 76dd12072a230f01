package fsmeta

import (
	"bytes"
	"errors"
	"fmt"

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
		var names []string
		for _, name := range bytes.Split(buf[:n], []byte{0}) {
			if len(name) > 0 {
				names = append(names, string(name))
			}
		}
		return names, nil
	}
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
