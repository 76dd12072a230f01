package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store/treesum"
)

// Problem is one inconsistency found by Fsck.
type Problem struct {
	Path string // relative to the store root
	What string
}

func (p Problem) String() string { return p.Path + ": " + p.What }

// FsckReport is what Fsck checked and found.
type FsckReport struct {
	Objects, Refs, Tmp int // entries checked
	Problems           []Problem
}

// Fsck checks the store: every object's treesum matches its name, every ref
// points at an existing object, nothing in tmp/ lacks a live owner, and the
// root holds nothing unknown. It holds objects/ shared, so gc waits for it.
func (s *Store) Fsck(ctx context.Context) (*FsckReport, error) {
	release, err := s.lockObjects(ctx, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer release()
	r := &FsckReport{}
	add := func(path, format string, args ...any) {
		r.Problems = append(r.Problems, Problem{Path: path, What: fmt.Sprintf(format, args...)})
	}

	root, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("store: fsck: %w", err)
	}
	for _, e := range root {
		known := slices.Contains([]string{dirObjects, dirRefs, dirTmp, dirIndex}, e.Name()) || slices.Contains(KnownDirs, e.Name())
		if !known || !e.IsDir() {
			add(e.Name(), "unexpected entry at the store root")
		}
	}

	objects, err := os.ReadDir(filepath.Join(s.root, dirObjects))
	if err != nil {
		return nil, fmt.Errorf("store: fsck: %w", err)
	}
	for _, e := range objects {
		r.Objects++
		rel := filepath.Join(dirObjects, e.Name())
		if !validSum.MatchString(e.Name()) || !e.IsDir() {
			add(rel, "not an object: objects/ holds only directories named by their treesum")
			continue
		}
		sum, err := treesum.Sum(ctx, s.objectPath(e.Name()))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		switch {
		case err != nil:
			add(rel, "cannot compute treesum: %v", err)
		case sum != e.Name():
			add(rel, "content was changed: its treesum is now %s", sum)
		}
	}

	refs, err := os.ReadDir(filepath.Join(s.root, dirRefs))
	if err != nil {
		return nil, fmt.Errorf("store: fsck: %w", err)
	}
	for _, e := range refs {
		r.Refs++
		rel := filepath.Join(dirRefs, e.Name())
		target, err := os.Readlink(s.refPath(e.Name()))
		if err != nil {
			add(rel, "not a symlink")
			continue
		}
		sum := filepath.Base(target)
		if target != refTarget(sum) || !validSum.MatchString(sum) {
			add(rel, "points at %q, not at ../objects/<treesum>", target)
			continue
		}
		if _, err := os.Lstat(s.objectPath(sum)); err != nil {
			add(rel, "dangling: object %s does not exist", sum)
		}
	}

	tmp, err := os.ReadDir(s.tmpPath())
	if err != nil {
		return nil, fmt.Errorf("store: fsck: %w", err)
	}
	for _, e := range tmp {
		r.Tmp++
		rel := filepath.Join(dirTmp, e.Name())
		if !e.IsDir() {
			add(rel, "stray file in tmp/")
			continue
		}
		f, err := openDir(filepath.Join(s.tmpPath(), e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // finished meanwhile
		}
		if err != nil {
			add(rel, "cannot open: %v", err)
			continue
		}
		free, err := tryLock(f, unix.LOCK_EX)
		f.Close() // closing drops the lock fsck may have taken
		if err != nil {
			add(rel, "cannot lock: %v", err)
		} else if free {
			add(rel, "leftover without a live owner (the next store open removes it)")
		}
	}
	return r, nil
}
