package store

import (
	"context"

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
)

// ErrNoReflink is returned by CopyReflink on a filesystem without reflinks.
var ErrNoReflink = treecopy.ErrNoReflink

func copyTree(ctx context.Context, mode CopyMode, src, dst string) error {
	return treecopy.Copy(ctx, src, dst, treecopy.Options{Mode: mode})
}
