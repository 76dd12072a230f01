package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store/treecopy"
)

// CopyMode chooses how a write context initializes an object's tree from
// its base (package treecopy does the copying).
type CopyMode = treecopy.Mode

const (
	// CopyAuto clones file data with reflinks (FICLONE) where the filesystem
	// supports them and copies it otherwise. The default.
	CopyAuto = treecopy.Auto
	// CopyReflink requires reflinks and fails on filesystems without them.
	CopyReflink = treecopy.Reflink
	// CopyPlain always copies file data (copy_file_range where possible).
	CopyPlain = treecopy.Plain
	// CopyHardlink hardlinks the trees of hostfs write contexts even where
	// reflinks exist; plain write contexts get CopyAuto.
	CopyHardlink = treecopy.Hardlink
)

// ErrNoReflink is returned by CopyReflink on a filesystem without reflinks.
var ErrNoReflink = treecopy.ErrNoReflink

// # Strategies
//
// A write context for a plain path ([Object.Write]) gets a tree of its
// own: reflinked where the filesystem can, else copied (CopyMode decides).
// A write context for hostfs ([Object.WriteHostfs]) can do better on a
// filesystem without reflinks: its tree is hardlinked to the base's inodes,
// and hostfs copies a file up before changing it (package cowtree). The
// choice, per store (hostfsMode):
//
//	CopyAuto     reflink if the filesystem has it, else hardlink
//	CopyReflink  reflink (fails without)
//	CopyPlain    copy: the mode for testing what copies do
//	CopyHardlink hardlink, even where reflinks exist
//
// Nothing but hostfs gets a hardlinked tree: the hostfs write context is a
// type of its own that shows no path to write through, and a plain write
// context on an object a hostfs context linked first unshares it.

func copyTree(ctx context.Context, mode CopyMode, src, dst string) error {
	return treecopy.Copy(ctx, src, dst, treecopy.Options{Mode: mode})
}

// plainMode is the copy mode for plain write contexts and exports.
func (s *Store) plainMode() CopyMode {
	if s.copyMode == CopyHardlink {
		return CopyAuto
	}
	return s.copyMode
}

// writeMode is the copy mode that initializes a tree for a hostfs write
// context (forHostfs) or a plain one.
func (s *Store) writeMode(forHostfs bool) CopyMode {
	switch {
	case s.linkedWrites:
		return treecopy.Hardlink
	case forHostfs:
		return s.hostfsMode()
	}
	return s.plainMode()
}

// hostfsMode is the copy mode for a hostfs write context (see above).
func (s *Store) hostfsMode() CopyMode {
	if s.copyMode != CopyAuto {
		return s.copyMode
	}
	s.reflinkOnce.Do(func() { s.reflinkOK = s.probeReflink() })
	if s.reflinkOK {
		return treecopy.Reflink
	}
	return treecopy.Hardlink
}

// probeReflink clones a one-byte file in tmp/ to learn whether the store's
// filesystem has reflinks.
func (s *Store) probeReflink() bool {
	d, err := newTempDir(s.tmpPath(), prefixObject)
	if err != nil {
		return false
	}
	defer d.remove()
	src, err := os.Create(filepath.Join(d.path, "a"))
	if err != nil {
		return false
	}
	defer src.Close()
	if _, err := src.Write([]byte{0}); err != nil {
		return false
	}
	dst, err := os.Create(filepath.Join(d.path, "b"))
	if err != nil {
		return false
	}
	defer dst.Close()
	err = unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
	return err == nil
}

// HostfsMode reports the strategy hostfs write contexts of this store use:
// "reflink", "hardlink" or "copy".
func (s *Store) HostfsMode() string { return s.hostfsMode().String() }

// errLinked guards the invariant of the strategy: should a tree still
// share inodes where a plain writer would get it, that is a bug in the
// store, not something to write through.
var errLinked = errors.New("store: bug: a hardlinked tree reached a plain writer")

func checkUnshared(shared map[uint64]uint8) error {
	if len(shared) != 0 {
		return fmt.Errorf("%w (%d shared inodes)", errLinked, len(shared))
	}
	return nil
}
