package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// GCResult says what GC did.
type GCResult struct {
	Removed []ObjectInfo // objects removed, with the refs that pointed at them
	InUse   []ObjectInfo // objects GC wanted to remove but another user holds, or used since GC looked
	Before  int64        // bytes in objects/ before
	After   int64        // bytes in objects/ after
}

// GC removes the least recently used objects, and the refs pointing at
// them, until objects/ takes at most maxSize bytes. It never removes an
// object in use (the base of a live object, behind a read context or held,
// in any process). Dangling refs are removed as well.
//
// Sizing the store walks every tree, which takes long on a large store, so
// GC does it without a lock; commits and lookups go on meanwhile. It then
// holds objects/ exclusively only to take each victim out of the store,
// checking first that no one holds it and that no ref to it was used since
// it was sized. The trees are deleted after objects/ is released.
func (s *Store) GC(ctx context.Context, maxSize int64) (*GCResult, error) {
	sized := time.Now()
	objs, err := s.Objects(ctx)
	if err != nil {
		return nil, err
	}
	res := &GCResult{}
	for _, o := range objs {
		res.Before += o.Size
	}
	res.After = res.Before
	var removed []*tempDir
	if res.After > maxSize {
		removed, err = s.takeOut(ctx, objs, maxSize, sized, res)
	}
	// Deleting is the slow part; objects/ is free again by now.
	for _, d := range removed {
		if rerr := d.remove(); err == nil {
			err = rerr
		}
	}
	return res, err
}

// takeOut moves the least recently used objects that are still unused into
// locked tmp/rm-* directories until objects/ fits maxSize, holding objects/
// exclusively, and returns those directories for the caller to delete.
func (s *Store) takeOut(ctx context.Context, objs []ObjectInfo, maxSize int64, sized time.Time, res *GCResult) ([]*tempDir, error) {
	release, err := s.lockObjects(ctx, unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer release()
	// The refs as they are now: a commit since sizing may have pointed a
	// new ref at a victim.
	refs, err := s.Refs()
	if err != nil {
		return nil, err
	}
	bySum := map[string][]string{}
	for id, sum := range refs {
		bySum[sum] = append(bySum[sum], id)
	}
	var removed []*tempDir
	for _, o := range objs {
		if res.After <= maxSize {
			break
		}
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		d, err := s.takeOutObject(o.Sum, bySum[o.Sum], sized)
		if err != nil {
			return removed, err
		}
		switch {
		case d != nil:
			removed = append(removed, d)
			res.Removed = append(res.Removed, o)
			res.After -= o.Size
		case d == nil && objectExists(s.objectPath(o.Sum)):
			res.InUse = append(res.InUse, o)
		}
	}
	return removed, s.removeDangling()
}

func objectExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// takeOutObject takes an object out of the store unless someone holds it or
// used it since sized. Its refs go first, so no one can find it; the tree is
// then renamed into a locked tmp/rm-* directory, so a crash leaves only a
// leftover that the next Open cleans. It returns nil when the object stays
// (or another gc removed it already).
func (s *Store) takeOutObject(sum string, refs []string, sized time.Time) (*tempDir, error) {
	f, err := openDir(s.objectPath(sum))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // another gc was faster
	}
	if err != nil {
		return nil, fmt.Errorf("store: gc: %w", err)
	}
	defer f.Close()
	ok, err := tryLock(f, unix.LOCK_EX)
	if err != nil || !ok {
		return nil, err
	}
	for _, id := range refs {
		var st unix.Stat_t
		if unix.Lstat(s.refPath(id), &st) == nil && time.Unix(0, st.Mtim.Nano()).After(sized) {
			return nil, nil // used (or made) since gc sized the store
		}
	}
	for _, id := range refs {
		if err := os.Remove(s.refPath(id)); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("store: gc: %w", err)
		}
	}
	rm, err := newTempDir(s.tmpPath(), prefixRemove)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(s.objectPath(sum), filepath.Join(rm.path, "tree")); err != nil {
		rm.remove()
		return nil, fmt.Errorf("store: gc: %w", err)
	}
	// The index goes with it (gc holds objects/ exclusively, so no commit
	// is recording a ref there); a later object of the same sum starts a
	// fresh one.
	if err := os.Rename(s.indexPath(sum), filepath.Join(rm.path, "index")); err != nil && !errors.Is(err, os.ErrNotExist) {
		rm.remove()
		return nil, fmt.Errorf("store: gc: %w", err)
	}
	return rm, nil
}

func (s *Store) removeDangling() error {
	refs, err := s.Refs()
	if err != nil {
		return err
	}
	for id, sum := range refs {
		if sum != "" {
			if _, err := os.Lstat(s.objectPath(sum)); err == nil {
				continue
			}
		}
		if err := os.Remove(s.refPath(id)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("store: gc: %w", err)
		}
	}
	return nil
}
