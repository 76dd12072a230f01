// Package fsmetatest is the shared core of kiln's test tree describers:
// store/storetest's Describe, hostfs/hostfstest's State and the stage
// library's golden-file descriptions each render a tree their own way (the
// store's keeps mtimes and hardlinks, the confinement checks keep ctimes,
// the golden files are written to be read by people), but all of them read
// the same things of each entry, which Walk reads once, here.
package fsmetatest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
)

// Entry is what a describer knows of one path of a tree.
type Entry struct {
	Path    string // the path as filepath.WalkDir gives it
	Rel     string // relative to the root, "." for the root itself
	Stat    unix.Stat_t
	Target  string  // a symlink's target
	Content []byte  // a regular file's bytes
	Xattrs  []Xattr // sorted by name, without following a symlink
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Type is the entry's file type bits (fsmeta.S_IFMT of its mode).
func (e *Entry) Type() uint32 { return e.Stat.Mode & fsmeta.S_IFMT }

// Walk reads every entry under root, root included, in lexical order, and
// calls fn with it. Errors reading an entry end the walk.
func Walk(root string, fn func(*Entry) error) error {
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		e, err := Read(root, p)
		if err != nil {
			return err
		}
		return fn(e)
	})
}

// Read reads the entry at p, a path under root.
func Read(root, p string) (*Entry, error) {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return nil, err
	}
	e := &Entry{Path: p, Rel: rel}
	if err := unix.Lstat(p, &e.Stat); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	switch e.Type() {
	case fsmeta.S_IFLNK:
		if e.Target, err = os.Readlink(p); err != nil {
			return nil, err
		}
	case fsmeta.S_IFREG:
		if e.Content, err = os.ReadFile(p); err != nil {
			return nil, err
		}
	}
	names, err := fsmeta.ListXattrs(p)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	for _, name := range names {
		v, err := fsmeta.GetXattr(p, name)
		if err != nil {
			return nil, err
		}
		e.Xattrs = append(e.Xattrs, Xattr{name, v})
	}
	return e, nil
}

// Lines renders each entry under root with render and returns the lines
// keyed by the entry's Rel.
func Lines(root string, render func(*Entry) string) (map[string]string, error) {
	out := map[string]string{}
	err := Walk(root, func(e *Entry) error {
		out[e.Rel] = render(e)
		return nil
	})
	return out, err
}

// XattrStrings renders each xattr with format (given name and value, e.g.
// "%s=%q") and returns them sorted, leaving out the names skip holds.
func XattrStrings(xs []Xattr, format string, skip ...string) []string {
	var out []string
	for _, x := range xs {
		if slices.Contains(skip, x.Name) {
			continue
		}
		out = append(out, fmt.Sprintf(format, x.Name, x.Value))
	}
	slices.SortFunc(out, strings.Compare)
	return out
}
