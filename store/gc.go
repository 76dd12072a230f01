package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// GCResult says what GC did.
type GCResult struct {
	Removed []ObjectInfo // objects removed, with the refs that pointed at them
	InUse   []ObjectInfo // objects GC wanted to remove but another user holds
	Before  int64        // bytes in objects/ before
	After   int64        // bytes in objects/ after
}

// GC removes the least recently used objects, and the refs pointing at
// them, until objects/ takes at most maxSize bytes. It never removes an
// object in use (the base of a live object or behind a read context, in any
// process), and holds objects/ exclusively so that no commit or lookup runs
// meanwhile. Dangling refs are removed as well.
func (s *Store) GC(ctx context.Context, maxSize int64) (*GCResult, error) {
	release, err := s.lockObjects(ctx, unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer release()
	objs, err := s.Objects(ctx)
	if err != nil {
		return nil, err
	}
	res := &GCResult{}
	for _, o := range objs {
		res.Before += o.Size
	}
	res.After = res.Before
	for _, o := range objs {
		if res.After <= maxSize {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		removed, err := s.removeObject(o)
		if err != nil {
			return res, err
		}
		if !removed {
			res.InUse = append(res.InUse, o)
			continue
		}
		res.Removed = append(res.Removed, o)
		res.After -= o.Size
	}
	return res, s.removeDangling()
}

// removeObject removes an object unless someone holds it. Its refs go
// first, so no one can find it while it is being deleted; the tree is then
// renamed into a locked tmp/rm-* directory and deleted there, so a crash
// leaves only a leftover that the next Open cleans.
func (s *Store) removeObject(o ObjectInfo) (bool, error) {
	f, err := openDir(s.objectPath(o.Sum))
	if err != nil {
		return false, fmt.Errorf("store: gc: %w", err)
	}
	defer f.Close()
	ok, err := tryLock(f, unix.LOCK_EX)
	if err != nil || !ok {
		return false, err
	}
	for _, id := range o.Refs {
		if err := os.Remove(s.refPath(id)); err != nil && !os.IsNotExist(err) {
			return false, fmt.Errorf("store: gc: %w", err)
		}
	}
	rm, err := newTempDir(s.tmpPath(), prefixRemove)
	if err != nil {
		return false, err
	}
	if err := os.Rename(s.objectPath(o.Sum), filepath.Join(rm.path, "tree")); err != nil {
		rm.remove()
		return false, fmt.Errorf("store: gc: %w", err)
	}
	return true, rm.remove()
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
