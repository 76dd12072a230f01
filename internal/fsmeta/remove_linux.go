package fsmeta

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// RemoveAll is os.RemoveAll that gets through read-only directories: a tree
// kiln built or copied may hold 0555 directories, and when kiln runs
// without root (or as root mapped in a user namespace, without
// CAP_DAC_OVERRIDE over the files) only the owner's write bit lets it
// delete their entries. On a permission error it makes every directory
// under path writable by its owner and tries once more.
func RemoveAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}
