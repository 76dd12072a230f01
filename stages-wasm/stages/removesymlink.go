//go:build wasip1

package main

import (
	"errors"
	"io/fs"
	"os"
)

// removeSymlink removes p if it is a symlink, so that writing p makes a
// file in place rather than following a link that may lead nowhere.
func removeSymlink(p string) error {
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return os.Remove(p)
	}
	return nil
}
