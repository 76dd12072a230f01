package ldcache

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Dir is the Tree of a real directory ("/" in a stage, whose root the
// sandbox confines; natively, absolute symlinks inside would leave it, so
// tests use relative ones).
type Dir string

func (d Dir) join(p string) string { return path.Join(string(d), p) }

// Stat follows links and identifies the file by device and inode.
func (d Dir) Stat(p string) (bool, string, error) {
	fi, err := os.Stat(d.join(p))
	if err != nil {
		return false, "", err
	}
	id := p
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id = fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return fi.IsDir(), id, nil
}

// Lstat is the mode of p, not following a final link.
func (d Dir) Lstat(p string) (fs.FileMode, error) {
	fi, err := os.Lstat(d.join(p))
	if err != nil {
		return 0, err
	}
	return fi.Mode(), nil
}

// Readlink is os.Readlink inside d.
func (d Dir) Readlink(p string) (string, error) { return os.Readlink(d.join(p)) }

// ReadDir is os.ReadDir inside d.
func (d Dir) ReadDir(p string) ([]fs.DirEntry, error) { return os.ReadDir(d.join(p)) }

// ReadFile is os.ReadFile inside d.
func (d Dir) ReadFile(p string) ([]byte, error) { return os.ReadFile(d.join(p)) }

// Open is os.Open inside d.
func (d Dir) Open(p string) (io.ReadSeekCloser, error) { return os.Open(d.join(p)) }

// Glob is filepath.Glob inside d, with tree paths in and out.
func (d Dir) Glob(pattern string) ([]string, error) {
	ms, err := filepath.Glob(d.join(pattern))
	if err != nil {
		return nil, err
	}
	root := strings.TrimSuffix(string(d), "/")
	for i, m := range ms {
		ms[i] = "/" + strings.TrimPrefix(strings.TrimPrefix(m, root), "/")
	}
	return ms, nil
}
