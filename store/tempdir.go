package store

import (
	"fmt"
	"regexp"
)

// TempDir is a locked directory under the store's tmp/ for work that ends
// in a rename into the store's root (fetched sources, assembler output):
// if the process dies first, the next Open removes it.
type TempDir struct{ d *tempDir }

var validPurpose = regexp.MustCompile(`^[a-z]{1,16}$`)

// NewTempDir makes a locked temporary directory named after purpose (a
// short lowercase word, such as "src" or "asm").
func (s *Store) NewTempDir(purpose string) (*TempDir, error) {
	if !validPurpose.MatchString(purpose) || purpose+"-" == prefixObject || purpose+"-" == prefixRead || purpose+"-" == prefixRemove {
		return nil, fmt.Errorf("store: temporary directory purpose %q: a short lowercase word other than obj, ro, rm", purpose)
	}
	d, err := newTempDir(s.tmpPath(), purpose+"-")
	if err != nil {
		return nil, err
	}
	return &TempDir{d}, nil
}

// Path returns the directory.
func (t *TempDir) Path() string { return t.d.path }

// Remove deletes the directory with what is left in it and drops its lock.
func (t *TempDir) Remove() error { return t.d.remove() }
