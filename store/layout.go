package store

import (
	"fmt"
	"path/filepath"
	"regexp"
)

// The store's directories. Every temporary directory lives under tmp/, named
// by what it is for, so that fsck and cleanup can tell leftovers apart:
//
//	tmp/obj-*  an object's work directory (its tree/ and temporary ref links)
//	tmp/ro-*   a read context: tree/ inside is a read-only bind mount
//	tmp/rm-*   content being removed (gc, or a tree that was already stored)
//
// index/<treesum>/ records what was committed (see verify.go): stat holds
// the digest of the object's metadata for the check on use, refs/<id> says
// that id was committed to this object.
const (
	dirObjects = "objects"
	dirRefs    = "refs"
	dirTmp     = "tmp"
	dirIndex   = "index"

	prefixObject = "obj-"
	prefixRead   = "ro-"
	prefixRemove = "rm-"
)

// KnownDirs are the directories a store root may hold besides objects/,
// refs/ and tmp/: caches that other packages keep under the store root
// (fetched sources, compiled stage modules). fsck reports anything else.
var KnownDirs = []string{"sources", "cache"}

// validID accepts the ids pipelines use (hex stage ids) and human names for
// refs, but nothing that could name a path outside refs/.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,254}$`)

var validSum = regexp.MustCompile(`^[0-9a-f]{64}$`)

func checkID(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("%w: %q (letters, digits and ._@+- only, at most 255)", ErrInvalidID, id)
	}
	return nil
}

func (s *Store) objectPath(sum string) string { return filepath.Join(s.root, dirObjects, sum) }
func (s *Store) refPath(id string) string     { return filepath.Join(s.root, dirRefs, id) }
func (s *Store) tmpPath() string              { return filepath.Join(s.root, dirTmp) }

// refTarget is what refs/<id> points at: relative, so that a store can be
// moved or bind-mounted elsewhere.
func refTarget(sum string) string { return filepath.Join("..", dirObjects, sum) }
