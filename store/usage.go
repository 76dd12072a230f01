package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ObjectInfo describes one committed object.
type ObjectInfo struct {
	Sum      string    // treesum: the object's name under objects/
	Size     int64     // bytes allocated on disk, hardlinks counted once
	Refs     []string  // refs pointing at it, sorted
	LastUsed time.Time // latest use through any of its refs; zero if none
}

// diskSize returns the bytes allocated to the tree at path, counting each
// inode once.
func diskSize(ctx context.Context, path string) (int64, error) {
	seen := map[[2]uint64]bool{}
	var total int64
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (tmp/)
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return err
		}
		key := [2]uint64{st.Dev, st.Ino}
		if st.Nlink > 1 && seen[key] {
			return nil
		}
		seen[key] = true
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: size of %s: %w", path, err)
	}
	return total, nil
}

// Objects lists every committed object with its size, refs and last use,
// least recently used first.
func (s *Store) Objects(ctx context.Context) ([]ObjectInfo, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, dirObjects))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	refs, err := s.Refs()
	if err != nil {
		return nil, err
	}
	byName := map[string]*ObjectInfo{}
	var infos []*ObjectInfo
	for _, e := range entries {
		if !validSum.MatchString(e.Name()) || !e.IsDir() {
			continue // not an object: fsck reports it, gc leaves it alone
		}
		size, err := diskSize(ctx, s.objectPath(e.Name()))
		if err != nil {
			return nil, err
		}
		info := &ObjectInfo{Sum: e.Name(), Size: size}
		byName[e.Name()] = info
		infos = append(infos, info)
	}
	for id, sum := range refs {
		info := byName[sum]
		if info == nil {
			continue
		}
		info.Refs = append(info.Refs, id)
		var st unix.Stat_t
		if unix.Lstat(s.refPath(id), &st) == nil {
			if t := time.Unix(0, st.Mtim.Nano()); t.After(info.LastUsed) {
				info.LastUsed = t
			}
		}
	}
	out := make([]ObjectInfo, len(infos))
	for i, info := range infos {
		slices.Sort(info.Refs)
		out[i] = *info
	}
	slices.SortStableFunc(out, func(a, b ObjectInfo) int {
		if c := a.LastUsed.Compare(b.LastUsed); c != 0 {
			return c
		}
		return strings.Compare(a.Sum, b.Sum)
	})
	return out, nil
}

// Usage is the store's disk use by area, in bytes.
type Usage struct {
	Objects int64
	Tmp     int64
	Other   map[string]int64 // sources/, cache/ and the like, by name
	Total   int64
}

// DiskUsage measures the store's disk use.
func (s *Store) DiskUsage(ctx context.Context) (Usage, error) {
	u := Usage{Other: map[string]int64{}}
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return u, fmt.Errorf("store: %w", err)
	}
	for _, e := range entries {
		size, err := diskSize(ctx, filepath.Join(s.root, e.Name()))
		if err != nil {
			return u, err
		}
		switch e.Name() {
		case dirObjects:
			u.Objects = size
		case dirTmp:
			u.Tmp = size
		default:
			u.Other[e.Name()] = size
		}
		u.Total += size
	}
	return u, nil
}
