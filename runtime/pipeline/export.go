package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/crashpoint"
)

// ExportMode says who may reach into what Run copies to the output
// directory.
type ExportMode int

const (
	// ExportPrivate makes the top directory of every exported tree (and of
	// every directory the assembler writes) 0700, and the files the
	// assembler writes readable by their owner only, so that only the
	// invoking user reaches in: a tree's setuid and setgid files, files
	// with capabilities (security.capability), device nodes and
	// world-writable directories are exported as they are, and stay out
	// of other local users' reach. The default.
	ExportPrivate ExportMode = iota
	// ExportShared keeps the tree's own mode on its top directory: every
	// local user reaches what the tree's modes allow, including its setuid
	// files, capabilities and device nodes.
	ExportShared
)

// ParseExportMode reads "private" or "shared".
func ParseExportMode(s string) (ExportMode, error) {
	switch s {
	case "private":
		return ExportPrivate, nil
	case "shared":
		return ExportShared, nil
	}
	return 0, fmt.Errorf("export mode %q: want private or shared", s)
}

func (m ExportMode) String() string {
	if m == ExportShared {
		return "shared"
	}
	return "private"
}

// stagingPrefix names kiln's staging directories in an output directory.
// They are flocked while a copy fills them, so that a later build removes
// only those no live kiln holds: the leftovers of a killed export.
const stagingPrefix = ".kiln-export-"

// stagingName matches what os.MkdirTemp makes of stagingPrefix, and
// nothing a user would name a file.
var stagingName = regexp.MustCompile(`^\.kiln-export-[0-9]+$`)

// staging is a locked directory in the output directory that an export is
// copied into before it is renamed into place.
type staging struct {
	f    *os.File
	path string
}

// newStaging makes a staging directory in dir, first removing the
// leftovers of exports that were killed. A concurrent cleanup may remove
// the directory between mkdir and flock; a removed directory has no links
// left, which is checked after locking.
func newStaging(dir string) (*staging, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	if err := cleanStaging(dir); err != nil {
		return nil, err
	}
	for range 10 {
		path, err := os.MkdirTemp(dir, stagingPrefix)
		if err != nil {
			return nil, fmt.Errorf("output directory: %w", err)
		}
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("output directory: %w", err)
		}
		var st unix.Stat_t
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err == nil {
			err = unix.Fstat(int(f.Fd()), &st)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("output directory: locking %s: %w", path, err)
		}
		if st.Nlink == 0 {
			f.Close()
			continue
		}
		return &staging{f: f, path: path}, nil
	}
	return nil, fmt.Errorf("output directory: could not keep a staging directory in %s: removed by concurrent builds 10 times", dir)
}

// remove deletes the staging directory with what is left in it, then
// drops its lock.
func (s *staging) remove() {
	_ = fsmeta.RemoveAll(s.path)
	s.f.Close()
}

// cleanStaging removes the staging directories in dir that no live kiln
// holds: only directories of kiln's own names, never a symlink or a file.
func cleanStaging(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	for _, e := range entries {
		if !stagingName.MatchString(e.Name()) || e.Type() != os.ModeDir {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // gone meanwhile, or not ours to open
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			continue // a live export
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("output directory: locking %s: %w", path, err)
		}
		err = fsmeta.RemoveAll(path)
		f.Close()
		if err != nil {
			return fmt.Errorf("output directory: removing the leftover %s of an interrupted export: %w", path, err)
		}
	}
	return nil
}

// exportFiles copies the entries of object id into dir, each replacing any
// entry of the same name by rename, so a reader of dir never sees a
// half-written output. It returns the paths written.
func exportFiles(ctx context.Context, st *store.Store, id, dir string, mode ExportMode) ([]string, error) {
	stg, err := newStaging(dir)
	if err != nil {
		return nil, err
	}
	defer stg.remove()
	tree := filepath.Join(stg.path, "tree")
	if err := st.Export(ctx, id, tree); err != nil {
		return nil, err
	}
	crashpoint.Hit("export.files.staged")
	entries, err := os.ReadDir(tree)
	if err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	var out []string
	for _, e := range entries {
		src, dst := filepath.Join(tree, e.Name()), filepath.Join(dir, e.Name())
		if err := restrict(src, mode); err != nil {
			return nil, err
		}
		if e.IsDir() {
			// rename(2) replaces only empty directories.
			if err := fsmeta.RemoveAll(dst); err != nil {
				return nil, fmt.Errorf("output directory: %w", err)
			}
		}
		crashpoint.Hit("export.files.rename")
		if err := os.Rename(src, dst); err != nil {
			return nil, fmt.Errorf("output directory: %w", err)
		}
		out = append(out, dst)
	}
	slices.Sort(out)
	return out, nil
}

// exportTree copies the tree of object id to dir/<id>.
func exportTree(ctx context.Context, st *store.Store, id, dir string, mode ExportMode) (string, error) {
	stg, err := newStaging(dir)
	if err != nil {
		return "", err
	}
	defer stg.remove()
	tree := filepath.Join(stg.path, id)
	if err := st.Export(ctx, id, tree); err != nil {
		return "", err
	}
	// Restricted before the rename: no other user ever sees it open.
	if err := restrict(tree, mode); err != nil {
		return "", err
	}
	crashpoint.Hit("export.tree.staged")
	dst := filepath.Join(dir, id)
	if err := fsmeta.RemoveAll(dst); err != nil {
		return "", fmt.Errorf("output directory: %w", err)
	}
	if err := os.Rename(tree, dst); err != nil {
		return "", fmt.Errorf("output directory: %w", err)
	}
	return dst, nil
}

// restrict takes what other users could do with an export away from them,
// in private mode: a directory becomes 0700, a file (an image, a disk: its
// content is the whole tree's, shadow hashes and keys included) loses its
// group and other bits. A symlink is left as it is.
func restrict(path string, mode ExportMode) error {
	if mode == ExportShared {
		return nil
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	perm := fi.Mode().Perm() &^ 0o077
	switch {
	case fi.IsDir():
		perm = 0o700
	case !fi.Mode().IsRegular():
		return nil
	}
	if err := os.Chmod(path, perm); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	return nil
}
